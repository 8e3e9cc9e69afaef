// Shared by the browser scripts: launch Debian's chromium through playwright-core, watch
// the page for console errors and failed requests, run axe-core, take screenshots.
import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
export const WAIT = 20000;

export async function launch() {
  const profile = mkdtempSync(join(tmpdir(), 'lode-chromium-'));
  // A fresh profile each run (playwright passes it as --user-data-dir).
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1280, height: 900 },
    reducedMotion: 'reduce',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const close = async () => { await browser.close().catch(() => {}); rmSync(profile, { recursive: true, force: true }); };
  return { browser, close };
}

/** A page that records every console error, page error and failed request. */
export async function watchedPage(context, origin) {
  const page = await context.newPage();
  const problems = [];
  // Chromium aborts requests in flight with ERR_NETWORK_CHANGED when the host's interfaces
  // change (other tests creating namespaces on a shared machine): the host's doing, not the
  // page's, which refetches on the next event.
  const host = (text) => /ERR_NETWORK_CHANGED/.test(text || '');
  page.on('console', (m) => { if (m.type() === 'error' && !host(m.text())) problems.push(`console error: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => {
    // The event stream is cut when the page goes away: not a failure of the page.
    if (/\/api(\/v1)?\/events$/.test(r.url()) && /ERR_ABORTED/.test(r.failure()?.errorText || '')) return;
    if (host(r.failure()?.errorText)) return;
    problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`);
  });
  page.on('response', (r) => { if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`); });
  page.on('request', (r) => { if (!r.url().startsWith(origin) && !r.url().startsWith('data:')) problems.push(`request off this node: ${r.url()}`); });
  return { page, context, problems };
}

/** axe-core's serious and critical violations on the page, as lines. */
export async function axe(page) {
  const source = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
  // Evaluated, not injected as a <script>: the page's CSP allows only its own scripts.
  await page.evaluate(source);
  const result = await page.evaluate(async () => await globalThis.axe.run(document, { resultTypes: ['violations'] }));
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join('; ')})`);
}

export function shots(dir) {
  mkdirSync(dir, { recursive: true });
  return async (page, name) => page.screenshot({ path: join(dir, `${name}.png`), fullPage: true });
}

export async function rpc(url, method, params = []) {
  const r = await fetch(`${url}/api/v1/${method}`);
  return r.json();
}

export function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
  console.log(`ok - ${what}`);
}
