// The views: overview (chain, mining, mempool, network), block, transaction, address.
// Each view is {title, mount(main) -> refresh()}; refresh() refetches and redraws in place.
import { api, h, coins, rate, bytes, num, diff, ago, utc, hashLink, table, kv, card } from './format.js';
import { lineChart, barChart } from './charts.js';

function section(id, title, ...body) {
  return h('section', { class: 'panel', id, 'aria-labelledby': `${id}-h` }, h('h2', { id: `${id}-h` }, title), ...body);
}

function fill(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
}

function errorBox(e) {
  return h('p', { class: 'tag bad', role: 'alert' }, String(e.message || e));
}

// ---------- pool panel (only when this node runs a Stratum pool) ----------

const pct = (f) => `${num(100 * (Number(f) || 0), 2)} %`;
const addrLink = (a) => hashLink('address', a);
// `ADDRESS.rig`: the address middle-truncated (full name in the title), the rig in full.
const shortWorker = (w) => {
  const [a, ...rig] = w.split('.');
  const shown = a.length > 20 ? `${a.slice(0, 10)}…${a.slice(-6)}` : a;
  return rig.length ? `${shown}.${rig.join('.')}` : shown;
};

function poolPanel(pool) {
  return [
    h('div', { class: 'cards' },
      card('Pool hash rate (15 min)', rate(pool.hashrate), 'pool-hashrate'),
      card('Connections', num(pool.connections), 'pool-connections'),
      card('Shares accepted', num(pool.shares_accepted), 'pool-shares'),
      card('Blocks found', num(pool.blocks_found), 'pool-blocks'),
      card('Window (PPLNS)', `${num(pool.window, 2)} × net difficulty · ${pct(pool.window_filled)} full`, 'pool-window'),
      card('Fee', `${num(pool.fee_bps / 100, 2)} %`, 'pool-fee')),
    h('div', { class: 'grid' },
      h('div', {}, h('h3', {}, 'Miners in the window'),
        pool.miners.length ? table('Miners in the current window, by payout address',
          [['Address'], ['Window share', 'num'], ['Next block pays', 'num']],
          pool.miners.map((m) => h('tr', { 'data-address': m.address, 'data-payout': m.estimated_payout },
            h('td', {}, addrLink(m.address)),
            h('td', { class: 'num' }, pct(m.window_fraction)),
            h('td', { class: 'num' }, coins(m.estimated_payout)))),
          { 'data-testid': 'pool-miners' }) : h('p', { class: 'muted' }, 'No shares in the window yet.')),
      h('div', {}, h('h3', {}, 'Workers'),
        pool.workers.length ? table('Stratum workers: hash rate and shares',
          [['Worker'], ['Hash rate', 'num'], ['Accepted', 'num'], ['Refused', 'num'], ['Blocks', 'num'], ['Last share']],
          pool.workers.map((w) => h('tr', { 'data-worker': w.worker, 'data-accepted': w.accepted },
            h('td', { class: 'mono', title: w.worker }, shortWorker(w.worker)),
            h('td', { class: 'num' }, rate(w.hashrate)),
            h('td', { class: 'num', 'data-testid': 'worker-accepted' }, num(w.accepted)),
            h('td', { class: 'num' }, num(w.rejected)),
            h('td', { class: 'num' }, num(w.blocks)),
            h('td', { title: w.last_share ? utc(w.last_share) : '' }, w.last_share ? ago(w.last_share) : '–'))),
          { 'data-testid': 'pool-workers' }) : h('p', { class: 'muted' }, 'No worker has connected yet.'))),
    h('h3', {}, 'Recent pool blocks and their payouts'),
    pool.recent_blocks.length ? table('Blocks the pool found, newest first, with what their coinbase paid',
      [['Height'], ['Hash'], ['Found'], ['Reward', 'num'], ['Fee', 'num'], ['Paid to']],
      pool.recent_blocks.map((b) => h('tr', { 'data-hash': b.hash },
        h('td', {}, h('a', { href: `#/block/${b.hash}` }, num(b.height))),
        h('td', {}, hashLink('block', b.hash)),
        h('td', { title: utc(b.time) }, ago(b.time)),
        h('td', { class: 'num' }, coins(b.reward)),
        h('td', { class: 'num' }, coins(b.fee)),
        h('td', {}, h('ul', { class: 'payouts' }, b.payouts.map((p) => h('li', { 'data-address': p.address, 'data-amount': p.amount },
          addrLink(p.address), ' ', h('span', { class: 'mono', 'data-testid': 'payout-amount' }, coins(p.amount)))))))),
      { 'data-testid': 'pool-recent' }) : h('p', { class: 'muted' }, 'The pool has found no block yet.'),
  ];
}

// ---------- overview ----------

export function overview() {
  let lastTop = null;
  const els = {};
  return {
    title: 'Overview',
    mount(main) {
      els.cards = h('div', { class: 'cards', 'aria-live': 'off' });
      els.blocks = h('div');
      els.mining = h('div');
      els.pool = section('pool', 'Pool');
      els.pool.classList.add('hidden');
      els.poolBody = h('div');
      els.pool.append(els.poolBody);
      els.mempool = h('div');
      els.network = h('div');
      fill(main,
        h('h1', {}, 'Overview'),
        els.cards,
        section('latest', 'Latest blocks', els.blocks),
        section('mining', 'Mining', els.mining),
        els.pool,
        h('div', { class: 'grid' },
          section('mempool', 'Mempool', els.mempool),
          section('network', 'Network', els.network)));
    },
    async refresh() {
      const [status, series, mining, hashrate, hist, peers, pool] = await Promise.all([
        api('/api/v1/status'), api('/api/v1/series/blocks?count=100'), api('/api/v1/mining'),
        api('/api/v1/mining/hashrate?range=10m'), api('/api/v1/mempool/histogram'), api('/api/v1/peers'),
        api('/api/v1/pool'),
      ]);
      document.getElementById('network').textContent = status.network;
      fill(els.cards,
        card('Height', num(status.height), 'tip-height'),
        card('Tip', hashLink('block', status.tip), 'tip-hash'),
        card('Difficulty (next)', diff(mining.difficulty), 'difficulty'),
        card('Mempool', `${num(status.mempool_size)} tx · ${bytes(status.mempool_bytes)}`, 'mempool-count'),
        card('Peers', num(status.peers), 'peer-count'),
        card('Hash rate', status.mining ? rate(mining.hashrate) : 'not mining', 'hashrate'));

      const latest = series.blocks.slice(-12).reverse();
      const prevTop = lastTop;
      lastTop = status.height;
      fill(els.blocks, latest.length ? table('Latest blocks of the best chain',
        [['Height'], ['Hash'], ['Time'], ['Txs', 'num'], ['Size', 'num'], ['Reward', 'num'], ['Difficulty', 'num']],
        latest.map((b) => h('tr', { class: prevTop !== null && b.height > prevTop ? 'new-row' : null, 'data-height': b.height },
          h('td', {}, h('a', { href: `#/block/${b.hash}` }, num(b.height))),
          h('td', {}, hashLink('block', b.hash)),
          h('td', { title: utc(b.time) }, ago(b.time)),
          h('td', { class: 'num' }, num(b.ntx)),
          h('td', { class: 'num' }, bytes(b.size)),
          h('td', { class: 'num' }, coins(b.reward)),
          h('td', { class: 'num' }, diff(b.difficulty)))),
        { 'data-testid': 'latest-blocks' }) : h('p', { class: 'muted' }, 'No blocks yet.'));

      const samples = hashrate.samples;
      const t = (x) => new Date(x * 1000).toISOString().slice(11, 19);
      const threads = Math.max(0, ...samples.map((p) => p.threads.length));
      const hrSeries = [{ label: 'total', cls: 's1', points: samples.map((p) => [p.t, p.total]) }];
      if (threads > 1) {
        for (let i = 0; i < Math.min(threads, 2); i++) {
          hrSeries.push({ label: `thread ${i}`, cls: i ? 's3' : 's2', points: samples.filter((p) => p.threads[i] !== undefined).map((p) => [p.t, p.threads[i]]) });
        }
      }
      const bs = series.blocks.filter((b) => b.height > 0);
      // Block 1's parent is the fixed genesis, months old: its interval says nothing.
      const ints = series.blocks.filter((b) => b.height > 1);
      const avgInt = ints.length ? ints.reduce((a, b) => a + b.interval, 0) / ints.length : 0;
      fill(els.mining,
        h('div', { class: 'cards' },
          card('Miner', mining.mining ? `on · ${mining.threads} thread${mining.threads === 1 ? '' : 's'}` : 'off', 'miner-state'),
          card('Blocks found', num(mining.blocks_found), 'blocks-found'),
          card('Stale blocks', num(mining.blocks_stale), 'blocks-stale'),
          card('Rewards (best chain)', coins(mining.rewards), 'rewards')),
        h('div', { class: 'grid' },
          h('div', {}, h('h3', {}, 'Hash rate, last 10 minutes'),
            lineChart(hrSeries, {
              title: 'Hash rate', testid: 'hashrate-chart', xFmt: t, yFmt: rate, xLabel: 'time (UTC)',
              summary: samples.length ? `Hash rate over ${samples.length} one-second samples; now ${rate(samples[samples.length - 1].total)}.` : 'No hash-rate samples yet.',
              empty: 'no samples yet',
            })),
          h('div', {}, h('h3', {}, 'Difficulty, last 100 blocks'),
            lineChart([{ label: 'difficulty', cls: 's1', points: bs.map((b) => [b.height, b.difficulty]) }], {
              title: 'Difficulty', testid: 'difficulty-chart', xFmt: (x) => `#${Math.round(x)}`, yFmt: diff, xLabel: 'height',
              summary: bs.length ? `Difficulty from ${diff(bs[0].difficulty)} to ${diff(bs[bs.length - 1].difficulty)} over ${bs.length} blocks.` : 'No blocks yet.',
            })),
          h('div', {}, h('h3', {}, 'Block interval, last 100 blocks'),
            lineChart([{ label: 'seconds', cls: 's2', points: ints.map((b) => [b.height, b.interval]) }], {
              title: 'Block interval', testid: 'interval-chart', xFmt: (x) => `#${Math.round(x)}`, yFmt: (v) => `${num(v, 1)} s`, xLabel: 'height',
              summary: ints.length ? `Mean interval ${num(avgInt, 2)} s over ${ints.length} blocks.` : 'No intervals yet.',
            }))));

      els.pool.classList.toggle('hidden', !pool.running);
      els.pool.dataset.running = String(pool.running);
      if (pool.running) fill(els.poolBody, poolPanel(pool));

      fill(els.mempool,
        h('p', {}, h('strong', { 'data-testid': 'mempool-size' }, num(hist.count)), ' transactions, ', bytes(hist.bytes)),
        barChart(hist.buckets.map((b) => ({ label: `${b.min_feerate}${b.max_feerate ? '' : '+'}`, value: b.count, title: `${b.min_feerate}${b.max_feerate ? `–${b.max_feerate - 1}` : '+'} units/B: ${b.count} tx, ${bytes(b.bytes)}` })), {
          title: 'Fee-rate histogram', testid: 'fee-histogram', yFmt: (v) => num(v), xLabel: 'fee rate (units/byte)', yLabel: 'transactions',
          summary: `Mempool transactions by fee rate (units per byte): ${hist.count} in all.`,
        }));

      fill(els.network, peers.length ? table('Connected peers',
        [['Direction'], ['Address'], ['Height', 'num'], ['Ping', 'num']],
        peers.map((p) => h('tr', {},
          h('td', {}, p.inbound ? 'inbound' : 'outbound'),
          h('td', { class: 'mono', title: `${p.addr}/p2p/${p.id}` }, p.addr),
          h('td', { class: 'num' }, p.height === null || p.height === undefined ? '–' : num(p.height)),
          h('td', { class: 'num' }, p.ping_ms === null || p.ping_ms === undefined ? '–' : `${num(p.ping_ms, 1)} ms`))),
        { 'data-testid': 'peers' }) : h('p', { class: 'muted' }, 'No peers connected.'));
    },
  };
}

// ---------- block ----------

export function blockView(id) {
  let main;
  return {
    title: `Block ${id}`,
    mount(m) { main = m; },
    async refresh() {
      const b = await api(`/api/v1/block/${encodeURIComponent(id)}`);
      const onBest = b.confirmations > 0;
      fill(main,
        h('h1', {}, `Block ${num(b.height)}`),
        section('block', 'Header', kv([
          ['Hash', h('span', { class: 'mono', 'data-testid': 'block-hash' }, b.hash)],
          ['Status', onBest ? h('span', { class: 'tag good' }, `best chain · ${num(b.confirmations)} confirmations`) : h('span', { class: 'tag warn' }, 'not on the best chain')],
          ['Time', `${utc(b.time)} (${ago(b.time)})`],
          ['Transactions', num(b.nTx)],
          ['Size', bytes(b.size)],
          ['Difficulty', diff(b.difficulty)],
          ['Bits', h('span', { class: 'mono' }, b.bits)],
          ['Nonce', num(b.nonce)],
          ['Merkle root', h('span', { class: 'mono' }, b.merkleroot)],
          ['Previous', b.previousblockhash ? hashLink('block', b.previousblockhash, true) : '—'],
          ['Next', b.nextblockhash ? hashLink('block', b.nextblockhash, true) : '—'],
        ])),
        section('block-txs', 'Transactions', table('Transactions of the block', [['#', 'num'], ['Txid']],
          b.tx.map((txid, i) => h('tr', {}, h('td', { class: 'num' }, i), h('td', {}, hashLink('tx', txid, true)))))));
    },
  };
}

// ---------- transaction ----------

export function txView(id) {
  let main;
  const prevCache = new Map();
  return {
    title: `Transaction ${id}`,
    mount(m) { main = m; },
    async refresh() {
      const tx = await api(`/api/v1/tx/${encodeURIComponent(id)}`);
      const inPool = !tx.blockhash;
      const outSum = tx.vout.reduce((a, o) => a + BigInt(o.value), 0n);
      const isCoinbase = tx.vin.some((i) => i.coinbase);
      let fee = tx.fee !== undefined ? BigInt(tx.fee) : null;
      const inputs = [];
      for (const i of tx.vin.slice(0, 50)) {
        if (i.coinbase) { inputs.push({ i, value: null }); continue; }
        let prev = prevCache.get(i.txid);
        if (!prev) { prev = await api(`/api/v1/tx/${i.txid}`); prevCache.set(i.txid, prev); }
        const out = prev.vout.find((o) => o.n === i.vout);
        inputs.push({ i, value: out ? BigInt(out.value) : null, address: out?.address });
      }
      if (fee === null && !isCoinbase && inputs.length === tx.vin.length && inputs.every((x) => x.value !== null)) {
        fee = inputs.reduce((a, x) => a + x.value, 0n) - outSum;
      }
      fill(main,
        h('h1', {}, isCoinbase ? 'Coinbase transaction' : 'Transaction'),
        section('tx', 'Summary', kv([
          ['Txid', h('span', { class: 'mono', 'data-testid': 'txid' }, tx.txid)],
          ['Status', inPool
            ? h('span', { class: 'tag warn', 'data-testid': 'tx-status' }, 'in the mempool (unconfirmed)')
            : h('span', { class: 'tag good', 'data-testid': 'tx-status' }, `${num(tx.confirmations)} confirmation${tx.confirmations === 1 ? '' : 's'}`)],
          ['Block', inPool ? '—' : h('span', {}, hashLink('block', tx.blockhash), ` at height ${num(tx.height)}`)],
          ['Fee', isCoinbase ? 'none (coinbase)' : fee === null ? 'unknown' : `${coins(fee)} (${num(Number(fee) / tx.size, 2)} units/B)`],
          ['Size', bytes(tx.size)],
          ['Output total', coins(outSum)],
        ])),
        h('div', { class: 'grid' },
          section('tx-in', `Inputs (${tx.vin.length})`, table('Inputs', [['#', 'num'], ['Spends'], ['From'], ['Value', 'num']],
            inputs.map(({ i, value, address }, n) => h('tr', {},
              h('td', { class: 'num' }, n),
              h('td', {}, i.coinbase ? `coinbase (height ${i.height})` : h('span', {}, hashLink('tx', i.txid), `:${i.vout}`)),
              h('td', {}, address ? hashLink('address', address) : '—'),
              h('td', { class: 'num' }, value === null ? '—' : coins(value)))))),
          section('tx-out', `Outputs (${tx.vout.length})`, table('Outputs', [['#', 'num'], ['To'], ['Value', 'num']],
            tx.vout.map((o) => h('tr', {},
              h('td', { class: 'num' }, o.n),
              h('td', {}, hashLink('address', o.address)),
              h('td', { class: 'num' }, coins(o.value))))))));
    },
  };
}

// ---------- address ----------

export function addressView(addr, page = 0) {
  let main;
  return {
    title: `Address ${addr}`,
    mount(m) { main = m; },
    async refresh() {
      const a = await api(`/api/v1/address/${encodeURIComponent(addr)}?page=${page}&limit=25`);
      const pages = Math.max(1, Math.ceil(a.history.total / a.history.limit));
      const nav = h('p', {},
        page > 0 ? h('a', { href: `#/address/${addr}/${page - 1}` }, '← newer') : null, ' ',
        `page ${page + 1} of ${pages}`, ' ',
        page + 1 < pages ? h('a', { href: `#/address/${addr}/${page + 1}` }, 'older →') : null);
      fill(main,
        h('h1', {}, 'Address'),
        section('addr', 'Balance', kv([
          ['Address', h('span', { class: 'mono' }, a.address)],
          ['Balance (confirmed)', h('strong', { 'data-testid': 'address-balance' }, coins(a.balance))],
          ['Received', coins(a.received)],
          ['Sent', coins(a.sent)],
          ['Unspent outputs', num(a.utxo_count)],
        ])),
        h('div', { class: 'grid' },
          section('addr-history', `History (${num(a.history.total)} transactions)`,
            table('Transactions of the address, newest first', [['Txid'], ['Height', 'num'], ['Change', 'num']],
              a.history.items.map((it) => h('tr', {},
                h('td', {}, hashLink('tx', it.txid)),
                h('td', { class: 'num' }, num(it.height)),
                h('td', { class: `num ${it.delta < 0 ? 'neg' : 'pos'}` }, `${it.delta < 0 ? '' : '+'}${coins(it.delta)}`)))),
            nav),
          section('addr-utxos', 'Unspent outputs', table('Unspent outputs', [['Output'], ['Height', 'num'], ['Value', 'num']],
            a.utxos.slice(-50).reverse().map((u) => h('tr', {},
              h('td', {}, hashLink('tx', u.txid), `:${u.vout}`),
              h('td', { class: 'num' }, num(u.height)),
              h('td', { class: 'num' }, coins(u.value))))),
          a.utxo_count > 50 ? h('p', { class: 'muted' }, `Showing the newest 50 of ${num(a.utxo_count)}.`) : null)));
    },
  };
}

export function notFound(what) {
  let main;
  return {
    title: 'Not found',
    mount(m) { main = m; },
    async refresh() {
      fill(main, h('h1', {}, 'Nothing found'), h('p', {}, `Nothing on this node matches “${what}”. `, h('a', { href: '#/' }, 'Back to the overview')));
    },
  };
}

export { errorBox };
