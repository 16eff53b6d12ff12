// "Top N" tables: rows sorted by cost, the first ten shown, each row's key in data-key.

import { h, clear } from './dom.js';
import * as fmt from './format.js';

export const TOP = 10;

/** byCost orders rows by cost, then requests, then key, so ties read the same on every load. */
export function byCost(a, b) {
  return b.cost_usd - a.cost_usd || b.requests - a.requests || a.key.localeCompare(b.key);
}

/** sumBy folds rows into one row per value of field, e.g. day,model rows into models. */
export function sumBy(rows, field) {
  const out = new Map();
  for (const r of rows) {
    const k = r[field];
    const t = out.get(k) || { key: k, [field]: k, requests: 0, input_tokens: 0, cached_input_tokens: 0, output_tokens: 0, cost_usd: 0 };
    t.requests += r.requests;
    t.input_tokens += r.input_tokens;
    t.cached_input_tokens += r.cached_input_tokens;
    t.output_tokens += r.output_tokens;
    t.cost_usd += r.cost_usd;
    out.set(k, t);
  }
  return [...out.values()];
}

/** totals sums the counters of rows. */
export function totals(rows) {
  return sumBy(rows.map((r) => ({ ...r, all: '' })), 'all')[0] || { requests: 0, input_tokens: 0, cached_input_tokens: 0, output_tokens: 0, cost_usd: 0 };
}

/**
 * fill renders rows into table's body, top `limit` by cost. opts:
 *   name(row): the first cell's content (defaults to the key as text; an empty key reads "(none)"),
 *   columns: which counters to show (default requests, input, output, cost),
 *   actions(row): nodes for a last cell, or null for none,
 *   empty: the sentence shown without rows, count: the element that says "Top 10 of 24",
 *   noun: what a row is ("user").
 * It returns the rows it showed.
 */
export function fill(table, rows, opts) {
  const { name = keyCell, columns = ['requests', 'input_tokens', 'output_tokens', 'cost_usd'], actions = null, empty, count, noun, limit = TOP } = opts;
  const body = clear(table.tBodies[0]);
  const sorted = [...rows].sort(byCost);
  const shown = sorted.slice(0, limit);
  const width = table.tHead.rows[0].cells.length;
  const maxCost = shown.length ? shown[0].cost_usd : 0;
  if (count) count.textContent = rows.length > limit ? `Top ${limit} of ${fmt.int(rows.length)} by cost` : rows.length ? fmt.plural(rows.length, noun) : '';
  if (!shown.length) {
    body.append(h('tr', { class: 'empty-row' }, h('td', { colSpan: width, text: empty })));
    return shown;
  }
  for (const r of shown) {
    const tr = h('tr', { dataset: { key: r.key } }, h('th', { scope: 'row', class: 'name' }, name(r)));
    for (const c of columns) tr.append(counterCell(r, c, maxCost));
    if (actions) tr.append(h('td', { class: 'actions' }, ...(actions(r) || [])));
    body.append(tr);
  }
  return shown;
}

/** placeholder fills a table's body with one muted line, e.g. while loading. */
export function placeholder(table, text) {
  const width = table.tHead.rows[0].cells.length;
  clear(table.tBodies[0]).append(h('tr', { class: 'empty-row' }, h('td', { colSpan: width, text })));
}

function keyCell(r) {
  return r.key === '' ? h('span', { class: 'muted', text: '(none)' }) : h('span', { class: 'mono clip', text: r.key, title: r.key });
}

function counterCell(r, c, maxCost) {
  const v = r[c];
  if (c === 'cost_usd') {
    const bar = h('span', { class: 'share' });
    bar.style.width = `${maxCost > 0 ? Math.max((v / maxCost) * 100, v > 0 ? 2 : 0) : 0}%`;
    const share = maxCost > 0 ? `${Math.round((v / maxCost) * 100)}% of the top row's cost` : '';
    return h('td', { class: 'num cost' }, h('span', { class: 'cost-cell' },
      h('span', { class: 'share-track', title: share }, bar), h('span', { class: 'cost-text', text: fmt.usd(v), title: `${v} USD` })));
  }
  if (c === 'input_tokens' && r.cached_input_tokens > 0) {
    return h('td', { class: 'num', text: fmt.compact(v), title: `${fmt.int(v)} input tokens, ${fmt.int(r.cached_input_tokens)} of them cached` });
  }
  return h('td', { class: 'num', text: fmt.compact(v), title: fmt.int(v) });
}
