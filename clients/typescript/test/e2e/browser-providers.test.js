// End-to-end in a real browser, for the Anthropic and Gemini SDKs: headless Chromium loads a page
// from another origin than the gateway; the page gets a token from its own /api/behest-token
// (minted with this package) and streams a reply with each official SDK's browser build through
// CORS, to the fake Anthropic under /anthropic and the fake Gemini under /gemini of one Caddy. A
// page from an origin that is not in cors_origins is refused. (browser.test.js does the same for
// the openai SDK.)
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import { startFakeProvider, startGateway, gatewayHeaders, TENANT, PROJECT, PROVIDER_KEY } from "./harness.js";
import { startFakeAnthropic, startFakeGemini, REPLY, REPLY_PIECES } from "./fake-providers.js";
import { providerTiers, providerPrices } from "./providers-config.js";
import { startPageServer } from "./page-server.js";

// BEHEST_CHROMIUM points elsewhere (e.g. to check the skip path); never a downloaded browser.
const CHROMIUM = process.env.BEHEST_CHROMIUM ?? "/usr/bin/chromium";
const USER = "user_browser_providers";
const ORG = "org_7";

const haveChromium = existsSync(CHROMIUM);
if (!haveChromium && process.env.CI) {
  throw new Error(`${CHROMIUM} is missing and CI is set: install Debian's chromium (apt-get install chromium) to run the browser tests.`);
}
const skip = haveChromium ? false : `${CHROMIUM} is missing (apt-get install chromium); skipping the browser tests outside CI`;

let openaiProvider, anthropic, gemini, gateway, allowedApp, refusedApp, context, userDataDir;
const env = {};

before(async () => {
  if (skip) return;
  // Paced deltas, so "arrived in pieces" means the stream was not buffered on the way.
  [openaiProvider, anthropic, gemini] = await Promise.all([
    startFakeProvider(), startFakeAnthropic({ chunkDelayMs: 40 }), startFakeGemini({ chunkDelayMs: 40 }),
  ]);

  // The token route reads BEHEST_KEY and BEHEST_BASE_URL when it is loaded (see browser.test.js).
  let gatewayURL = "";
  let route;
  const routeModule = async () => (route ??= await import("./page/route.js"));
  const lazyRoute = { POST: async (req) => (await routeModule()).POST(req) };
  allowedApp = await startPageServer({ gatewayURL: () => gatewayURL, route: lazyRoute });
  refusedApp = await startPageServer({ gatewayURL: () => gatewayURL, route: lazyRoute });
  gateway = await startGateway({
    providerPort: openaiProvider.port,
    anthropicPort: anthropic.port,
    geminiPort: gemini.port,
    corsOrigins: [allowedApp.url],
    tiers: providerTiers,
    prices: providerPrices,
  });
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
  await context.addCookies([allowedApp, refusedApp].flatMap((app) => [
    { name: "demo_user", value: USER, url: app.url },
    { name: "demo_org", value: ORG, url: app.url },
  ]));
});

after(async () => {
  await context?.close();
  await gateway?.stop();
  for (const s of [openaiProvider, anthropic, gemini, allowedApp, refusedApp]) await s?.close();
  if (userDataDir) await fs.rm(userDataDir, { recursive: true, force: true });
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

/** openPage loads providers.html for `sdk` (and `model`) from `app` and waits for it to finish or fail. */
async function openPage(app, sdk, model) {
  const page = await context.newPage();
  const consoleLines = [];
  page.on("console", (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => consoleLines.push(`pageerror: ${e.message}`));
  await page.goto(`${app.url}/providers.html?sdk=${sdk}${model ? `&model=${encodeURIComponent(model)}` : ""}`);
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
      errorStatus: s.dataset.errorStatus,
      answer: a.textContent,
      chunks: Number(a.dataset.chunks ?? 0),
      session: document.getElementById("session").textContent,
    };
  });
  return { page, result, consoleLines };
}

// Each SDK: its fake provider, the path and key header that provider must see, what the SDK
// throws when the browser refuses the response, and the request headers its preflight names
// (what each SDK's browser build sends beyond the CORS-safelisted ones, as seen at the provider).
const sdks = {
  anthropic: {
    provider: () => anthropic,
    path: "/v1/messages",
    keyHeader: "x-api-key",
    refusedError: "APIConnectionError",
    forbiddenModel: "claude-opus-4-1",
    forbiddenError: "PermissionDeniedError",
    preflightHeaders: "anthropic-dangerous-direct-browser-access, anthropic-version, authorization, content-type, x-stainless-arch, x-stainless-helper-method, x-stainless-lang, x-stainless-os, x-stainless-package-version, x-stainless-retry-count, x-stainless-runtime, x-stainless-runtime-version, x-stainless-timeout",
  },
  gemini: {
    provider: () => gemini,
    path: "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
    keyHeader: "x-goog-api-key",
    refusedError: "TypeError", // fetch's own: genai does not wrap network errors
    forbiddenModel: "gemini-2.5-pro",
    forbiddenError: "ApiError",
    preflightHeaders: "content-type, x-goog-api-client, x-goog-api-key",
  },
};

for (const [name, sdk] of Object.entries(sdks)) {
  describe(`the ${name} SDK in a browser`, () => {
    test("a page from an allowed origin streams a reply through the gateway", { skip }, async () => {
      const provider = sdk.provider();
      const from = provider.requests.length;
      const { page, result, consoleLines } = await openPage(allowedApp, name);
      assert.equal(result.state, "done", `${result.status}\nconsole:\n${consoleLines.join("\n")}`);
      assert.equal(result.answer, REPLY);
      assert.equal(result.chunks, REPLY_PIECES.length, "the reply did not arrive piece by piece");
      assert.match(result.session, /^sess_/);

      const seen = provider.requests.slice(from);
      assert.equal(seen.length, 1, "the provider should see exactly the one request (never a preflight)");
      assert.equal(seen[0].path, sdk.path);
      assert.equal(seen[0].headers[sdk.keyHeader], PROVIDER_KEY);
      assert.deepEqual(gatewayHeaders(seen[0]), {
        tenant: TENANT, project: PROJECT, user: `${ORG}:${USER}`, tier: "1", session: result.session, authorization: undefined,
      });
      await page.close();
    });

    test("its preflight is allowed for the app's origin, with every header the SDK sends", { skip }, async () => {
      const preflight = (origin) => fetch(`${gateway.url}/${name}${sdk.path}`, {
        method: "OPTIONS",
        headers: { Origin: origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": sdk.preflightHeaders },
      });
      const allowed = await preflight(allowedApp.url);
      assert.equal(allowed.headers.get("access-control-allow-origin"), allowedApp.url);
      const granted = new Set((allowed.headers.get("access-control-allow-headers") ?? "").toLowerCase().split(/\s*,\s*/));
      const missing = sdk.preflightHeaders.split(/\s*,\s*/).filter((h) => !granted.has(h));
      assert.deepEqual(missing, [], `not allowed: ${missing.join(", ")}`);
      const refused = await preflight(refusedApp.url);
      assert.equal(refused.headers.get("access-control-allow-origin"), null);
    });

    test("the gateway's refusal reaches the page as the SDK's own error, not a network error", { skip }, async () => {
      // The gateway's error responses carry the CORS headers too, so the SDK can read them.
      const provider = sdk.provider();
      const from = provider.requests.length;
      const { page, result, consoleLines } = await openPage(allowedApp, name, sdk.forbiddenModel);
      assert.equal(result.state, "error", result.status);
      assert.equal(result.errorName, sdk.forbiddenError, `${result.status}\nconsole:\n${consoleLines.join("\n")}`);
      assert.equal(result.errorStatus, "403", result.status);
      assert.match(result.status, /model_not_allowed/);
      assert.equal(provider.requests.length, from, "a refused request reached the provider");
      await page.close();
    });

    test("a page from an origin not in cors_origins is refused by the browser", { skip }, async () => {
      const provider = sdk.provider();
      const from = provider.requests.length;
      const { page, result, consoleLines } = await openPage(refusedApp, name);
      assert.equal(result.state, "error", result.status);
      assert.equal(result.errorName, sdk.refusedError, result.status);
      assert.equal(result.answer, "");
      assert.ok(consoleLines.some((l) => /CORS|Access-Control-Allow-Origin/i.test(l)), `no CORS message in the console:\n${consoleLines.join("\n")}`);
      assert.equal(provider.requests.length, from, "a refused origin's request reached the provider");
      await page.close();
    });
  });
}
