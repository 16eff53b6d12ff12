// End-to-end in a real browser: headless Chromium loads a page from another origin than the
// gateway; the page gets a token from its own /api/behest-token (minted with this package) and
// streams a completion with the official openai SDK through CORS. A page from an origin that is
// not in cors_origins is refused.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import { startFakeProvider, startGateway, freePort, gatewayHeaders, packageDir, REPLY, TENANT, PROJECT, PROVIDER_KEY } from "./harness.js";
import { startPageServer } from "./page-server.js";

// BEHEST_CHROMIUM points elsewhere (e.g. to check the skip path); never a downloaded browser.
const CHROMIUM = process.env.BEHEST_CHROMIUM ?? "/usr/bin/chromium";
// The README's screenshot is refreshed only on request (UPDATE_SCREENSHOT=1), so a test run
// leaves the work tree clean.
const SCREENSHOT = process.env.UPDATE_SCREENSHOT
  ? path.join(packageDir, "screenshot.png")
  : path.join(os.tmpdir(), `behest-screenshot-${process.pid}.png`);
const USER = "user_browser";
const ORG = "org_9";

const haveChromium = existsSync(CHROMIUM);
if (!haveChromium && process.env.CI) {
  throw new Error(`${CHROMIUM} is missing and CI is set: install Debian's chromium (apt-get install chromium) to run the browser tests.`);
}
const skip = haveChromium ? false : `${CHROMIUM} is missing (apt-get install chromium); skipping the browser tests outside CI`;

let provider, gateway, allowedApp, refusedApp, context, userDataDir;
const env = {};

before(async () => {
  if (skip) return;
  provider = await startFakeProvider({ chunkDelayMs: 60 });

  // The token route handler reads BEHEST_KEY and BEHEST_BASE_URL when it is loaded, as a Next.js
  // route module does; the gateway's port and key are known only once it runs.
  let gatewayURL = "";
  const lazyRoute = { POST: async (req) => (await routeModule()).POST(req) };
  let route;
  const routeModule = async () => (route ??= await import("./page/route.js"));

  allowedApp = await startPageServer({ gatewayURL: () => gatewayURL, route: lazyRoute });
  refusedApp = await startPageServer({ gatewayURL: () => gatewayURL, route: lazyRoute });
  gateway = await startGateway({ providerPort: provider.port, corsOrigins: [allowedApp.url] });
  gatewayURL = gateway.url;
  for (const [k, v] of Object.entries({ BEHEST_KEY: gateway.apiKey, BEHEST_BASE_URL: gateway.url })) {
    env[k] = process.env[k];
    process.env[k] = v;
  }

  userDataDir = await fs.mkdtemp(path.join(os.tmpdir(), "behest-chromium-"));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
    viewport: { width: 900, height: 440 },
    timeout: 60_000,
  });
  // The signed-in user of the demo app (see page/auth.js), for both app origins.
  await context.addCookies([allowedApp, refusedApp].flatMap((app) => [
    { name: "demo_user", value: USER, url: app.url },
    { name: "demo_org", value: ORG, url: app.url },
  ]));
});

after(async () => {
  await context?.close();
  await gateway?.stop();
  for (const s of [provider, allowedApp, refusedApp]) await s?.close();
  if (userDataDir) await fs.rm(userDataDir, { recursive: true, force: true });
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

/** openPage loads the demo app from `app` and waits for it to finish or fail. */
async function openPage(app) {
  const page = await context.newPage();
  const consoleLines = [];
  page.on("console", (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => consoleLines.push(`pageerror: ${e.message}`));
  await page.goto(`${app.url}/`);
  try {
    await page.waitForSelector('#status[data-state="done"], #status[data-state="error"]', { timeout: 20_000 });
  } catch (e) {
    throw new Error(`the page never finished: ${await page.textContent("#status")}\nconsole:\n${consoleLines.join("\n")}`, { cause: e });
  }
  const result = await page.evaluate(() => {
    const s = document.getElementById("status");
    const a = document.getElementById("answer");
    return {
      state: s.dataset.state,
      status: s.textContent,
      errorName: s.dataset.errorName,
      answer: a.textContent,
      chunks: Number(a.dataset.chunks ?? 0),
      session: document.getElementById("session").textContent,
    };
  });
  return { page, result, consoleLines };
}

test("a page from an allowed origin streams a completion with the openai SDK through the gateway", { skip }, async () => {
  const before = provider.requests.length;
  const { page, result, consoleLines } = await openPage(allowedApp);
  assert.equal(result.state, "done", `${result.status}\nconsole:\n${consoleLines.join("\n")}`);
  assert.equal(result.answer, REPLY);
  assert.ok(result.chunks > 1, `the answer came in ${result.chunks} chunk(s)`);
  assert.match(result.session, /^sess_/);

  const seen = provider.requests.slice(before);
  assert.equal(seen.length, 1, "the provider should see exactly the one chat request (never a preflight)");
  assert.deepEqual(gatewayHeaders(seen[0]), {
    tenant: TENANT, project: PROJECT, user: `${ORG}:${USER}`, tier: "1", session: result.session, authorization: `Bearer ${PROVIDER_KEY}`,
  });
  assert.equal(seen[0].body.stream, true);

  await page.screenshot({ path: SCREENSHOT });
  await page.close();
});

test("a page from an origin not in cors_origins is refused by the browser", { skip }, async () => {
  // The gateway answers this origin's preflight without CORS headers, and the allowed one's with them.
  const preflight = (origin) => fetch(`${gateway.url}/v1/chat/completions`, {
    method: "OPTIONS",
    headers: { Origin: origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type, x-session-id, x-stainless-os" },
  });
  const refused = await preflight(refusedApp.url);
  assert.equal(refused.headers.get("access-control-allow-origin"), null);
  const allowed = await preflight(allowedApp.url);
  assert.equal(allowed.headers.get("access-control-allow-origin"), allowedApp.url);
  assert.match(allowed.headers.get("access-control-allow-headers") ?? "", /authorization/i);
  assert.match(allowed.headers.get("access-control-allow-headers") ?? "", /x-session-id/i);

  const before = provider.requests.length;
  const { page, result, consoleLines } = await openPage(refusedApp);
  assert.equal(result.state, "error", result.status);
  assert.equal(result.errorName, "APIConnectionError", result.status);
  assert.equal(result.answer, "");
  assert.ok(consoleLines.some((l) => /CORS|Access-Control-Allow-Origin/i.test(l)), `no CORS message in the console:\n${consoleLines.join("\n")}`);
  assert.equal(provider.requests.length, before, "a refused origin's request reached the provider");
  await page.close();
});
