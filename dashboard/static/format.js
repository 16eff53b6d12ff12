// Number, money and date formatting. Every amount on the page goes through usd() so the same
// figure reads the same in the spend card, the tables and the chart's captions.

const dollars2 = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD', minimumFractionDigits: 2, maximumFractionDigits: 2 });
const dollars4 = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD', minimumFractionDigits: 4, maximumFractionDigits: 4 });
const tiny = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD', minimumSignificantDigits: 2, maximumSignificantDigits: 2 });
const integer = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const short = new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 1 });

/**
 * usd formats an amount in dollars. The rule: nothing is "$0.00"; from $1 up, two decimals
 * ("$1,234.56"); under $1, four ("$0.0011", "$0.5000"), so the small spend of a new project is
 * visible; under a tenth of a cent, two significant digits ("$0.00015", "$0.0000090"), because a
 * test request of a few tokens costs millionths of a dollar and must not read as nothing.
 */
export function usd(amount) {
  const v = Number(amount) || 0;
  if (v === 0) return dollars2.format(0);
  const r4 = Math.abs(Math.round(v * 1e4) / 1e4);
  if (r4 >= 1) return dollars2.format(v);
  if (Math.abs(v) >= 0.001) return dollars4.format(v);
  return tiny.format(v);
}

/** usdTick formats a chart axis value with as many decimals as the tick step needs. */
export function usdTick(amount, step) {
  let decimals = 0;
  while (decimals < 8 && Math.abs(Math.round(step * 10 ** decimals) - step * 10 ** decimals) > 1e-9) decimals++;
  if (decimals === 1) decimals = 2; // "$2.50", not "$2.5"
  return new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD', minimumFractionDigits: decimals, maximumFractionDigits: decimals }).format(amount);
}

/** int formats a count with thousands separators: 12,345. */
export function int(n) {
  return integer.format(Number(n) || 0);
}

/** compact formats a large count for a glance (3.4K, 1.2M); int() gives the exact figure. */
export function compact(n) {
  const v = Number(n) || 0;
  return Math.abs(v) < 10000 ? integer.format(v) : short.format(v);
}

/** percent formats a ratio: 0.823 is "82%", under 10% keeps a decimal ("4.5%"). */
export function percent(ratio) {
  const p = (Number(ratio) || 0) * 100;
  if (p > 0 && p < 0.1) return '<0.1%';
  return `${p < 10 ? p.toFixed(1).replace(/\.0$/, '') : Math.round(p)}%`;
}

// Dates. The gateway counts days and months in UTC, so the page does too.

const monthName = new Intl.DateTimeFormat('en-US', { month: 'long', year: 'numeric', timeZone: 'UTC' });
const dayName = new Intl.DateTimeFormat('en-US', { month: 'short', day: 'numeric', timeZone: 'UTC' });
const clock = new Intl.DateTimeFormat('en-GB', { hour: '2-digit', minute: '2-digit', second: '2-digit', timeZone: 'UTC' });

const pad = (n) => String(n).padStart(2, '0');

/** today is the current UTC date as YYYY-MM-DD. */
export function today(now = new Date()) {
  return now.toISOString().slice(0, 10);
}

/** monthOf returns {year, month} (month 1-12) of a YYYY-MM-DD date. */
export function monthOf(date) {
  return { year: Number(date.slice(0, 4)), month: Number(date.slice(5, 7)) };
}

/** addMonths moves a {year, month} by n months. */
export function addMonths({ year, month }, n) {
  const i = year * 12 + (month - 1) + n;
  return { year: Math.floor(i / 12), month: (i % 12) + 1 };
}

/** monthKey is YYYY-MM. */
export function monthKey({ year, month }) {
  return `${year}-${pad(month)}`;
}

/**
 * monthRange describes a month as the usage API queries it: from its first day to its last, or
 * to today for the current month. days lists every day of the month, for the chart's axis.
 */
export function monthRange(m, todayDate) {
  const last = new Date(Date.UTC(m.year, m.month, 0)).getUTCDate();
  const key = monthKey(m);
  const current = todayDate.slice(0, 7) === key;
  const days = Array.from({ length: last }, (_, i) => `${key}-${pad(i + 1)}`);
  const to = current ? todayDate : days[days.length - 1];
  return { key, from: days[0], to, days, current, elapsed: days.indexOf(to) + 1, label: monthName.format(Date.UTC(m.year, m.month - 1, 1)) };
}

/** dayLabel is "Dec 3" for 2026-12-03. */
export function dayLabel(date) {
  return dayName.format(Date.parse(`${date}T00:00:00Z`));
}

/** timeUTC is "14:03:12 UTC" for a Date or unix seconds. */
export function timeUTC(t) {
  const d = typeof t === 'number' ? new Date(t * 1000) : t;
  return `${clock.format(d)} UTC`;
}

/** plural is "1 user", "3 users". */
export function plural(n, one, many = `${one}s`) {
  return `${int(n)} ${n === 1 ? one : many}`;
}
