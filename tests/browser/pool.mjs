// The explorer of a node running a Stratum pool (started by tests/tests/browser.rs with
// `--stratum … --pool`, a real `lode miner` having mined on it): the pool panel appears and
// its figures are getpoolinfo's. Then the node is killed and started again while the page is
// open: the indicator shows the drop and the return, and a block mined meanwhile appears
// without a reload.
// env: LODE_URL (the node's HTTP base, a fixed port), LODE_BIN, LODE_NODE_ARGS (JSON: the
// node's arguments), LODE_NODE_PID, LODE_DATA (its data dir), LODE_PIDFILE (where the
// restarted node's pid goes, for the harness to kill), LODE_MINER_ADDRESS, LODE_SCREENSHOTS.
import { spawn } from 'node:child_process';
import { openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { launch, watchedPage, axe, shots, check, WAIT } from './lib.mjs';

const url = process.env.LODE_URL;
const data = process.env.LODE_DATA;
const miner = process.env.LODE_MINER_ADDRESS;
const shoot = shots(process.env.LODE_SCREENSHOTS || 'screenshots');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const json = async (path) => (await fetch(`${url}${path}`)).json();

async function rpc(method, params = [], auth = false) {
  const headers = { 'content-type': 'application/json' };
  if (auth) headers.authorization = `Basic ${Buffer.from(readFileSync(join(data, '.cookie'), 'utf8').trim()).toString('base64')}`;
  const r = await fetch(`${url}/rpc`, { method: 'POST', headers, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }) });
  const body = await r.json();
  if (body.error) throw new Error(`${method}: ${JSON.stringify(body.error)}`);
  return body.result;
}

const { browser, close } = await launch();
let restarted = null;
try {
  const { page, problems } = await watchedPage(browser, url);
  await page.goto(`${url}/`, { waitUntil: 'domcontentloaded' });
  await page.waitForSelector('main[data-ready="true"]', { timeout: WAIT });
  await page.waitForSelector('#conn[data-state="live"]', { timeout: WAIT });

  // ---- the pool panel and getpoolinfo ----
  await page.waitForSelector('#pool[data-running="true"]', { state: 'visible', timeout: WAIT });
  const info = await rpc('getpoolinfo');
  const stratum = await rpc('getstratuminfo');
  const text = async (sel) => (await page.textContent(sel)).trim();
  const n = (s) => Number(s.replace(/,/g, ''));
  check(n(await text('[data-testid=pool-blocks]')) === info.blocks_found, `pool blocks found: page = getpoolinfo = ${info.blocks_found}`);
  check(n(await text('[data-testid=pool-shares]')) === info.shares_accepted, `shares accepted: page = getpoolinfo = ${info.shares_accepted}`);
  check(info.blocks_found > 0 && info.shares_accepted > 0, 'the miner found pool blocks');

  const miners = await page.$$eval('[data-testid=pool-miners] tbody tr', (rows) => rows.map((r) => [r.dataset.address, Number(r.dataset.payout)]));
  const expected = info.miners.map((m) => [m.address, m.estimated_payout]);
  check(JSON.stringify(miners) === JSON.stringify(expected), `window miners and estimated payouts: page ${JSON.stringify(miners)} = getpoolinfo ${JSON.stringify(expected)}`);
  check(miners.some(([a]) => a === miner), `the lode miner's address ${miner} is in the window`);

  const workers = await page.$$eval('[data-testid=pool-workers] tbody tr', (rows) => rows.map((r) => [r.dataset.worker, Number(r.dataset.accepted)]));
  const expectedWorkers = stratum.workers.map((w) => [w.worker, w.accepted]);
  check(JSON.stringify(workers) === JSON.stringify(expectedWorkers), `workers and their shares: page ${JSON.stringify(workers)} = getstratuminfo ${JSON.stringify(expectedWorkers)}`);

  const recent = await page.$$eval('[data-testid=pool-recent] tbody tr', (rows) => rows.map((r) => r.dataset.hash));
  check(JSON.stringify(recent) === JSON.stringify(info.recent_blocks.map((b) => b.hash)), `recent pool blocks: ${recent.length}, as getpoolinfo lists them`);
  const newest = await rpc('getpoolblock', [recent[0]]);
  const paid = await page.$$eval(`[data-testid=pool-recent] tr[data-hash="${recent[0]}"] li`, (lis) => lis.map((l) => [l.dataset.address, Number(l.dataset.amount)]));
  const audit = newest.outputs.map((o) => [o.address, o.amount]);
  check(JSON.stringify(paid) === JSON.stringify(audit), `payouts of block ${newest.height}: page = getpoolblock ${JSON.stringify(audit)}`);

  const violations = await axe(page);
  check(violations.length === 0, `axe-core: the pool panel is clean${violations.length ? `\n${violations.join('\n')}` : ''}`);
  await page.locator('#pool').scrollIntoViewIfNeeded();
  await page.locator('#pool').screenshot({ path: join(process.env.LODE_SCREENSHOTS || 'screenshots', 'pool.png') });

  // ---- a dropped and resumed stream: the node is killed and started again ----
  let reloaded = false;
  page.on('framenavigated', (f) => { if (f === page.mainFrame()) reloaded = true; });
  const before = (await json('/api/v1/tip')).height;
  process.kill(Number(process.env.LODE_NODE_PID), 'SIGKILL');
  await page.waitForFunction(() => document.getElementById('conn').dataset.state !== 'live', null, { timeout: WAIT });
  const dropped = await page.getAttribute('#conn', 'data-state');
  check(dropped === 'reconnecting' || dropped === 'offline', `the indicator shows the drop (${dropped}: ${await text('#conn-text')})`);
  await shoot(page, 'overview-disconnected');

  // The killed node left its URL and cookie files; the new one writes fresh ones.
  const log = openSync(join(data, '..', 'node-restarted.log'), 'w');
  const args = JSON.parse(process.env.LODE_NODE_ARGS);
  restarted = spawn(process.env.LODE_BIN, args, { stdio: ['ignore', 'ignore', log] });
  writeFileSync(process.env.LODE_PIDFILE, String(restarted.pid));
  // Mine a block as soon as the node answers: before the page has its stream back.
  let mined = null;
  for (let i = 0; i < 600 && !mined; i++) {
    try {
      mined = await rpc('generate', [1], true);
    } catch {
      await sleep(100);
    }
  }
  check(mined && mined.length === 1, `the restarted node mined block ${before + 1} (${mined})`);
  await page.waitForSelector('#conn[data-state="live"]', { timeout: WAIT });
  check(true, 'the indicator shows the stream is back');
  await page.waitForFunction((h) => Number(document.querySelector('[data-testid=tip-height]').textContent.replace(/,/g, '')) >= h, before + 1, { timeout: WAIT });
  await page.waitForSelector(`[data-testid=latest-blocks] tr[data-height="${before + 1}"]`, { timeout: WAIT });
  check(!reloaded, `block ${before + 1}, mined while the stream was down, appeared without a reload`);
  // And the stream is really live again, not just refetched once: the next block's tip
  // event is announced (the page announces at most one block per 5 s, hence the pause).
  await sleep(5500);
  await rpc('generate', [1], true);
  await page.waitForFunction((h) => document.getElementById('announce').textContent === `New block at height ${h}`, before + 2, { timeout: WAIT });
  await page.waitForSelector(`[data-testid=latest-blocks] tr[data-height="${before + 2}"]`, { timeout: WAIT });
  check(!reloaded, `block ${before + 2}, mined after the return, arrived as an event on the resumed stream`);

  // Requests cut by the kill are the test's doing; anything else is a problem.
  const real = problems.filter((p) => !/ERR_CONNECTION_REFUSED|ERR_EMPTY_RESPONSE|ERR_CONNECTION_RESET|ERR_INCOMPLETE_CHUNKED_ENCODING|Failed to fetch|net::ERR/.test(p));
  check(real.length === 0, `no console error or failed request other than the kill's${real.length ? `\n${real.join('\n')}` : ''}`);
} finally {
  await close();
  // The harness kills it too (by the pid file); without this the script would wait on it.
  if (restarted) restarted.kill('SIGKILL');
}
