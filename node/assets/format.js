// Formatting and small DOM helpers shared by the views. Everything is built with
// createElement and textContent: nothing from the API is ever parsed as HTML.

export const COIN = 100000000n;

/** Base units (number or bigint) as coins with 8 decimals. */
export function coins(units) {
  const v = BigInt(Math.trunc(Number(units ?? 0)));
  const neg = v < 0n;
  const a = neg ? -v : v;
  const whole = a / COIN;
  const frac = (a % COIN).toString().padStart(8, '0');
  return `${neg ? '-' : ''}${whole.toLocaleString('en-US')}.${frac}`;
}

/** Hashes per second with a unit. */
export function rate(h) {
  const units = ['H/s', 'kH/s', 'MH/s', 'GH/s', 'TH/s'];
  let v = Number(h) || 0;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  return `${v.toFixed(v >= 100 || i === 0 ? 0 : 2)} ${units[i]}`;
}

export function bytes(n) {
  const v = Number(n) || 0;
  if (v < 1000) return `${v} B`;
  if (v < 1e6) return `${(v / 1000).toFixed(1)} kB`;
  return `${(v / 1e6).toFixed(2)} MB`;
}

export function num(n, digits = 0) {
  return Number(n ?? 0).toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

/** A difficulty, compact. */
export function diff(d) {
  const v = Number(d) || 0;
  if (v >= 1e6) return v.toExponential(3);
  return v.toLocaleString('en-US', { maximumFractionDigits: v < 10 ? 4 : 1 });
}

export function utc(unix) {
  return new Date(Number(unix) * 1000).toISOString().replace('T', ' ').replace('.000Z', ' UTC');
}

/** "12 s ago", with the UTC time for the title. */
export function ago(unix) {
  const s = Math.round(Date.now() / 1000 - Number(unix));
  if (s < 0) return `in ${-s} s`;
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 129600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

/** Element builder: h('a', {href: '#/'}, 'text', child). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** A hash as a monospace link, middle-truncated, the full value in the title. */
export function hashLink(kind, hash, full = false) {
  const shown = full || hash.length <= 20 ? hash : `${hash.slice(0, 10)}…${hash.slice(-8)}`;
  return h('a', { href: `#/${kind}/${encodeURIComponent(hash)}`, class: 'mono', title: hash }, shown);
}

export function table(caption, headers, rows, attrs = {}) {
  // Focusable, so a keyboard can scroll a table wider than the screen.
  return h('div', { class: 'scroll', tabindex: 0, role: 'region', 'aria-label': caption },
    h('table', attrs,
      h('caption', { class: 'sr-only' }, caption),
      h('thead', {}, h('tr', {}, headers.map(([label, cls]) => h('th', { scope: 'col', class: cls }, label)))),
      h('tbody', {}, rows)));
}

export function kv(pairs) {
  return h('dl', { class: 'kv' }, pairs.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

export function card(label, value, testid) {
  return h('div', { class: 'card' }, h('div', { class: 'label' }, label),
    h('div', { class: 'value', 'data-testid': testid }, value));
}

/** GET a JSON route of this node; throws with the server's one-line error. */
export async function api(path) {
  // The node prices reads by their work (ADR 0021): a page that refetches everything after
  // a reconnect can meet its address's quota. It then waits as told and asks again, so a
  // view is refreshed late rather than left stale until the next event.
  for (let attempt = 0; ; attempt++) {
    const r = await fetch(path, { headers: { accept: 'application/json' } });
    const body = await r.json().catch(() => ({}));
    if (r.status === 429 && attempt < 3) {
      const wait = Math.min(Number(r.headers.get('retry-after')) || 1, 10);
      await new Promise((resolve) => setTimeout(resolve, wait * 1000));
      continue;
    }
    if (!r.ok) throw new Error(body.error || `${r.status} ${r.statusText}`);
    return body;
  }
}
