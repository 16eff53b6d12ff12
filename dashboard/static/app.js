// Behest operator dashboard: sign in with a project API key, then read the project's usage and
// revoke users or sessions. Everything is fetched from this gateway; nothing else is loaded.

import { $, h, clear } from './dom.js';
import { Api } from './api.js';
import * as fmt from './format.js';
import { StackedBars, Palette } from './chart.js';
import * as tables from './tables.js';
import { RevokeDialog } from './revoke.js';
import { showError, hideError, errorShownIn, toast, hideToasts } from './notify.js';

// The key lives in sessionStorage only: it is gone when the tab closes, and never in a cookie.
const KEY_STORAGE = 'behest.dashboard.apiKey';
const DEFAULT_EXPORT = 'day,user';

const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.getAttribute('content') || '';
const paths = { usage: meta('behest-usage-path') || '/v1/usage', revoke: meta('behest-revoke-path') || '/v1/auth/revoke' };

const state = {
  api: null,
  month: fmt.monthOf(fmt.today()),
  gen: 0, // bumps with every load, so a slow answer for an old month is dropped
  userGen: 0,
  user: null, // the id "One user" shows
  revoked: new Map(), // "user:<id>" or "session:<id>" -> revoked_at, during this visit
  palette: new Palette(),
};

const chart = new StackedBars($('spend-chart'), { legend: $('legend'), caption: $('chart-caption'), height: 280 });
const userChart = new StackedBars($('user-chart'), { height: 170 });
const dialog = new RevokeDialog((kind, id) => state.api.revoke(kind, id));

const range = () => fmt.monthRange(state.month, fmt.today());

// Signing in and out.

function showSignIn(message) {
  state.api = null;
  state.gen++;
  state.userGen++;
  resetDashboard();
  $('dash-view').hidden = true;
  $('sign-out').hidden = true;
  $('project').hidden = true;
  $('signin-view').hidden = false;
  if (message) showError(message, 'signin-error-slot');
  else hideError();
  $('api-key').focus();
}

function signOut(message) {
  sessionStorage.removeItem(KEY_STORAGE);
  showSignIn(message);
}

function showDashboard() {
  $('signin-view').hidden = true;
  $('dash-view').hidden = false;
  $('sign-out').hidden = false;
  if (errorShownIn('signin-error-slot')) hideError();
}

async function onSignIn(event) {
  event.preventDefault();
  const key = $('api-key').value.trim();
  if (!key) {
    showError('Paste a project API key first.', 'signin-error-slot');
    $('api-key').focus();
    return;
  }
  const button = $('sign-in');
  button.disabled = true;
  button.textContent = 'Signing in…';
  hideError();
  state.api = new Api(paths, key);
  const err = await load();
  button.disabled = false;
  button.textContent = 'Sign in';
  if (err) {
    // A key is kept only once the gateway has accepted it.
    state.api = null;
    showError(err.message, 'signin-error-slot');
    return;
  }
  sessionStorage.setItem(KEY_STORAGE, key);
  $('api-key').value = '';
  showDashboard();
  $('dash-title').focus();
}

// Loading and drawing the month.

/** load fetches the selected month and draws it; it returns the error, if any, once shown. */
async function load() {
  const gen = ++state.gen;
  const api = state.api;
  const r = range();
  drawRange(r);
  $('dash-view').setAttribute('aria-busy', 'true');
  chart.loading();
  try {
    const q = { from: r.from, to: r.to };
    const [daily, users, orgs, sessions] = await Promise.all(
      ['day,model', 'user', 'org', 'session'].map((group_by) => api.usage({ ...q, group_by })));
    if (gen !== state.gen) return null;
    draw(r, daily, users, orgs, sessions);
    $('updated').textContent = `Updated ${fmt.timeUTC(new Date())}`;
    if (errorShownIn('toast-error-slot')) hideError();
    return null;
  } catch (err) {
    if (gen !== state.gen) return null;
    if (!err.unauthorized && !$('dash-view').hidden) showError(`Could not load usage. ${err.message}`, 'toast-error-slot');
    return err;
  } finally {
    if (gen === state.gen) $('dash-view').removeAttribute('aria-busy');
  }
}

/** reload loads again after a change; a key the gateway no longer takes signs out. */
async function reload() {
  const err = await load();
  if (err?.unauthorized) {
    signOut('That API key is no longer accepted by the gateway. Paste a current key for this project.');
    return;
  }
  if (state.user !== null) showUser(state.user, { scroll: false });
}

function drawRange(r) {
  $('month-label').textContent = r.label;
  const days = r.from === r.to ? fmt.dayLabel(r.from) : `${fmt.dayLabel(r.from)} – ${fmt.dayLabel(r.to)}`;
  $('range-label').textContent = `${days}${r.current ? ' (today)' : ''}, UTC`;
  $('month-next').disabled = r.current;
  $('spend-label').textContent = r.current ? 'Spend this month' : `Spend in ${r.label}`;
}

function emptyWords(r, who = '') {
  return r.current
    ? { title: `No usage${who} yet this month`, hint: 'Spend shows up here as soon as requests go through the gateway.' }
    : { title: `No usage${who} in ${r.label}`, hint: 'Use the arrows next to the month to look at another one.' };
}

function draw(r, daily, users, orgs, sessions) {
  const project = daily.project || users.project;
  if (project?.id) {
    $('project-id').textContent = project.id;
    $('tenant-id').textContent = project.tenant_id || '–';
    $('project').hidden = false;
  }
  const budget = project && project.cost_per_month_usd !== null && project.cost_per_month_usd !== undefined
    ? Number(project.cost_per_month_usd) : null;
  const t = tables.totals(daily.rows);
  drawSpend(r, t.cost_usd, budget);
  drawCounters(r, daily.rows, t, users.rows.length, orgs.rows.length, sessions.rows.length);

  chart.update({
    days: r.days, rows: daily.rows, palette: state.palette, today: r.current ? r.to : null,
    pace: budget > 0 ? budget / r.days.length : 0,
    label: `Spend per day by model, ${r.label}`, empty: emptyWords(r),
  });

  const empty = emptyWords(r).title;
  tables.fill($('top-users'), users.rows, {
    noun: 'user', empty, count: $('top-users-count'),
    name: (row) => (row.key ? userLink(row.key) : noneCell()),
    actions: (row) => (row.key ? [revokeControl('user', row.key)] : []),
  });
  tables.fill($('top-orgs'), orgs.rows, { noun: 'org', empty, count: $('top-orgs-count') });
  tables.fill($('top-sessions'), sessions.rows, {
    noun: 'session', empty, count: $('top-sessions-count'),
    actions: (row) => (row.key ? [revokeControl('session', row.key)] : []),
  });
  tables.fill($('top-models'), tables.sumBy(daily.rows, 'model'), {
    noun: 'model', empty, count: $('top-models-count'), name: modelName,
  });
}

/**
 * drawSpend fills the spend card. month-spend holds the amount as text (format.usd) and the exact
 * figure in data-usd; budget holds the budget as text, or nothing when the project has none.
 */
function drawSpend(r, spent, budget) {
  const el = $('month-spend');
  el.textContent = fmt.usd(spent);
  el.dataset.usd = String(spent);
  el.title = `${spent} USD`;
  const hasBudget = budget !== null && Number.isFinite(budget);
  $('budget').textContent = hasBudget ? fmt.usd(budget) : '';
  $('budget-line').hidden = !hasBudget;
  $('no-budget').hidden = hasBudget;
  const meter = $('budget-meter');
  meter.hidden = !hasBudget;
  const projection = $('projection');
  clear(projection);
  projection.className = 'kpi-foot muted';
  if (hasBudget) {
    const ratio = budget > 0 ? spent / budget : spent > 0 ? 1 : 0;
    $('budget-percent').textContent = fmt.percent(ratio);
    const fill = $('budget-fill');
    fill.style.width = `${Math.min(ratio, 1) * 100}%`;
    meter.dataset.level = ratio >= 1 ? 'over' : ratio >= 0.8 ? 'warn' : 'ok';
    meter.setAttribute('aria-valuenow', String(Math.round(Math.min(ratio, 1) * 100)));
  }
  if (r.current && spent > 0 && r.elapsed > 0) {
    const projected = (spent / r.elapsed) * r.days.length;
    projection.append(`At this pace: ${fmt.usd(projected)} by ${fmt.dayLabel(r.days[r.days.length - 1])}`);
    if (hasBudget && projected > budget) {
      projection.classList.add('warn');
      projection.append(', over budget');
    }
  } else if (!r.current) {
    projection.textContent = 'Month closed.';
  }
}

function drawCounters(r, rows, t, users, orgs, sessions) {
  $('kpi-requests').textContent = fmt.int(t.requests);
  if (r.current) {
    const todays = rows.filter((row) => row.day === r.to).reduce((n, row) => n + row.requests, 0);
    $('kpi-requests-foot').textContent = `${fmt.int(todays)} today · ${fmt.int(t.requests / r.elapsed)} a day on average`;
  } else {
    $('kpi-requests-foot').textContent = `${fmt.int(t.requests / r.days.length)} a day on average`;
  }
  const tokens = t.input_tokens + t.output_tokens;
  const tk = $('kpi-tokens');
  tk.textContent = fmt.compact(tokens);
  tk.title = `${fmt.int(tokens)} tokens`;
  let foot = `${fmt.compact(t.input_tokens)} in · ${fmt.compact(t.output_tokens)} out`;
  if (t.cached_input_tokens > 0) foot += ` · ${fmt.percent(t.cached_input_tokens / t.input_tokens)} of input cached`;
  $('kpi-tokens-foot').textContent = foot;
  $('kpi-users').textContent = fmt.int(users);
  $('kpi-users-foot').textContent = `in ${fmt.plural(orgs, 'org')} · ${fmt.plural(sessions, 'session')}`;
}

function resetDashboard() {
  $('month-spend').textContent = '–';
  delete $('month-spend').dataset.usd;
  $('budget').textContent = '';
  $('budget-percent').textContent = '';
  $('budget-line').hidden = true;
  $('no-budget').hidden = true;
  $('budget-meter').hidden = true;
  clear($('projection'));
  for (const id of ['kpi-requests', 'kpi-tokens', 'kpi-users']) $(id).textContent = '–';
  for (const id of ['kpi-requests-foot', 'kpi-tokens-foot', 'kpi-users-foot', 'updated', 'project-id', 'tenant-id']) $(id).textContent = '';
  for (const id of ['top-users', 'top-orgs', 'top-sessions', 'top-models']) tables.placeholder($(id), 'Loading…');
  for (const id of ['top-users-count', 'top-orgs-count', 'top-sessions-count', 'top-models-count']) $(id).textContent = '';
  chart.reset();
  hideUser();
  state.revoked.clear();
  state.month = fmt.monthOf(fmt.today());
  if ($('revoke-dialog').open) $('revoke-dialog').close();
  hideToasts();
}

// Table cells.

function noneCell() {
  return h('span', { class: 'muted', text: '(none)' });
}

function userLink(id) {
  return h('button', {
    type: 'button', class: 'link mono clip', text: id, title: `Show ${id}'s usage`,
    on: { click: () => showUser(id, { scroll: true }) },
  });
}

function modelName(row) {
  const sw = h('span', { class: 'swatch' });
  sw.style.backgroundColor = state.palette.color(row.key);
  return h('span', { class: 'model-name' }, sw, h('span', { class: 'mono clip', text: row.key || '(none)', title: row.key }));
}

/** revokeControl is a Revoke… button, or a badge once revoked during this visit. */
function revokeControl(kind, id) {
  const at = state.revoked.get(`${kind}:${id}`);
  if (at) return h('span', { class: 'badge badge-revoked', text: 'Revoked', title: `Revoked at ${fmt.timeUTC(at)}` });
  return h('button', {
    type: 'button', class: 'btn btn-small btn-row', text: 'Revoke…',
    dataset: { testid: 'revoke', kind }, attrs: { 'aria-label': `Revoke ${kind} ${id}` },
    on: { click: () => askRevoke(kind, id) },
  });
}

// Revoking.

async function askRevoke(kind, id) {
  const answer = await dialog.ask(kind, id);
  if (!answer) return;
  const at = Number(answer.revoked_at) || Math.floor(Date.now() / 1000);
  state.revoked.set(`${kind}:${id}`, at);
  toast('revoke-result', kind === 'user'
    ? `Revoked user ${id} at ${fmt.timeUTC(at)}: every token issued to them before then is refused.`
    : `Revoked session ${id} at ${fmt.timeUTC(at)}: its tokens are refused from now on.`, 15000);
  const scope = kind === 'user' ? ['top-users'] : ['top-sessions', 'user-sessions'];
  for (const tableId of scope) {
    for (const tr of $(tableId).tBodies[0].rows) {
      if (tr.dataset.key === id && tr.lastElementChild?.classList.contains('actions')) {
        clear(tr.lastElementChild).append(revokeControl(kind, id));
      }
    }
  }
}

function onRevokeForm(event) {
  event.preventDefault();
  const kind = document.querySelector('input[name="revoke-kind"]:checked')?.value || 'user';
  const id = $('revoke-id').value.trim();
  if (!id) {
    showError(`Enter the ${kind === 'user' ? 'user id' : 'session id'} to revoke.`, 'revoke-error-slot');
    $('revoke-id').focus();
    return;
  }
  if (errorShownIn('revoke-error-slot')) hideError();
  askRevoke(kind, id);
}

// One user.

function hideUser() {
  state.user = null;
  state.userGen++;
  $('user-result').hidden = true;
  $('user-hint').hidden = false;
  userChart.reset();
}

async function showUser(id, { scroll }) {
  state.user = id;
  $('user-id').value = id;
  if (errorShownIn('user-error-slot')) hideError();
  const gen = ++state.userGen;
  const r = range();
  $('user-hint').hidden = true;
  $('user-result').hidden = false;
  $('user-title').textContent = id;
  $('user-subtitle').textContent = 'Loading…';
  if (scroll) $('user-card').scrollIntoView({ behavior: 'smooth', block: 'start' });
  try {
    const q = { from: r.from, to: r.to, user_id: id };
    const [daily, sessions] = await Promise.all([
      state.api.usage({ ...q, group_by: 'day,model' }),
      state.api.usage({ ...q, group_by: 'session' }),
    ]);
    if (gen !== state.userGen) return;
    drawUser(r, id, daily.rows, sessions.rows);
  } catch (err) {
    if (gen !== state.userGen) return;
    if (err.unauthorized) {
      signOut('That API key is no longer accepted by the gateway. Paste a current key for this project.');
      return;
    }
    $('user-subtitle').textContent = '';
    showError(`Could not load ${id}'s usage. ${err.message}`, 'user-error-slot');
  }
}

function drawUser(r, id, rows, sessions) {
  const colon = id.indexOf(':');
  const t = tables.totals(rows);
  $('user-subtitle').textContent = `${colon > 0 ? `Org ${id.slice(0, colon)} · ` : ''}${r.label}`;
  const stats = clear($('user-stats'));
  for (const [label, value, title] of [
    ['Spend', fmt.usd(t.cost_usd), `${t.cost_usd} USD`],
    ['Requests', fmt.int(t.requests), ''],
    ['Input tokens', fmt.compact(t.input_tokens), fmt.int(t.input_tokens)],
    ['Output tokens', fmt.compact(t.output_tokens), fmt.int(t.output_tokens)],
    ['Sessions', fmt.int(sessions.length), ''],
  ]) {
    stats.append(h('div', { class: 'stat' }, h('div', { class: 'stat-label', text: label }), h('div', { class: 'stat-value', text: value, title })));
  }
  const empty = emptyWords(r, ' by this user');
  userChart.update({
    days: r.days, rows, palette: state.palette, today: r.current ? r.to : null, pace: 0,
    label: `Spend per day by model for ${id}, ${r.label}`, empty,
  });
  tables.fill($('user-models'), tables.sumBy(rows, 'model'), { noun: 'model', empty: empty.title, name: modelName });
  tables.fill($('user-sessions'), sessions, {
    noun: 'session', empty: empty.title, columns: ['requests', 'cost_usd'],
    actions: (row) => (row.key ? [revokeControl('session', row.key)] : []),
  });
}

function onUserForm(event) {
  event.preventDefault();
  const id = $('user-id').value.trim();
  if (!id) {
    showError('Enter a user id, e.g. org_9:user_2abc.', 'user-error-slot');
    $('user-id').focus();
    return;
  }
  showUser(id, { scroll: false });
}

// CSV export.

async function exportCSV() {
  const button = $('export-csv');
  const group = $('export-group').value;
  const r = range();
  button.disabled = true;
  try {
    const text = await state.api.usageCSV({ group_by: group, from: r.from, to: r.to });
    // behest-usage-2026-12.csv for the default rows (users per day), else -by-<dims>.
    const name = `behest-usage-${r.key}${group === DEFAULT_EXPORT ? '' : `-by-${group.replace(',', '-')}`}.csv`;
    const url = URL.createObjectURL(new Blob([text], { type: 'text/csv;charset=utf-8' }));
    const a = h('a', { href: url, download: name, class: 'sr-only' });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 30000);
    const lines = text.split('\n').filter((l) => l.trim() !== '').length;
    toast('notice', `Downloaded ${name} (${fmt.plural(Math.max(lines - 1, 0), 'row')}).`, 8000);
  } catch (err) {
    if (err.unauthorized) signOut('That API key is no longer accepted by the gateway. Paste a current key for this project.');
    else showError(`Could not export usage. ${err.message}`, 'toast-error-slot');
  } finally {
    button.disabled = false;
  }
}

// Wiring.

$('signin-form').addEventListener('submit', onSignIn);
$('sign-out').addEventListener('click', () => signOut());
$('refresh').addEventListener('click', () => reload());
$('month-prev').addEventListener('click', () => { state.month = fmt.addMonths(state.month, -1); reload(); });
$('month-next').addEventListener('click', () => { state.month = fmt.addMonths(state.month, 1); reload(); });
$('export-csv').addEventListener('click', exportCSV);
$('user-form').addEventListener('submit', onUserForm);
$('revoke-user').addEventListener('click', () => state.user && askRevoke('user', state.user));
$('revoke-form').addEventListener('submit', onRevokeForm);
for (const radio of document.querySelectorAll('input[name="revoke-kind"]')) {
  radio.addEventListener('change', () => { $('revoke-id').placeholder = radio.value === 'user' ? 'org_9:user_2abc' : 'sess_…'; });
}
for (const id of ['revoke-result', 'notice']) $(id).addEventListener('click', () => { $(id).hidden = true; });
$('error').addEventListener('click', () => { if (errorShownIn('toast-error-slot')) hideError(); });
$('usage-path').textContent = paths.usage;

const saved = sessionStorage.getItem(KEY_STORAGE);
if (saved) {
  state.api = new Api(paths, saved);
  resetDashboard();
  showDashboard();
  reload().then(() => {
    if (!state.api) $('api-key').focus();
  });
} else {
  showSignIn();
}
