// The explorer's entry: routing (#/, #/block/ID, #/tx/ID, #/address/ADDR[/PAGE],
// #/search/TEXT), search, the live link, and refreshes coalesced so a burst of events costs
// one round of requests.
import { api, h } from './format.js';
import { connect } from './live.js';
import { overview, blockView, txView, addressView, notFound, errorBox } from './views.js';

const main = document.getElementById('main');
const announce = document.getElementById('announce');
const conn = document.getElementById('conn');
const connText = document.getElementById('conn-text');
let view = null;
let running = false;
let again = false;
let lastAnnounce = 0;

function route() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  switch (parts[0]) {
    case 'block': return blockView(parts[1] || '');
    case 'tx': return txView(parts[1] || '');
    case 'address': return addressView(parts[1] || '', Math.max(0, parseInt(parts[2] || '0', 10) || 0));
    case 'notfound': return notFound(parts[1] || '');
    default: return overview();
  }
}

async function refresh() {
  if (running) { again = true; return; }
  running = true;
  try {
    do {
      again = false;
      const v = view;
      try {
        await v.refresh();
        if (v === view) main.dataset.ready = 'true';
      } catch (e) {
        if (v === view) main.replaceChildren(h('h1', {}, v.title), errorBox(e));
      }
    } while (again);
  } finally {
    running = false;
  }
}

let pending = null;
function schedule(delay = 120) {
  if (pending) return;
  pending = setTimeout(() => { pending = null; refresh(); }, delay);
}

function show() {
  view = route();
  main.dataset.ready = 'false';
  view.mount(main);
  document.title = `${view.title} · Lode explorer`;
  refresh();
}

window.addEventListener('hashchange', () => { show(); main.focus(); });

document.getElementById('search').addEventListener('submit', async (e) => {
  e.preventDefault();
  const q = document.getElementById('q').value.trim();
  if (!q) return;
  try {
    const r = await api(`/api/v1/search?q=${encodeURIComponent(q)}`);
    location.hash = r.kind === 'none' ? `#/notfound/${encodeURIComponent(q)}` : `#/${r.kind}/${encodeURIComponent(r.id)}`;
  } catch (err) {
    announce.textContent = `Search failed: ${err.message}`;
  }
});

document.addEventListener('keydown', (e) => {
  const t = e.target;
  const typing = t instanceof HTMLInputElement || t instanceof HTMLTextAreaElement || t instanceof HTMLSelectElement;
  if (e.key === '/' && !typing && !e.ctrlKey && !e.metaKey && !e.altKey) {
    e.preventDefault();
    document.getElementById('q').focus();
  }
});

connect({
  onState(state) {
    conn.dataset.state = state;
    connText.textContent = { live: 'live', connecting: 'connecting', reconnecting: 'reconnecting…', offline: 'offline — retrying' }[state] || state;
  },
  onEvent(kind, data) {
    if (kind === 'tip' && data && Date.now() - lastAnnounce > 5000) {
      lastAnnounce = Date.now();
      announce.textContent = `New block at height ${data.height}`;
    }
    if (kind === 'reorg' && data) {
      announce.textContent = `Reorganisation: ${data.disconnected.length} block(s) replaced above height ${data.fork_height}`;
    }
    schedule(kind === 'tx' ? 400 : 120);
  },
});

// Hash rate has no event: the overview polls it while visible.
setInterval(() => {
  if (document.visibilityState === 'visible' && location.hash.replace(/^#\/?/, '') === '') schedule(0);
}, 5000);

show();
