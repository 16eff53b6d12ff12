// End-to-end for the operator dashboard (the contract's "Operators: dashboard"): one real Caddy
// serves the page at /behest/dashboard in front of fake OpenAI, Anthropic and Gemini providers;
// real usage is made through it first, then headless Chromium signs in with the project API key
// and every figure the page shows is checked against what the gateway's usage API answers the
// test itself. Revoking from the page must really refuse that user's token, the CSV download must
// be the API's CSV, the page must load nothing from any other origin, log no error, break no CSP
// rule and keep the key in sessionStorage only.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import { Behest } from "@behest/client-ts";
import { startFakeProvider, startGateway, repoRoot, PROJECT, TENANT } from "./harness.js";
import { startFakeAnthropic, startFakeGemini } from "./fake-providers.js";
import { providerPrices } from "./providers-config.js";

// BEHEST_CHROMIUM points elsewhere (e.g. to check the skip path); never a downloaded browser.
const CHROMIUM = process.env.BEHEST_CHROMIUM ?? "/usr/bin/chromium";
// The dashboard's screenshot is refreshed only on request (UPDATE_SCREENSHOT=1), so a test run
// leaves the work tree clean.
const SCREENSHOT = process.env.UPDATE_SCREENSHOT
  ? path.join(repoRoot, "dashboard", "screenshot-e2e.png")
  : path.join(os.tmpdir(), `behest-dashboard-screenshot-${process.pid}.png`);
const WIDTH = 1280;

const DASHBOARD_PATH = "/behest/dashboard"; // the default dashboard_path
const KEY_STORAGE = "behest.dashboard.apiKey"; // where the page keeps the key (app.js)
const BUDGET = 1234.5; // the project's cost_per_month, USD: "$1,234.50" on the page

// The end users. The odd one has a comma and quotes (CSV and JSON must quote it, CSS selectors
// escape it) and markup (the page must show it as text).
const USER_A = "org_9:user_a";
const USER_B = "org_7:user_b";
const ODD = `org_5:o'neil,"<i>x</i>"`;

const haveChromium = existsSync(CHROMIUM);
if (!haveChromium && process.env.CI) {
  throw new Error(`${CHROMIUM} is missing and CI is set: install Debian's chromium (apt-get install chromium) to run the browser tests.`);
}
const skip = haveChromium ? false : `${CHROMIUM} is missing (apt-get install chromium); skipping the browser tests outside CI`;

let openaiProvider, anthropic, gemini, gateway, behest, context, page, userDataDir;
const tokens = {}; // user id -> a token minted before anything is revoked
let sent = 0; // model requests the test sent and the gateway admitted
let range; // {from, to}: this UTC month up to today, as the page asks for it

// What the page does, recorded from the moment it opens.
const pageRequests = []; // {url, method, headers, phase}
const pageResponses = []; // {url, status, phase}
const consoleLines = []; // {type, text, phase}
let phase = "open";

before(async () => {
  if (skip) return;
  [openaiProvider, anthropic, gemini] = await Promise.all([
    startFakeProvider({ chunkDelayMs: 1 }), startFakeAnthropic({ chunkDelayMs: 1 }), startFakeGemini({ chunkDelayMs: 1 }),
  ]);
  gateway = await startGateway({
    providerPort: openaiProvider.port,
    anthropicPort: anthropic.port,
    geminiPort: gemini.port,
    tiers: { 1: 1000 },
    prices: providerPrices,
    costPerMonth: BUDGET,
  });
  behest = new Behest({ apiKey: gateway.apiKey, baseURL: gateway.url });

  // Real usage, with a different cost for each user so "in cost order" has one answer:
  // user A pays for Anthropic's cache writes, user B for a Gemini call, the odd user for two
  // gpt-4o-mini calls only.
  for (const user of [USER_A, USER_B, ODD]) tokens[user] = (await behest.auth.mint({ user_id: user })).token;
  const plan = [
    [USER_A, "openai"], [USER_A, "openai"], [USER_A, "openai"], [USER_A, "anthropic"],
    [USER_B, "openai"], [USER_B, "gemini"],
    [ODD, "openai"], [ODD, "openai"],
  ];
  for (const [user, api] of plan) {
    const res = await modelRequest(api, tokens[user]);
    const body = await res.text();
    assert.equal(res.status, 200, `${api} request for ${user}: ${res.status} ${body}`);
    sent++;
  }
  await settled(sent);

  userDataDir = await fs.mkdtemp(path.join(os.tmpdir(), "behest-chromium-"));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
    viewport: { width: WIDTH, height: 900 },
    acceptDownloads: true,
    timeout: 60_000,
  });
  // A CSP violation is reported as a console error too, whatever Chromium itself logs for it.
  await context.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "(inline)"} at ${e.sourceFile}:${e.lineNumber}`);
    });
  });
  page = context.pages()[0] ?? await context.newPage();
  page.setDefaultTimeout(15_000);
  page.on("request", (r) => pageRequests.push({ url: r.url(), method: r.method(), headers: r.headers(), postData: r.postData(), phase }));
  page.on("response", (r) => pageResponses.push({ url: r.url(), status: r.status(), phase }));
  page.on("console", (m) => consoleLines.push({ type: m.type(), text: m.text(), phase }));
  page.on("pageerror", (e) => consoleLines.push({ type: "pageerror", text: e.message, phase }));
});

after(async () => {
  await context?.close();
  await gateway?.stop();
  for (const s of [openaiProvider, anthropic, gemini]) await s?.close();
  if (userDataDir) await fs.rm(userDataDir, { recursive: true, force: true });
});

const say = [{ role: "user", content: "Say hello." }];

/** modelRequest sends one small request to `api` through the gateway with an end-user token. */
function modelRequest(api, token) {
  const post = (p, headers, body) => fetch(`${gateway.url}${p}`, {
    method: "POST", headers: { "Content-Type": "application/json", ...headers }, body: JSON.stringify(body),
  });
  switch (api) {
    case "openai":
      return post("/v1/chat/completions", { Authorization: `Bearer ${token}` }, { model: "gpt-4o-mini", messages: say, max_tokens: 50 });
    case "anthropic":
      return post("/anthropic/v1/messages", { "x-api-key": token, "anthropic-version": "2023-06-01" }, { model: "claude-haiku-4-5", max_tokens: 50, messages: say });
    case "gemini":
      return post("/gemini/v1beta/models/gemini-2.5-flash:generateContent", { "x-goog-api-key": token }, {
        contents: [{ role: "user", parts: [{ text: "Say hello." }] }], generationConfig: { maxOutputTokens: 50 },
      });
    default:
      throw new Error(`no API ${api}`);
  }
}

/** usage is the gateway's own answer to GET /v1/usage, asked by the test with the project key. */
async function usage(params, { csv = false } = {}) {
  const q = new URLSearchParams({ ...(range ?? {}), ...params, ...(csv ? { format: "csv" } : {}) });
  const res = await fetch(`${gateway.url}/v1/usage?${q}`, { headers: { Authorization: `Bearer ${gateway.apiKey}` } });
  const body = await res.text();
  assert.equal(res.status, 200, `GET /v1/usage?${q}: ${res.status} ${body}`);
  return csv ? body : JSON.parse(body);
}

/** settled waits until the usage API counts `n` requests (a response settles as it ends). */
async function settled(n) {
  const deadline = Date.now() + 5000;
  for (;;) {
    const { data } = await usage({ group_by: "user" });
    const counted = data.reduce((t, r) => t + r.requests, 0);
    if (counted === n) return;
    if (counted > n || Date.now() > deadline) assert.fail(`the usage API counts ${counted} requests, the test sent ${n}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const sum = (rows, field = "cost_usd") => rows.reduce((t, r) => t + r[field], 0);

// The page's documented money format (format.js's usd): "$0.00" for nothing; two decimals from
// $1 up ("$1,234.56"); four under $1 ("$0.0011"); two significant digits under a tenth of a cent.
const dollars = (opts) => new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", ...opts });
function usd(v) {
  if (v === 0) return "$0.00";
  if (Math.abs(Math.round(v * 1e4) / 1e4) >= 1) return dollars({ minimumFractionDigits: 2, maximumFractionDigits: 2 }).format(v);
  if (Math.abs(v) >= 0.001) return dollars({ minimumFractionDigits: 4, maximumFractionDigits: 4 }).format(v);
  return dollars({ minimumSignificantDigits: 2, maximumSignificantDigits: 2 }).format(v);
}

/** parseCSV reads RFC 4180 text (quoted fields, doubled quotes, CRLF or LF) into rows of fields. */
function parseCSV(text) {
  const rows = [];
  let row = [], field = "", quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; }
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") { row.push(field); field = ""; }
    else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      row.push(field); rows.push(row); row = []; field = "";
    } else field += c;
  }
  if (field !== "" || row.length) { row.push(field); rows.push(row); }
  return rows;
}

const visible = (testid) => page.locator(`[data-testid="${testid}"]`).isVisible();
const text = async (testid) => (await page.locator(`[data-testid="${testid}"]`).textContent()).trim();
const rowOf = (tableTestid, key) => page.locator(`[data-testid="${tableTestid}"] tbody tr[data-key=${JSON.stringify(key)}]`);

/** tableRows reads a top-N table: each body row's data-key, name and cells (text and title). */
function tableRows(testid) {
  return page.locator(`[data-testid="${testid}"] tbody tr`).evaluateAll((trs) => trs.map((tr) => ({
    key: tr.dataset.key,
    name: tr.cells[0].textContent.trim(),
    cells: [...tr.cells].slice(1).map((td) => ({
      text: td.textContent.trim(),
      exact: td.querySelector('[title$=" USD"]')?.title ?? null,
    })),
    markup: tr.querySelector("i") !== null,
  })));
}

const count = (s) => Number(s.replaceAll(",", ""));

test("a wrong API key shows an error in words and nothing else", { skip }, async () => {
  const res = await page.goto(`${gateway.url}${DASHBOARD_PATH}`);
  assert.equal(res.status(), 200);
  assert.match(res.headers()["content-security-policy"] ?? "", /script-src 'self'/);
  await page.locator('[data-testid="api-key"]').waitFor({ state: "visible" });
  assert.equal(await visible("error"), false, "an error shows before anything was tried");

  phase = "wrong-key";
  await page.fill('[data-testid="api-key"]', "bk_test_not_the_key_of_this_project");
  await page.click('[data-testid="sign-in"]');
  const error = page.locator('[data-testid="error"]');
  await error.waitFor({ state: "visible" });
  const words = (await error.textContent()).trim();
  assert.match(words, /key/i, `the error does not say what was wrong: ${words}`);
  assert.match(words, /^[A-Z][^{}<>]*\w[^{}<>]*[.!]$/, `the error is not a sentence in words: ${words}`);
  assert.ok(words.split(/\s+/).length >= 5, `the error is not a sentence in words: ${words}`);
  assert.doesNotMatch(words, /invalid_api_key|undefined|\[object|401/, `the error shows machinery, not words: ${words}`);
  // Nothing else: no dashboard, no figure, no row, no stored key.
  for (const testid of ["month-spend", "budget", "spend-chart", "top-users", "export-csv", "sign-out"]) {
    assert.equal(await visible(testid), false, `${testid} is visible after a refused key`);
  }
  assert.equal(await page.locator("[data-testid=top-users] tbody tr[data-key]").count(), 0);
  assert.equal(await page.locator("[data-testid=month-spend]").getAttribute("data-usd"), null);
  assert.deepEqual(await page.evaluate(() => ({ ...sessionStorage })), {});
  const refused = pageResponses.filter((r) => r.phase === "wrong-key" && new URL(r.url).pathname === "/v1/usage");
  assert.ok(refused.length > 0 && refused.every((r) => r.status === 401), `usage calls with the wrong key: ${JSON.stringify(refused)}`);
});

test("signed in with the project API key, the spend and budget are the usage API's", { skip }, async () => {
  phase = "signed-in";
  await page.fill('[data-testid="api-key"]', gateway.apiKey);
  await page.click('[data-testid="sign-in"]');
  await page.locator('[data-testid="month-spend"][data-usd]').waitFor({ state: "visible" });
  await page.locator("[data-testid=top-users] tbody tr[data-key]").first().waitFor();
  assert.equal(await visible("error"), false, `an error shows after signing in: ${await text("error")}`);
  assert.equal(await page.locator('[data-testid="api-key"]').inputValue(), "", "the key is left in the input");

  // The page asked for this UTC month up to today; the test asks the API for the same days.
  const asked = pageRequests.filter((r) => r.phase === "signed-in" && new URL(r.url).pathname === "/v1/usage").map((r) => new URL(r.url).searchParams);
  assert.ok(asked.length > 0, "the page made no usage call");
  const today = new Date().toISOString().slice(0, 10);
  range = { from: asked[0].get("from"), to: asked[0].get("to") };
  assert.deepEqual(range, { from: `${today.slice(0, 7)}-01`, to: today });
  for (const q of asked) assert.deepEqual({ from: q.get("from"), to: q.get("to") }, range);

  const days = await usage({ group_by: "day" });
  assert.equal(days.group_by, "day");
  assert.deepEqual(days.project, { id: PROJECT, tenant_id: TENANT, cost_per_month_usd: BUDGET });
  const spend = sum(days.data);
  assert.ok(spend > 0.001 && spend < 1, `the usage made costs ${spend} USD; the test expects four decimals on the page`);
  const shown = page.locator('[data-testid="month-spend"]');
  const exact = Number(await shown.getAttribute("data-usd"));
  assert.ok(Math.abs(exact - spend) < 1e-12, `month-spend data-usd is ${exact}, the usage API's days sum to ${spend}`);
  assert.equal(await text("month-spend"), usd(spend));
  assert.equal(await text("budget"), usd(BUDGET));
  assert.equal(await text("budget"), "$1,234.50");
  assert.match(await text("budget-percent"), /%$/);
  assert.equal(await text("requests"), String(sent));
});

test("top users: one row per user, in cost order, with the usage API's figures", { skip }, async () => {
  const { data } = await usage({ group_by: "user" });
  assert.deepEqual(data.map((r) => r.key).sort(), [USER_A, USER_B, ODD].sort());
  const byCost = [...data].sort((a, b) => b.cost_usd - a.cost_usd);
  for (let i = 1; i < byCost.length; i++) assert.ok(byCost[i - 1].cost_usd > byCost[i].cost_usd, "two users cost the same: the order would be a tie");
  assert.deepEqual(byCost.map((r) => r.key), [USER_A, USER_B, ODD]);

  const rows = await tableRows("top-users");
  assert.deepEqual(rows.map((r) => r.key), byCost.map((r) => r.key), "top-users rows are not the users in cost order");
  for (const [i, api] of byCost.entries()) {
    const row = rows[i];
    assert.equal(row.name, api.key, "a user's row is not named by the user id, as text");
    assert.equal(row.markup, false, "a user id was rendered as markup");
    const [requests, input, output, cost] = row.cells;
    assert.equal(count(requests.text), api.requests, `${api.key} requests`);
    assert.ok(api.input_tokens < 10000 && api.output_tokens < 10000, "the figures are meant to be shown in full, not compacted");
    assert.equal(count(input.text), api.input_tokens, `${api.key} input tokens`);
    assert.equal(count(output.text), api.output_tokens, `${api.key} output tokens`);
    assert.equal(cost.text, usd(api.cost_usd), `${api.key} cost`);
    assert.equal(cost.exact, `${api.cost_usd} USD`, `${api.key} exact cost`);
  }

  const orgs = await usage({ group_by: "org" });
  const orgRows = await tableRows("top-orgs");
  assert.deepEqual(orgRows.map((r) => r.key), [...orgs.data].sort((a, b) => b.cost_usd - a.cost_usd).map((r) => r.key));
  assert.deepEqual(orgRows.map((r) => r.key), ["org_9", "org_7", "org_5"]);
});

test("the chart draws an SVG with a bar for every model used", { skip }, async () => {
  const { data } = await usage({ group_by: "day,model" });
  const models = [...new Set(data.filter((r) => r.cost_usd > 0).map((r) => r.model))].sort();
  assert.equal(models.length, 3, `the usage made spend on ${JSON.stringify(models)}; the test meant three models`);
  await page.locator('[data-testid="spend-chart"] svg').waitFor();
  const bars = await page.locator('[data-testid="spend-chart"] svg rect').evaluateAll((rects) => rects
    .filter((r) => r.querySelector("title"))
    .map((r) => ({ title: r.querySelector("title").textContent, fill: r.getAttribute("fill"), height: Number(r.getAttribute("height")) })));
  for (const model of models) {
    const own = bars.filter((b) => b.title.includes(` · ${model}: `));
    assert.ok(own.length >= 1, `no bar for ${model} in the chart: ${JSON.stringify(bars)}`);
    for (const b of own) assert.ok(b.height > 0, `${model}'s bar has no height`);
  }
  const fills = new Set(models.map((m) => bars.find((b) => b.title.includes(` · ${m}: `)).fill));
  assert.equal(fills.size, models.length, "two models share a colour");
  const legend = await page.locator('[data-testid="legend"] li').allTextContents();
  assert.deepEqual(legend.map((l) => l.trim()).sort(), models);

  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  const png = await fs.readFile(SCREENSHOT);
  assert.equal(png.readUInt32BE(16), WIDTH, "the screenshot is not 1280 wide");
});

test("one user's usage, asked for by an id that needs escaping, is the usage API's", { skip }, async () => {
  phase = "one-user";
  await rowOf("top-users", ODD).locator("th button, th a").click();
  const panel = page.locator('[data-testid="user-usage"]');
  await panel.waitFor({ state: "visible" });
  await page.locator('[data-testid="user-models"] tbody tr[data-key]').first().waitFor();
  const asked = pageRequests.filter((r) => r.phase === "one-user" && new URL(r.url).pathname === "/v1/usage");
  assert.ok(asked.length > 0, "the page asked nothing for one user");
  for (const r of asked) assert.equal(new URL(r.url).searchParams.get("user_id"), ODD, `${r.url} does not ask for the user`);

  const { data } = await usage({ group_by: "model", user_id: ODD });
  assert.ok(data.length > 0, "the usage API has nothing for the user");
  const rows = await tableRows("user-models");
  assert.deepEqual(rows.map((r) => r.key), [...data].sort((a, b) => b.cost_usd - a.cost_usd).map((r) => r.key));
  for (const api of data) {
    const row = rows.find((r) => r.key === api.key);
    const [requests, input, output, cost] = row.cells;
    assert.deepEqual([count(requests.text), count(input.text), count(output.text), cost.text],
      [api.requests, api.input_tokens, api.output_tokens, usd(api.cost_usd)], `${ODD}'s ${api.key}`);
  }
  assert.equal(await panel.locator("i").count(), 0, "the user id was rendered as markup");
});

test("CSV export downloads the usage API's CSV", { skip }, async () => {
  phase = "export";
  // The default rows (users per day), then models per day.
  for (const group of [null, "day,model"]) {
    if (group) await page.selectOption('[data-testid="export-group"]', group);
    const groupBy = group ?? await page.locator('[data-testid="export-group"]').inputValue();
    const [download] = await Promise.all([page.waitForEvent("download"), page.click('[data-testid="export-csv"]')]);
    assert.match(download.suggestedFilename(), /^behest-usage-.*\.csv$/);
    const file = await fs.readFile(await download.path(), "utf8");
    const api = await usage({ group_by: groupBy }, { csv: true });
    const [fileHeader, ...fileRows] = parseCSV(file);
    const [apiHeader, ...apiRows] = parseCSV(api);
    assert.deepEqual(fileHeader, apiHeader);
    assert.deepEqual(fileHeader, [...groupBy.split(","), "requests", "input_tokens", "cached_input_tokens", "output_tokens", "cost_usd"]);
    assert.deepEqual(fileRows.map(String).sort(), apiRows.map(String).sort(), `${groupBy}: the download's rows are not the API's`);
    assert.equal(file, api, `${groupBy}: the download is not the API's CSV byte for byte`);
    if (groupBy === "day,user") {
      assert.deepEqual(fileRows.map((r) => r[1]).sort(), [USER_A, USER_B, ODD].sort(), "the user ids do not read back from the CSV");
    }
  }
});

test("revoking a user from the page refuses that user's token, not another's", { skip }, async () => {
  phase = "revoke";
  const revokeCalls = () => pageRequests.filter((r) => new URL(r.url).pathname === "/v1/auth/revoke");
  const row = rowOf("top-users", ODD);
  const dialog = page.locator('[data-testid="revoke-dialog"]');

  // Cancelling the confirmation revokes nothing.
  await row.locator('[data-testid="revoke"]').click();
  await dialog.waitFor({ state: "visible" });
  assert.ok((await dialog.textContent()).includes(ODD), "the dialog does not name the user");
  await page.click('[data-testid="cancel-revoke"]');
  await dialog.waitFor({ state: "hidden" });
  assert.equal(revokeCalls().length, 0, "cancel sent a revoke");
  assert.equal((await modelRequest("openai", tokens[ODD])).status, 200, "the user's token stopped working without a revoke");
  sent++;

  await row.locator('[data-testid="revoke"]').click();
  await dialog.waitFor({ state: "visible" });
  const [answer] = await Promise.all([
    page.waitForResponse((r) => new URL(r.url()).pathname === "/v1/auth/revoke"),
    page.click('[data-testid="confirm-revoke"]'),
  ]);
  assert.equal(answer.status(), 200, await answer.text());
  assert.deepEqual(JSON.parse(revokeCalls()[0].postData), { user_id: ODD });
  assert.equal(revokeCalls().length, 1);
  await dialog.waitFor({ state: "hidden" });
  const result = page.locator('[data-testid="revoke-result"]');
  await result.waitFor({ state: "visible" });
  assert.ok((await result.textContent()).includes(ODD), `revoke-result does not name the user: ${await result.textContent()}`);
  assert.equal(await row.locator('[data-testid="revoke"]').count(), 0, "the revoked user's row still offers Revoke");

  // The gateway refuses the revoked user's existing token before the provider sees anything...
  const seen = openaiProvider.requests.length;
  const refused = await modelRequest("openai", tokens[ODD]);
  const refusal = await refused.text();
  assert.equal(refused.status, 401, refusal);
  assert.match(refused.headers.get("www-authenticate") ?? "", /invalid_token/);
  assert.equal(JSON.parse(refusal).error.code, "invalid_api_key");
  assert.equal(openaiProvider.requests.length, seen, "a revoked token's request reached the provider");
  const me = await fetch(`${gateway.url}/v1/me`, { headers: { Authorization: `Bearer ${tokens[ODD]}` } });
  assert.equal(me.status, 401);
  // ...while the other users' tokens, minted at the same time, still work.
  for (const user of [USER_A, USER_B]) {
    const res = await modelRequest("openai", tokens[user]);
    assert.equal(res.status, 200, `${user}: ${await res.text()}`);
    sent++;
  }
  // And a token minted after the revoke is accepted again, as the dialog says.
  const fresh = await behest.auth.mint({ user_id: ODD });
  assert.equal((await modelRequest("openai", fresh.token)).status, 200);
  sent++;

  // Refresh shows the new spend, still the API's.
  await settled(sent);
  const spend = sum((await usage({ group_by: "day" })).data);
  await page.click('[data-testid="refresh"]');
  await page.waitForFunction(
    (want) => Math.abs(Number(document.querySelector('[data-testid="month-spend"]').dataset.usd) - want) < 1e-12, spend);
  assert.equal(await text("month-spend"), usd(spend));
  assert.equal(await text("requests"), String(sent));
});

test("the key is in sessionStorage only, and gone after sign-out", { skip }, async () => {
  phase = "storage";
  const stored = () => page.evaluate(() => ({ session: { ...sessionStorage }, local: { ...localStorage } }));
  const hasKey = (obj) => Object.values(obj).some((v) => String(v).includes(gateway.apiKey));
  let s = await stored();
  assert.equal(s.session[KEY_STORAGE], gateway.apiKey, "the key is not in sessionStorage");
  assert.equal(hasKey(s.local), false, "the key is in localStorage");
  assert.deepEqual(s.local, {});
  const cookies = await context.cookies();
  assert.equal(cookies.some((c) => c.value.includes(gateway.apiKey) || c.name.includes(gateway.apiKey)), false, "the key is in a cookie");
  assert.equal(page.url(), `${gateway.url}${DASHBOARD_PATH}`, "the page's URL changed (a key in the URL would be logged)");

  // The tab keeps the key across a reload...
  await page.reload();
  await page.locator('[data-testid="month-spend"][data-usd]').waitFor({ state: "visible" });

  // ...and forgets it on sign-out, for good.
  await page.click('[data-testid="sign-out"]');
  await page.locator('[data-testid="api-key"]').waitFor({ state: "visible" });
  assert.equal(await visible("month-spend"), false);
  s = await stored();
  assert.equal(hasKey(s.session) || hasKey(s.local), false, `the key is still stored after sign-out: ${JSON.stringify(s)}`);
  assert.deepEqual(s.session, {});
  await page.reload();
  await page.locator('[data-testid="api-key"]').waitFor({ state: "visible" });
  assert.equal(await visible("month-spend"), false, "the dashboard came back after sign-out and a reload");
  assert.equal((await context.cookies()).length, 0, "the dashboard set a cookie");
});

test("the page talked to the gateway's origin only, logged no error and broke no CSP rule", { skip }, async () => {
  const origin = new URL(gateway.url).origin;
  assert.ok(pageRequests.length > 10, `only ${pageRequests.length} requests were recorded`);
  const elsewhere = pageRequests.filter((r) => !r.url.startsWith("data:") && new URL(r.url).origin !== origin);
  assert.deepEqual(elsewhere.map((r) => r.url), [], "the page made requests to other origins");
  assert.deepEqual(pageRequests.filter((r) => r.url.includes(gateway.apiKey)).map((r) => r.url), [], "the key was put in a URL");
  // Every call to the gateway's API carried the key as a bearer token, and only the wrong key was refused.
  const apiCalls = pageRequests.filter((r) => new URL(r.url).pathname.startsWith("/v1/"));
  for (const r of apiCalls.filter((c) => c.phase !== "wrong-key")) {
    assert.equal(r.headers.authorization, `Bearer ${gateway.apiKey}`, `${r.method} ${r.url}`);
  }
  const failed = pageResponses.filter((r) => r.status >= 400 && r.phase !== "wrong-key");
  assert.deepEqual(failed, [], "the signed-in page got error answers");

  // The refused sign-in's 401s are logged by Chromium itself ("Failed to load resource"); nothing else may be.
  const expected = (l) => l.phase === "wrong-key" && /^Failed to load resource: the server responded with a status of 401/.test(l.text);
  const errors = consoleLines.filter((l) => (l.type === "error" || l.type === "pageerror") && !expected(l));
  assert.deepEqual(errors, [], "console errors, page errors or CSP violations");
});
