// Small DOM helpers. Text always goes in through textContent, never as markup: user ids, session
// ids and model names come from API callers and are untrusted.

const SVG_NS = 'http://www.w3.org/2000/svg';

/** $ returns the element with this id; a missing one is a bug in the page, so it throws. */
export function $(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`dashboard: no element #${id}`);
  return el;
}

/**
 * h creates an HTML element. props: class, text, title, dataset (object), attrs (object of
 * attributes), on (object of event listeners); children are nodes or strings (as text).
 */
export function h(tag, props = {}, ...children) {
  return build(document.createElement(tag), props, children);
}

/** s creates an SVG element; attrs are set as attributes (fill, x, y…), never style. */
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  }
  for (const c of children) el.append(c);
  return el;
}

function build(el, props, children) {
  const { class: cls, text, title, dataset, attrs, on, ...rest } = props;
  if (cls) el.className = cls;
  if (text !== undefined) el.textContent = String(text);
  if (title) el.title = String(title);
  if (dataset) Object.assign(el.dataset, dataset);
  if (attrs) for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (on) for (const [k, fn] of Object.entries(on)) el.addEventListener(k, fn);
  Object.assign(el, rest);
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

/** clear removes every child of el. */
export function clear(el) {
  el.replaceChildren();
  return el;
}
