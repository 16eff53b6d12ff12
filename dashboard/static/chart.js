// Stacked bar chart of spend per day by model, drawn as SVG. Each segment has a <title> for
// hover; the caption under the chart spells out the day under the pointer.

import { h, s, clear } from './dom.js';
import * as fmt from './format.js';

// Tableau 10: distinct at a glance, and readable by most colour-blind people.
const COLORS = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#ff9da7', '#9c755f'];
const OTHER_COLOR = '#bab0ac';
const MAX_SERIES = 8; // more models than this are summed as "Other"
export const OTHER = 'Other models';

/** Palette gives each model one colour for the whole visit, so charts and tables agree. */
export class Palette {
  #colors = new Map();

  color(name) {
    if (name === OTHER) return OTHER_COLOR;
    if (!this.#colors.has(name)) this.#colors.set(name, COLORS[this.#colors.size % COLORS.length]);
    return this.#colors.get(name);
  }
}

/**
 * series turns day,model rows into what the chart draws: models ranked by cost (the cheapest
 * folded into "Other" when there are many) and, per day, each model's cost and requests.
 */
export function series(rows) {
  const totals = new Map();
  for (const r of rows) totals.set(r.model, (totals.get(r.model) || 0) + r.cost_usd);
  let models = [...totals.keys()].sort((a, b) => totals.get(b) - totals.get(a) || a.localeCompare(b));
  const folded = new Set(models.length > MAX_SERIES ? models.slice(MAX_SERIES - 1) : []);
  if (folded.size) models = [...models.slice(0, MAX_SERIES - 1), OTHER];
  const byDay = new Map();
  for (const r of rows) {
    const model = folded.has(r.model) ? OTHER : r.model;
    if (!byDay.has(r.day)) byDay.set(r.day, new Map());
    const day = byDay.get(r.day);
    const cell = day.get(model) || { cost: 0, requests: 0 };
    cell.cost += r.cost_usd;
    cell.requests += r.requests;
    day.set(model, cell);
  }
  const modelTotal = (m) => (m === OTHER ? [...folded].reduce((t, f) => t + totals.get(f), 0) : totals.get(m));
  return { models: models.map((m) => ({ name: m, cost: modelTotal(m) })), byDay };
}

/** niceTicks returns 0 and a few round steps up to at least max. */
export function niceTicks(max, count = 4) {
  if (!(max > 0)) return { step: 1, ticks: [0, 1] };
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const res = raw / mag;
  const step = (res <= 1 ? 1 : res <= 2 ? 2 : res <= 2.5 ? 2.5 : res <= 5 ? 5 : 10) * mag;
  const ticks = [];
  for (let v = 0; v < max + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  if (ticks[ticks.length - 1] < max) ticks.push(Number((ticks.length * step).toPrecision(12)));
  return { step, ticks };
}

export class StackedBars {
  /**
   * container gets the SVG; legend (a <ul>) and caption (a <p>) are optional. The chart redraws
   * itself when its container changes width.
   */
  constructor(container, { legend = null, caption = null, height = 260 } = {}) {
    this.container = container;
    this.legend = legend;
    this.caption = caption;
    this.height = height;
    this.data = null;
    this.width = 0;
    new ResizeObserver(() => {
      const w = Math.floor(this.container.clientWidth);
      if (this.data && w && w !== this.width) this.draw();
    }).observe(container);
  }

  /**
   * update draws new data. days: every YYYY-MM-DD on the axis; rows: day,model usage rows;
   * palette: a Palette; empty: {title, hint} shown without spend; today: the day to mark;
   * pace: a daily spend line (the budget spread over the month) or 0; label: the chart's name.
   */
  update(data) {
    this.data = { ...data, ...series(data.rows) };
    this.draw();
  }

  /** loading shows a placeholder until the first data arrives. */
  loading() {
    if (this.data) return;
    clear(this.container).append(h('div', { class: 'chart-empty' }, h('p', { class: 'muted', text: 'Loading usage…' })));
  }

  /** reset forgets the data, e.g. on sign-out. */
  reset() {
    this.data = null;
    clear(this.container);
    if (this.legend) clear(this.legend);
    if (this.caption) this.caption.textContent = '';
  }

  draw() {
    const d = this.data;
    const el = clear(this.container);
    this.width = Math.floor(el.clientWidth) || 800;
    const total = d.models.reduce((t, m) => t + m.cost, 0);
    this.#drawLegend(d);
    if (!(total > 0)) {
      const requests = d.rows.reduce((t, r) => t + r.requests, 0);
      el.append(h('div', { class: 'chart-empty' },
        h('p', { class: 'chart-empty-title', text: requests ? 'No spend to chart' : d.empty.title }),
        h('p', { class: 'muted', text: requests
          ? `${fmt.plural(requests, 'request')} cost nothing: their models have no price in the project's price table.`
          : d.empty.hint })));
      if (this.caption) this.caption.textContent = '';
      return;
    }

    const W = this.width;
    const H = this.height;
    const m = { top: 14, right: 14, bottom: 30, left: 64 };
    const plotW = W - m.left - m.right;
    const plotH = H - m.top - m.bottom;
    const dayTotal = (day) => [...(d.byDay.get(day)?.values() || [])].reduce((t, c) => t + c.cost, 0);
    const maxDay = Math.max(...d.days.map(dayTotal));
    const pace = d.pace > 0 && d.pace <= maxDay * 2 ? d.pace : 0;
    const { step, ticks } = niceTicks(Math.max(maxDay, pace));
    const top = ticks[ticks.length - 1];
    const y = (v) => m.top + plotH * (1 - v / top);
    const band = plotW / d.days.length;
    const barW = Math.max(2, Math.min(band * 0.72, 44));

    const svg = s('svg', { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: 'img', class: 'chart-svg', 'aria-label': d.label });
    svg.append(s('title', {}, d.label));

    const grid = s('g', { class: 'grid' });
    for (const t of ticks) {
      grid.append(s('line', { x1: m.left, x2: W - m.right, y1: y(t), y2: y(t), class: t === 0 ? 'axis-line' : 'grid-line' }));
      grid.append(s('text', { x: m.left - 10, y: y(t), class: 'tick', 'text-anchor': 'end', 'dominant-baseline': 'middle' }, fmt.usdTick(t, step)));
    }
    svg.append(grid);

    const every = band >= 24 ? 1 : band >= 13 ? 2 : 5;
    const labelled = (n) => (every === 2 ? n % 2 === 1 : n === 1 || n % every === 0);
    const labels = s('g', { class: 'x-labels' });
    const bars = s('g', { class: 'bars' });
    d.days.forEach((day, i) => {
      const x0 = m.left + i * band;
      const x = x0 + (band - barW) / 2;
      const n = i + 1;
      if (d.today && day > d.today) {
        bars.append(s('rect', { x: x0 + 1, y: m.top, width: Math.max(band - 2, 1), height: plotH, class: 'future' }));
      }
      if (labelled(n) || (day === d.today && !labelled(n - 1) && !labelled(n + 1))) {
        labels.append(s('text', { x: x0 + band / 2, y: H - m.bottom + 18, class: day === d.today ? 'tick tick-today' : 'tick', 'text-anchor': 'middle' }, String(n)));
      }
      const cells = d.byDay.get(day);
      if (!cells) return;
      const g = s('g', { class: 'day', 'data-day': day });
      g.append(s('rect', { x: x0, y: m.top, width: band, height: plotH, class: 'hit' }));
      let acc = 0;
      for (const model of d.models) {
        const c = cells.get(model.name);
        if (!c || !(c.cost > 0)) continue;
        const y1 = y(acc);
        acc += c.cost;
        const y2 = y(acc);
        const seg = s('rect', { x, y: y2, width: barW, height: Math.max(y1 - y2, 0.5), fill: d.palette.color(model.name), class: 'seg' });
        seg.append(s('title', {}, `${fmt.dayLabel(day)} · ${model.name}: ${fmt.usd(c.cost)} (${fmt.plural(c.requests, 'request')})`));
        g.append(seg);
      }
      g.addEventListener('mouseenter', () => this.#describe(day));
      g.addEventListener('mouseleave', () => this.#describe(null));
      bars.append(g);
    });
    svg.append(bars, labels);

    if (pace) {
      const py = y(pace);
      svg.append(s('line', { x1: m.left, x2: W - m.right, y1: py, y2: py, class: 'pace-line' }));
      svg.append(s('text', { x: W - m.right - 4, y: py - 6, class: 'pace-label', 'text-anchor': 'end' }, `Budget pace ${fmt.usd(pace)}/day`));
    }
    el.append(svg);
    this.#describe(null);
  }

  #drawLegend(d) {
    if (!this.legend) return;
    clear(this.legend);
    for (const model of d.models) {
      const swatch = h('span', { class: 'swatch' });
      swatch.style.backgroundColor = d.palette.color(model.name);
      this.legend.append(h('li', { title: `${model.name}: ${fmt.usd(model.cost)}` }, swatch, h('span', { class: 'legend-name', text: model.name })));
    }
  }

  #describe(day) {
    if (!this.caption) return;
    const d = this.data;
    const cap = clear(this.caption);
    if (!day) {
      let best = null;
      let bestCost = -1;
      let total = 0;
      let active = 0;
      for (const [dd, cells] of d.byDay) {
        const c = [...cells.values()].reduce((t, x) => t + x.cost, 0);
        total += c;
        if (c > 0) active++;
        if (c > bestCost) [best, bestCost] = [dd, c];
      }
      cap.append(h('span', { class: 'strong', text: fmt.usd(total) }),
        ` over ${fmt.plural(active, 'day')} with spend · busiest ${fmt.dayLabel(best)} (${fmt.usd(bestCost)}) · point at a bar for its split`);
      return;
    }
    const cells = d.byDay.get(day);
    const parts = d.models.filter((m) => cells.get(m.name)?.cost > 0);
    const cost = parts.reduce((t, m) => t + cells.get(m.name).cost, 0);
    const reqs = [...cells.values()].reduce((t, c) => t + c.requests, 0);
    cap.append(h('span', { class: 'strong', text: `${fmt.dayLabel(day)}: ${fmt.usd(cost)}` }), ` · ${fmt.plural(reqs, 'request')}`);
    for (const m of parts) {
      const sw = h('span', { class: 'swatch' });
      sw.style.backgroundColor = d.palette.color(m.name);
      cap.append(h('span', { class: 'cap-part' }, sw, h('span', { text: `${m.name} ${fmt.usd(cells.get(m.name).cost)}` })));
    }
  }
}
