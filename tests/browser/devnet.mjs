// The devnet page of `lode devnet up` against a real devnet (started by
// tests/tests/browser.rs): all nodes, two groups during a partition, one tip after heal.
// env: LODE_DEVNET_PAGE (its URL), LODE_BIN and LODE_DIR (to run partition/heal),
// LODE_SCREENSHOTS.
import { execFileSync } from 'node:child_process';
import { launch, watchedPage, axe, shots, check, WAIT } from './lib.mjs';

const url = process.env.LODE_DEVNET_PAGE;
const lode = (...args) => execFileSync(process.env.LODE_BIN, [...args], { encoding: 'utf8' });
const dir = process.env.LODE_DIR;
const shoot = shots(process.env.LODE_SCREENSHOTS || 'screenshots');
const origin = new URL(url).origin;

const { browser, close } = await launch();
try {
  const { page, problems } = await watchedPage(browser, origin);
  await page.goto(url, { waitUntil: 'domcontentloaded' });
  await page.waitForSelector('main[data-ready="true"]', { timeout: WAIT });
  const count = await page.locator('[data-testid=graph-node]').count();
  check(count === Number(process.env.LODE_NODES), `the graph shows all ${count} nodes`);
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=link]').length > 0, null, { timeout: WAIT });
  check(true, 'links between connected nodes are drawn');
  const violations = await axe(page);
  check(violations.length === 0, `axe-core: devnet page clean${violations.length ? `\n${violations.join('\n')}` : ''}`);
  await shoot(page, 'devnet');

  lode('devnet', 'partition', '--dir', dir, 'node0', '/', 'node1');
  await page.waitForFunction(() => document.querySelector('[data-testid=graph]')?.getAttribute('data-groups') === '2', null, { timeout: WAIT });
  const groups = await page.$$eval('[data-testid=graph-node]', (els) => els.map((e) => `${e.dataset.name}:${e.dataset.group}`));
  check(groups.includes('node0:0') && groups.includes('node1:1'), `two groups during the partition (${groups.join(' ')})`);
  // Both sides mine on their own: two tips appear.
  await page.waitForFunction(() => document.querySelector('[data-testid=tree]')?.getAttribute('data-tips') === '2', null, { timeout: 90000 });
  check(true, 'the block tree shows two tips while partitioned');
  await shoot(page, 'devnet-partitioned');

  lode('devnet', 'heal', '--dir', dir);
  await page.waitForFunction(() => document.querySelector('[data-testid=graph]')?.getAttribute('data-groups') === '1'
    && document.querySelector('[data-testid=tree]')?.getAttribute('data-tips') === '1', null, { timeout: 90000 });
  check(true, 'one group and one tip after heal');
  await page.waitForSelector('[data-testid=reorg]', { timeout: 30000 });
  check(true, 'the reorg log shows the losing side reorganising');
  await shoot(page, 'devnet-healed');
  check(problems.length === 0, `no console error or failed request${problems.length ? `\n${problems.join('\n')}` : ''}`);
} finally {
  await close();
}
