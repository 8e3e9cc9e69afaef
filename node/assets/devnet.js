// The devnet page: the supervisor's view, pushed on /api/events (server-sent events: the
// supervisor follows every node's own event stream), drawn as a graph of nodes and links
// (grouped when partitioned), a block tree of the last heights with each node at its tip,
// a node table, a reorg log, and buttons the supervisor carries out.
import { h, coins, rate, num, utc, table } from './format.js';

const NS = 'http://www.w3.org/2000/svg';
const $ = (id) => document.getElementById(id);
let state = null;
let actionsBuilt = false;

function s(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}
const short = (hash) => (hash ? `${hash.slice(0, 6)}…${hash.slice(-4)}` : '—');

/** Group index of each node: its partition group, else 0. */
function groupsOf(st) {
  const g = new Map();
  (st.groups || []).forEach((names, i) => names.forEach((n) => g.set(n, i)));
  return g;
}

function drawGraph(st) {
  const W = 520, H = 300;
  const groups = groupsOf(st);
  const ngroups = st.groups ? st.groups.length : 1;
  const svg = s('svg', { class: 'graph', viewBox: `0 0 ${W} ${H}`, role: 'group', 'aria-label': `${st.nodes.length} nodes${st.groups ? `, partitioned into ${ngroups} groups` : ''}`, 'data-testid': 'graph', 'data-groups': ngroups });
  // Each group on its own circle, side by side: a partition is seen at a glance.
  const pos = new Map();
  for (let gi = 0; gi < ngroups; gi++) {
    const members = st.nodes.filter((n) => (groups.get(n.name) ?? 0) === gi);
    const cx = (W / ngroups) * (gi + 0.5), cy = H / 2;
    const r = members.length > 1 ? Math.min(W / ngroups / 2 - 55, 95) : 0;
    members.forEach((n, i) => {
      const a = (2 * Math.PI * i) / members.length - Math.PI / 2;
      pos.set(n.name, [cx + r * Math.cos(a), cy + r * Math.sin(a)]);
    });
    if (ngroups > 1) {
      svg.append(s('text', { x: cx, y: 16, 'text-anchor': 'middle', class: 'small' }, `group ${String.fromCharCode(65 + gi)}`));
      if (gi > 0) svg.append(s('line', { x1: (W / ngroups) * gi, x2: (W / ngroups) * gi, y1: 20, y2: H - 10, class: 'link', 'stroke-dasharray': '6 5' }));
    }
  }
  const drawn = new Set();
  for (const n of st.nodes) {
    for (const p of n.peers) {
      const key = [n.name, p].sort().join('|');
      if (drawn.has(key) || !pos.has(p)) continue;
      drawn.add(key);
      const [x1, y1] = pos.get(n.name), [x2, y2] = pos.get(p);
      svg.append(s('line', { class: 'link', x1, y1, x2, y2, 'data-testid': 'link' }));
    }
  }
  const tips = [...new Set(st.nodes.filter((n) => n.up).map((n) => n.tip))];
  for (const n of st.nodes) {
    const [x, y] = pos.get(n.name) || [W / 2, H / 2];
    const label = `${n.name}: ${n.up ? `height ${n.height}, tip ${short(n.tip)}, ${n.peers.length} peers, ${n.mining ? `mining at ${rate(n.hashrate)}` : 'not mining'}` : 'down'}`;
    const g = s('g', { class: 'node', tabindex: 0, role: 'img', 'aria-label': label, 'data-testid': 'graph-node', 'data-name': n.name, 'data-group': groups.get(n.name) ?? 0 });
    g.append(s('title', {}, label));
    g.append(s('circle', { cx: x, cy: y, r: 24, class: n.up ? `g${tips.indexOf(n.tip) % 4}` : 'down' }));
    g.append(s('text', { x, y: y + 5, 'text-anchor': 'middle' }, n.name.replace('node', 'n')));
    g.append(s('text', { x, y: y + 40, 'text-anchor': 'middle', class: 'small' }, n.up ? `#${n.height} ${short(n.tip)}` : 'down'));
    g.append(s('text', { x, y: y + 54, 'text-anchor': 'middle', class: 'small' }, n.mining ? `mining ${rate(n.hashrate)}` : 'idle'));
    svg.append(g);
  }
  return svg;
}

function drawTree(st) {
  // Union of every node's last blocks: one row per branch, one column per height.
  const up = st.nodes.filter((n) => n.up && n.blocks.length);
  const tips = [...new Set(up.map((n) => n.tip))];
  const top = Math.max(0, ...up.map((n) => n.height));
  const from = Math.max(0, top - 11);
  const branches = []; // [{hashes: Map(height -> hash), nodes: [names]}]
  for (const n of up) {
    const hashes = new Map(n.blocks.filter(([ht]) => ht >= from).map(([ht, hs]) => [ht, hs]));
    let b = branches.find((x) => x.tip === n.tip);
    if (!b) { b = { tip: n.tip, height: n.height, hashes, nodes: [] }; branches.push(b); }
    b.nodes.push(n.name);
  }
  branches.sort((a, b) => b.height - a.height);
  // A node merely behind sits on an ancestor of another tip: same chain, not a fork. Its
  // names join the branch that contains its tip.
  for (let i = branches.length - 1; i >= 0; i--) {
    const b = branches[i];
    const host = branches.find((c) => c !== b && c.height > b.height && c.hashes.get(b.height) === b.tip);
    if (host) { host.behind = (host.behind || []).concat(b.nodes.map((n) => `${n}@${b.height}`)); branches.splice(i, 1); }
  }
  const W = 560, rowH = 46, H = 30 + rowH * Math.max(1, branches.length);
  const colW = (W - 90) / 12;
  void tips;
  const svg = s('svg', { class: 'tree', viewBox: `0 0 ${W} ${H}`, role: 'img', 'data-testid': 'tree', 'data-tips': branches.length,
    'aria-label': `${branches.length} branch tip${branches.length === 1 ? '' : 's'}: ${branches.map((b) => `${b.nodes.join(', ')} at height ${b.height} (${short(b.tip)})`).join('; ')}` });
  for (let ht = from; ht <= top; ht++) svg.append(s('text', { x: 10 + (ht - from) * colW, y: 14 }, `${ht}`));
  const drawnAt = new Map(); // "height:hash" -> [x, y]
  branches.forEach((b, row) => {
    const y = 24 + row * rowH;
    let prev = null;
    for (let ht = from; ht <= b.height; ht++) {
      const hash = b.hashes.get(ht);
      if (!hash) continue;
      const key = `${ht}:${hash}`;
      let at = drawnAt.get(key);
      if (!at) {
        at = [10 + (ht - from) * colW, y];
        drawnAt.set(key, at);
        const r = s('rect', { class: `blk${row === 0 ? ' best' : ''}`, x: at[0], y: at[1], width: colW - 8, height: 18, rx: 3 });
        r.append(s('title', {}, `height ${ht}: ${hash}`));
        if (prev) svg.append(s('line', { class: 'edge', x1: prev[0] + colW - 8, y1: prev[1] + 9, x2: at[0], y2: at[1] + 9 }));
        svg.append(r);
      }
      prev = at;
    }
    const label = b.nodes.join(' ') + (b.behind ? ` (${b.behind.join(' ')} behind)` : '');
    if (prev) svg.append(s('text', { x: Math.min(prev[0] + colW, W - 150), y: prev[1] + 13, 'data-testid': 'tip' }, label));
  });
  return svg;
}

function drawNodes(st) {
  return table('Devnet nodes', [['Node'], ['State'], ['Height', 'num'], ['Tip'], ['Peers'], ['Miner'], ['Hash rate', 'num'], ['Balance', 'num'], ['']],
    st.nodes.map((n) => h('tr', { 'data-testid': 'node-row', 'data-name': n.name },
      h('td', {}, h('a', { href: n.rpc, title: `${n.name}'s explorer` }, n.name)),
      h('td', {}, n.up ? h('span', { class: 'tag good' }, 'up') : h('span', { class: 'tag bad' }, 'down')),
      h('td', { class: 'num' }, num(n.height)),
      h('td', { class: 'mono', title: n.tip }, short(n.tip)),
      h('td', {}, n.peers.join(', ') || '—'),
      h('td', {}, n.mining ? 'on' : 'off'),
      h('td', { class: 'num' }, n.mining ? rate(n.hashrate) : '—'),
      h('td', { class: 'num' }, n.balance === null || n.balance === undefined ? '—' : coins(n.balance)),
      h('td', {}, n.up ? h('button', { class: 'secondary', type: 'button', 'data-testid': `miner-${n.name}`, onclick: () => act({ action: 'miner', node: n.name, on: !n.mining }) }, n.mining ? `Stop ${n.name}'s miner` : `Start ${n.name}'s miner`) : null))));
}

function select(id, label, names) {
  return h('label', { for: id }, label, h('select', { id }, names.map((n) => h('option', { value: n }, n))));
}

function buildActions(st) {
  const names = st.nodes.map((n) => n.name);
  const send = h('form', { class: 'actions', 'aria-label': 'Send coins' },
    select('send-from', 'From', names), select('send-to', 'To', names.slice(1).concat(names.slice(0, 1))),
    h('label', { for: 'send-amount' }, 'Coins', h('input', { id: 'send-amount', value: '1.5', inputmode: 'decimal', size: 8 })),
    h('button', { type: 'submit' }, 'Send'));
  send.addEventListener('submit', (e) => { e.preventDefault(); act({ action: 'send', from: $('send-from').value, to: $('send-to').value, amount: $('send-amount').value }); });
  const parts = [h('h3', {}, 'Send from one wallet to another'), send];
  if (st.network === 'regtest') {
    const mine = h('form', { class: 'actions', 'aria-label': 'Mine blocks' },
      select('mine-node', 'Node', names),
      h('label', { for: 'mine-n' }, 'Blocks', h('input', { id: 'mine-n', value: '1', inputmode: 'numeric', size: 4 })),
      h('button', { type: 'submit' }, 'Mine'));
    mine.addEventListener('submit', (e) => { e.preventDefault(); act({ action: 'mine', node: $('mine-node').value, n: Number($('mine-n').value) }); });
    parts.push(h('h3', {}, 'Mine blocks now (regtest)'), mine);
  } else {
    parts.push(h('p', { class: 'muted' }, 'Mining N blocks on demand is for regtest devnets; here, start or stop a node\u2019s miner in the table.'));
  }
  $('actions').replaceChildren(...parts);
}

async function act(body) {
  const out = $('result');
  out.textContent = 'working…';
  try {
    const r = await fetch('/api/action', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const j = await r.json();
    out.textContent = r.ok ? `done: ${body.action} ${JSON.stringify(j.result).slice(0, 120)}` : `refused: ${j.error}`;
  } catch (e) {
    out.textContent = `failed: ${e.message}`;
  }
  refresh();
}

function render(st) {
  $('network').textContent = st.network;
  const tips = new Set(st.nodes.filter((n) => n.up).map((n) => n.tip));
  $('summary').textContent = `${st.nodes.length} nodes · ${tips.size} tip${tips.size === 1 ? '' : 's'}${st.groups ? ` · partitioned: ${st.groups.map((g) => g.join(',')).join(' / ')}` : ''}`;
  $('graph').replaceChildren(drawGraph(st));
  $('tree').replaceChildren(drawTree(st));
  $('nodes').replaceChildren(drawNodes(st));
  if (!actionsBuilt) { buildActions(st); actionsBuilt = true; }
  $('reorgs').replaceChildren(st.reorgs.length
    ? table('Reorganisations, newest first', [['When'], ['Node'], ['Depth', 'num'], ['Old tip'], ['New tip']],
      st.reorgs.map((r) => h('tr', { 'data-testid': 'reorg' },
        h('td', {}, utc(r.time)), h('td', {}, r.node), h('td', { class: 'num' }, r.depth),
        h('td', { class: 'mono', title: r.old[1] }, `#${r.old[0]} ${short(r.old[1])}`),
        h('td', { class: 'mono', title: r.new[1] }, `#${r.new[0]} ${short(r.new[1])}`))))
    : h('p', { class: 'muted' }, 'None seen since this page\u2019s supervisor started.'));
  $('main').dataset.ready = st.nodes.length && st.nodes.every((n) => n.up) ? 'true' : 'false';
}

function setConn(state, text) {
  $('conn').dataset.state = state;
  $('conn-text').textContent = text;
}

async function refresh() {
  try {
    const r = await fetch('/api/state', { cache: 'no-store' });
    state = await r.json();
    render(state);
  } catch {
    /* the stream's state says whether the supervisor is reachable */
  }
}

// The browser reopens a dropped stream by itself; if it gives up (CLOSED), open a new one.
let es = null;
function connect() {
  if (es) es.close();
  es = new EventSource('/api/events');
  es.onopen = () => setConn('live', 'live');
  es.onerror = () => {
    if (es.readyState === EventSource.CLOSED) {
      setConn('offline', 'supervisor unreachable — retrying');
      setTimeout(connect, 2000);
    } else {
      setConn('reconnecting', 'reconnecting…');
    }
  };
  es.addEventListener('state', (e) => {
    try { state = JSON.parse(e.data); } catch { return; }
    render(state);
  });
}
connect();
