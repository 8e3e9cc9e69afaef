// Hand-written SVG charts: a line chart for series over time and a bar chart for the
// fee histogram. Each is a <figure> with a caption, an accessible summary, and the numbers
// behind it as a table under "Show as table".
import { h } from './format.js';

const NS = 'http://www.w3.org/2000/svg';
const W = 600, H = 170, L = 78, R = 10, T = 10, B = 24;

function s(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

function extent(values) {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) { if (v < lo) lo = v; if (v > hi) hi = v; }
  if (!isFinite(lo)) { lo = 0; hi = 1; }
  if (lo === hi) { hi = lo + (Math.abs(lo) || 1); lo = Math.min(0, lo); }
  return [lo, hi];
}

function dataTable(caption, xLabel, xFmt, series, yFmt) {
  const rows = [];
  const first = series[0]?.points || [];
  for (let i = Math.max(0, first.length - 20); i < first.length; i++) {
    rows.push(h('tr', {}, h('td', {}, xFmt(first[i][0])),
      series.map((sr) => h('td', { class: 'num' }, sr.points[i] ? yFmt(sr.points[i][1]) : '–'))));
  }
  return h('details', {}, h('summary', {}, 'Show as table (last 20)'),
    h('div', { class: 'scroll', tabindex: 0, role: 'region', 'aria-label': `${caption} as a table` }, h('table', {},
      h('caption', { class: 'sr-only' }, caption),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, xLabel),
        series.map((sr) => h('th', { scope: 'col', class: 'num' }, sr.label)))),
      h('tbody', {}, rows))));
}

/**
 * A line chart. series: [{label, cls: 's1'|'s2'|'s3', points: [[x, y], …]}].
 * opts: {title, testid, xFmt, yFmt, xLabel, summary, empty}.
 */
export function lineChart(series, opts) {
  const all = series.flatMap((sr) => sr.points);
  const svg = s('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': opts.summary || opts.title, 'data-points': all.length });
  const [x0, x1] = extent(all.map((p) => p[0]));
  const [, y1] = extent(all.map((p) => p[1]).concat([0]));
  const y0 = Math.min(0, ...all.map((p) => p[1]));
  const X = (x) => L + ((x - x0) / (x1 - x0 || 1)) * (W - L - R);
  const Y = (y) => T + (1 - (y - y0) / (y1 - y0 || 1)) * (H - T - B);
  for (let i = 0; i <= 3; i++) {
    const v = y0 + ((y1 - y0) * i) / 3;
    svg.append(s('line', { class: 'grid', x1: L, x2: W - R, y1: Y(v), y2: Y(v) }));
    svg.append(s('text', { x: L - 4, y: Y(v) + 4, 'text-anchor': 'end' }, opts.yFmt(v)));
  }
  svg.append(s('line', { class: 'axis', x1: L, x2: L, y1: T, y2: H - B }));
  svg.append(s('line', { class: 'axis', x1: L, x2: W - R, y1: H - B, y2: H - B }));
  if (all.length) {
    svg.append(s('text', { x: L, y: H - 6, 'text-anchor': 'start' }, opts.xFmt(x0)));
    svg.append(s('text', { x: W - R, y: H - 6, 'text-anchor': 'end' }, opts.xFmt(x1)));
  } else {
    svg.append(s('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle' }, opts.empty || 'no data yet'));
  }
  for (const sr of series) {
    if (!sr.points.length) continue;
    const d = sr.points.map((p, i) => `${i ? 'L' : 'M'}${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join('');
    svg.append(s('path', { class: sr.cls || 's1', d }));
    if (sr.points.length <= 2) {
      for (const p of sr.points) svg.append(s('circle', { class: 'pt', cx: X(p[0]), cy: Y(p[1]), r: 3 }));
    }
  }
  const legend = series.length > 1
    ? h('div', { class: 'legend' }, series.map((sr) => h('span', {}, h('span', { class: `sw ${sr.cls}` }), sr.label)))
    : null;
  return h('figure', { 'data-testid': opts.testid },
    svg, legend,
    h('figcaption', {}, opts.summary || opts.title),
    dataTable(opts.title, opts.xLabel || 'x', opts.xFmt, series, opts.yFmt));
}

/** A bar chart. bars: [{label, value, title}]. */
export function barChart(bars, opts) {
  const svg = s('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': opts.summary || opts.title });
  const max = Math.max(1, ...bars.map((b) => b.value));
  const bw = (W - L - R) / Math.max(1, bars.length);
  const Y = (v) => T + (1 - v / max) * (H - T - B);
  svg.append(s('line', { class: 'axis', x1: L, x2: W - R, y1: H - B, y2: H - B }));
  svg.append(s('text', { x: L - 4, y: T + 8, 'text-anchor': 'end' }, opts.yFmt(max)));
  svg.append(s('text', { x: L - 4, y: H - B, 'text-anchor': 'end' }, '0'));
  bars.forEach((b, i) => {
    const x = L + i * bw + 3;
    const rect = s('rect', { class: 'bar', x, y: Y(b.value), width: Math.max(1, bw - 6), height: H - B - Y(b.value) });
    rect.append(s('title', {}, b.title || `${b.label}: ${b.value}`));
    svg.append(rect);
    svg.append(s('text', { x: x + (bw - 6) / 2, y: H - 8, 'text-anchor': 'middle' }, b.label));
  });
  const rows = bars.map((b) => h('tr', {}, h('td', {}, b.label), h('td', { class: 'num' }, opts.yFmt(b.value))));
  return h('figure', { 'data-testid': opts.testid }, svg,
    h('figcaption', {}, opts.summary || opts.title),
    h('details', {}, h('summary', {}, 'Show as table'),
      h('table', {}, h('caption', { class: 'sr-only' }, opts.title),
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, opts.xLabel || 'bucket'), h('th', { scope: 'col', class: 'num' }, opts.yLabel || 'value'))),
        h('tbody', {}, rows))));
}
