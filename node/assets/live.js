// The live link to this node: one EventSource on /api/v1/events. The browser resumes a
// dropped stream with Last-Event-ID; if it gives up (CLOSED), a new one is opened after a
// pause. Every (re)connection and every return to a hidden tab asks for a full refresh, so
// nothing missed while asleep stays missing.

const RETRY_MS = 2000;

export function connect({ onEvent, onState }) {
  let es = null;
  let opened = false;
  let timer = null;

  const open = () => {
    clearTimeout(timer);
    if (es) es.close();
    onState(opened ? 'reconnecting' : 'connecting');
    es = new EventSource('/api/v1/events');
    es.onopen = () => {
      onState('live');
      // First open or a resume: fetch everything once (events may have been missed).
      onEvent('resync', null);
      opened = true;
    };
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED) {
        onState('offline');
        timer = setTimeout(open, RETRY_MS);
      } else {
        onState('reconnecting');
      }
    };
    for (const kind of ['tip', 'tx', 'reorg']) {
      es.addEventListener(kind, (e) => {
        let data = null;
        try { data = JSON.parse(e.data); } catch { /* a poke without data is still a poke */ }
        onEvent(kind, data);
      });
    }
  };

  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') {
      if (!es || es.readyState === EventSource.CLOSED) open();
      else onEvent('resync', null);
    }
  });
  window.addEventListener('online', open);
  open();
}
