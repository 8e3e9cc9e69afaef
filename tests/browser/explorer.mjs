// The node's explorer page against a real running node (started by tests/tests/browser.rs).
// env: LODE_URL (the node's HTTP base), LODE_TXID (a payment the wallet sent),
// LODE_SCREENSHOTS (folder for the views' screenshots).
import { launch, watchedPage, axe, shots, check, WAIT } from './lib.mjs';

const url = process.env.LODE_URL;
const txid = process.env.LODE_TXID;
const shoot = shots(process.env.LODE_SCREENSHOTS || 'screenshots');
const json = async (path) => (await fetch(`${url}${path}`)).json();

const { browser, close } = await launch();
try {
  const { page, problems } = await watchedPage(browser, url);
  await page.goto(`${url}/`, { waitUntil: 'domcontentloaded' });
  await page.waitForSelector('main[data-ready="true"]', { timeout: WAIT });
  await page.waitForSelector('#conn[data-state="live"]', { timeout: WAIT });
  check(true, 'the page loads and its event stream is live');

  // The tip shown is the node's tip.
  const shown = async () => Number((await page.textContent('[data-testid=tip-height]')).replace(/,/g, ''));
  const h0 = await shown();
  const tip = await json('/api/v1/tip');
  check(Math.abs(tip.height - h0) <= 1, `the page shows the node's tip (page ${h0}, REST ${tip.height})`);
  await page.waitForFunction(async () => true);
  const hashShown = await page.getAttribute('[data-testid=tip-hash] a', 'title');
  const atShown = await json(`/api/v1/block/${hashShown}`);
  check(atShown.height === h0, `the tip hash shown is the block at height ${h0}`);

  // A block mined while the page is open appears without a reload.
  let reloaded = false;
  page.on('framenavigated', (f) => { if (f === page.mainFrame()) reloaded = true; });
  await page.waitForFunction((h) => Number(document.querySelector('[data-testid=tip-height]').textContent.replace(/,/g, '')) > h, h0, { timeout: 60000 });
  const h1 = await shown();
  await page.waitForSelector(`[data-testid=latest-blocks] tr[data-height="${h1}"]`, { timeout: WAIT });
  check(!reloaded, `block ${h1} appeared live (was ${h0}), no reload`);

  // The hash-rate chart has points.
  await page.waitForFunction(() => Number(document.querySelector('[data-testid=hashrate-chart] svg').getAttribute('data-points')) > 1, null, { timeout: WAIT });
  const points = Number(await page.getAttribute('[data-testid=hashrate-chart] svg', 'data-points'));
  check(points > 1, `the hash-rate chart has ${points} points`);
  // Other nodes mine too: wait for one of this node's own blocks.
  let mining = await json('/api/v1/mining');
  for (let i = 0; i < 360 && mining.blocks_found === 0; i++) {
    await new Promise((r) => setTimeout(r, 500));
    mining = await json('/api/v1/mining');
  }
  check(mining.blocks_found > 0, `the node reports ${mining.blocks_found} blocks found`);
  await page.waitForFunction((n) => Number(document.querySelector('[data-testid=blocks-found]').textContent.replace(/,/g, '')) >= n, mining.blocks_found, { timeout: WAIT });
  check(true, 'blocks found on the page match the node');

  const violations = await axe(page);
  check(violations.length === 0, `axe-core: no serious or critical violation on the overview${violations.length ? `\n${violations.join('\n')}` : ''}`);
  await shoot(page, 'overview');

  // Search finds the wallet's payment, with keyboard only: "/" focuses the box.
  await page.keyboard.press('/');
  await page.keyboard.type(txid);
  await page.keyboard.press('Enter');
  await page.waitForSelector('[data-testid=txid]', { timeout: WAIT });
  check((await page.textContent('[data-testid=txid]')).trim() === txid, 'search finds the transaction the wallet sent');
  await page.waitForSelector('main[data-ready="true"]', { timeout: WAIT });
  const txViolations = await axe(page);
  check(txViolations.length === 0, `axe-core: transaction page clean${txViolations.length ? `\n${txViolations.join('\n')}` : ''}`);
  await shoot(page, 'transaction');

  // Block and address pages from the transaction's links.
  const addr = await page.getAttribute('#tx-out tbody a', 'title');
  await page.click('#tx-out tbody a');
  await page.waitForSelector('[data-testid=address-balance]', { timeout: WAIT });
  await page.waitForSelector('main[data-ready="true"]', { timeout: WAIT });
  const info = await json(`/api/v1/address/${addr}`);
  check(info.balance >= 0 && (await page.textContent('[data-testid=address-balance]')).length > 0, `the address page shows ${addr}`);
  await shoot(page, 'address');
  await page.goto(`${url}/#/block/${h1}`);
  await page.waitForSelector('[data-testid=block-hash]', { timeout: WAIT });
  const b = await json(`/api/v1/block/${h1}`);
  check((await page.textContent('[data-testid=block-hash]')).trim() === b.hash, `the block page shows block ${h1}`);
  await shoot(page, 'block');

  // Narrow screen and keyboard focus: the overview still renders.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${url}/#/`);
  await page.waitForSelector('main[data-ready="true"]', { timeout: WAIT });
  await page.keyboard.press('Tab');
  await shoot(page, 'overview-narrow');

  check(problems.length === 0, `no console error, failed request or off-node request${problems.length ? `\n${problems.join('\n')}` : ''}`);
} finally {
  await close();
}
