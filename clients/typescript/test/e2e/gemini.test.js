// End-to-end: the official Gemini SDK, @google/genai (Node), through a real Caddy with the behest
// plugin, which serves Gemini under /gemini beside Anthropic and OpenAI (the contract's
// "Providers"), to a fake Gemini speaking the Gemini API's wire format. Tokens are minted by the
// gateway.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { GoogleGenAI, ApiError, createPartFromUri } from "@google/genai";
import { Behest } from "@behest/client-ts";
import { startFakeProvider, startGateway, gatewayHeaders, TENANT, PROJECT, PROVIDER_KEY } from "./harness.js";
import { startFakeAnthropic, startFakeGemini, holdStream, GEMINI_USAGE, GEMINI_COUNT, GEMINI_EMBEDDING, REPLY, REPLY_PIECES } from "./fake-providers.js";
import { providerTiers, providerPrices, MAX_OUTPUT, usageOf, cost } from "./providers-config.js";

let openaiProvider, anthropic, gemini, gateway, behest;

before(async () => {
  [openaiProvider, anthropic, gemini] = await Promise.all([startFakeProvider(), startFakeAnthropic(), startFakeGemini({ chunkDelayMs: 10 })]);
  gateway = await startGateway({
    providerPort: openaiProvider.port,
    anthropicPort: anthropic.port,
    geminiPort: gemini.port,
    tiers: providerTiers,
    prices: providerPrices,
  });
  behest = new Behest({ apiKey: gateway.apiKey, baseURL: gateway.url });
});

after(async () => {
  await gateway?.stop();
  for (const s of [openaiProvider, anthropic, gemini]) await s?.close();
});

/** mint a token for a fresh user (so each test reads its own usage), in `tier`. */
async function mintFor(prefix, tier) {
  const user = `org_gem:${prefix}_${randomUUID().slice(0, 8)}`;
  const bundle = await behest.auth.mint({ user_id: user, ...(tier ? { tier } : {}) });
  return { user, ...bundle };
}

/** The genai SDK as an app would make it for a Behest token. */
function sdkFor(token, httpOptions = {}) {
  return new GoogleGenAI({ apiKey: token, httpOptions: { baseUrl: `${gateway.url}/gemini`, ...httpOptions } });
}

/** The fake Gemini's requests that arrived while fn ran, and fn's result. */
async function geminiRequestsDuring(fn) {
  const from = gemini.requests.length;
  const result = await fn();
  return { seen: gemini.requests.slice(from), result };
}

/** assertProviderSaw checks one provider request: the provider's key, the gateway's identity, no token. */
function assertProviderSaw(rec, { user, sessionId, token, tier = "1" }) {
  assert.equal(rec.headers["x-goog-api-key"], PROVIDER_KEY);
  assert.deepEqual(gatewayHeaders(rec), { tenant: TENANT, project: PROJECT, user, tier, session: sessionId, authorization: undefined });
  assert.ok(!JSON.stringify(rec.headers).includes(token), "the provider saw the client's token");
  assert.ok(!rec.url.includes(token), "the provider's URL holds the client's token");
}

const MODEL = "gemini-2.5-flash";
const contents = "Say hello.";
const sum = (rows, f) => rows.reduce((n, r) => n + r[f], 0);

describe("the genai SDK with a gateway token", () => {
  test("generateContent comes back as the provider sent it; the provider got its own key, not the token", async () => {
    const { user, token, sessionId } = await mintFor("gen");
    let sent;
    const { seen, result: res } = await geminiRequestsDuring(() => {
      // The SDK sends apiKey as x-goog-api-key: see what it sent.
      const ai = sdkFor(token, { fetch: (url, init) => { sent = { url: String(url), headers: new Headers(init.headers) }; return fetch(url, init); } });
      return ai.models.generateContent({ model: MODEL, contents });
    });
    assert.equal(sent.headers.get("x-goog-api-key"), token);
    assert.equal(sent.headers.get("authorization"), null);
    assert.equal(sent.url, `${gateway.url}/gemini/v1beta/models/${MODEL}:generateContent`);

    assert.equal(res.text, REPLY);
    assert.equal(res.candidates[0].finishReason, "STOP");
    assert.deepEqual({ ...res.usageMetadata }, GEMINI_USAGE);
    assert.equal(res.modelVersion, MODEL);

    assert.equal(seen.length, 1);
    assert.equal(seen[0].path, `/v1beta/models/${MODEL}:generateContent`, "handle_path should strip /gemini");
    assertProviderSaw(seen[0], { user, sessionId, token });
    // No cap asked: the gateway sets the tier's, so the provider honours the bound it reserved.
    assert.equal(seen[0].body.generationConfig?.maxOutputTokens, MAX_OUTPUT, JSON.stringify(seen[0].body));
  });

  test("generateContentStream arrives chunk by chunk over ?alt=sse", async () => {
    const { user, token, sessionId } = await mintFor("stream");
    const pieces = [];
    let last;
    const { seen } = await geminiRequestsDuring(async () => {
      const stream = await sdkFor(token).models.generateContentStream({ model: MODEL, contents, config: { maxOutputTokens: 300 } });
      for await (const chunk of stream) {
        pieces.push(chunk.text);
        last = chunk;
      }
    });
    assert.deepEqual(pieces, REPLY_PIECES);
    assert.equal(last.candidates[0].finishReason, "STOP");
    assert.deepEqual({ ...last.usageMetadata }, GEMINI_USAGE);
    assert.equal(seen.length, 1);
    assert.equal(seen[0].path, `/v1beta/models/${MODEL}:streamGenerateContent`);
    assert.equal(seen[0].query.alt, "sse");
    assert.equal(seen[0].body.generationConfig.maxOutputTokens, 300, "the client's own cap within the tier's was changed");
    assertProviderSaw(seen[0], { user, sessionId, token });
  });

  test("a stream is not buffered: its first chunk arrives while the provider holds back the rest", { timeout: 10_000 }, async () => {
    const { token } = await mintFor("unbuffered");
    const release = holdStream(gemini);
    try {
      const chunks = (await sdkFor(token).models.generateContentStream({ model: MODEL, contents }))[Symbol.asyncIterator]();
      assert.equal((await chunks.next()).value?.text, REPLY_PIECES[0]);
      release();
      const rest = [];
      for (let c = await chunks.next(); !c.done; c = await chunks.next()) rest.push(c.value.text);
      assert.deepEqual(rest, REPLY_PIECES.slice(1));
    } finally {
      release();
    }
  });

  test("embedContent (the SDK calls :batchEmbedContents) and :embedContent are passed on and metered", async () => {
    const { user, token, sessionId } = await mintFor("embed");
    const model = "gemini-embedding-001";
    const { seen, result: res } = await geminiRequestsDuring(() => sdkFor(token).models.embedContent({ model, contents: ["one", "two"] }));
    assert.deepEqual(res.embeddings.map((e) => e.values), [GEMINI_EMBEDDING, GEMINI_EMBEDDING]);
    assert.equal(seen[0].path, `/v1beta/models/${model}:batchEmbedContents`);
    assertProviderSaw(seen[0], { user, sessionId, token });

    // The single-content method, as the REST API (and older SDKs) call it.
    const direct = await fetch(`${gateway.url}/gemini/v1beta/models/${model}:embedContent`, {
      method: "POST",
      headers: { "x-goog-api-key": token, "content-type": "application/json" },
      body: JSON.stringify({ content: { parts: [{ text: "three" }] } }),
    });
    assert.equal(direct.status, 200, await direct.clone().text());
    assert.deepEqual(await direct.json(), { embedding: { values: GEMINI_EMBEDDING } });

    // Gemini reports no usage for embeddings: each is charged what it reserved (its prompt's
    // bound), never nothing, at the model's input price.
    const rows = await usageOf(behest, user, (rs) => sum(rs, "requests") >= 2);
    const row = rows.find((r) => r.key === model);
    assert.ok(row, JSON.stringify(rows));
    assert.equal(row.requests, 2);
    assert.ok(row.input_tokens > 0, `embeddings charged nothing: ${JSON.stringify(row)}`);
    assert.equal(row.output_tokens, 0);
    assert.ok(Math.abs(row.cost_usd - cost({ input: row.input_tokens }, providerPrices.embedding)) < 1e-9, JSON.stringify(row));
  });

  test("countTokens is passed on and is free", async () => {
    const { user, token, sessionId } = await mintFor("count");
    const { seen, result: res } = await geminiRequestsDuring(() => sdkFor(token).models.countTokens({ model: MODEL, contents }));
    assert.equal(res.totalTokens, GEMINI_COUNT);
    assert.equal(seen[0].path, `/v1beta/models/${MODEL}:countTokens`);
    assertProviderSaw(seen[0], { user, sessionId, token });
    // Free: no tokens and no cost for it; the user's usage is one answer's alone once one is sent.
    await sdkFor(token).models.generateContent({ model: MODEL, contents });
    const rows = await usageOf(behest, user, (rs) => rs.some((r) => r.key === MODEL));
    assert.equal(sum(rows, "input_tokens"), GEMINI_USAGE.promptTokenCount, JSON.stringify(rows));
    assert.equal(sum(rows, "output_tokens"), GEMINI_USAGE.candidatesTokenCount + GEMINI_USAGE.thoughtsTokenCount, JSON.stringify(rows));
    assert.ok(Math.abs(sum(rows, "cost_usd") - rows.find((r) => r.key === MODEL).cost_usd) < 1e-12, JSON.stringify(rows));
  });

  test("usage by model: prompt, thoughts beside candidates, the cached part at the cached price", async () => {
    const { user, token } = await mintFor("usage");
    const ai = sdkFor(token);
    await ai.models.generateContent({ model: MODEL, contents });
    for await (const _ of await ai.models.generateContentStream({ model: MODEL, contents })) { /* drain */ }

    const rows = await usageOf(behest, user, (rs) => sum(rs, "requests") >= 2);
    assert.equal(rows.length, 1, JSON.stringify(rows));
    const [row] = rows;
    assert.equal(row.key, MODEL);
    assert.equal(row.model, MODEL);
    assert.equal(row.requests, 2);
    const { promptTokenCount, cachedContentTokenCount, candidatesTokenCount, thoughtsTokenCount } = GEMINI_USAGE;
    // A stream's usage is its last chunk's (the counts are cumulative), not their sum.
    assert.equal(row.input_tokens, 2 * promptTokenCount, JSON.stringify(row));
    assert.equal(row.output_tokens, 2 * (candidatesTokenCount + thoughtsTokenCount), JSON.stringify(row));
    assert.equal(row.cached_input_tokens, 2 * cachedContentTokenCount, JSON.stringify(row));
    // gemini-2.5-flash: 0.30 in, 2.50 out, 0.03 cached per 1M tokens.
    const want = 2 * cost({ input: promptTokenCount - cachedContentTokenCount, cached: cachedContentTokenCount, output: candidatesTokenCount + thoughtsTokenCount }, providerPrices.flash);
    assert.ok(Math.abs(row.cost_usd - want) < 1e-9, `cost_usd ${row.cost_usd}, want ${want}`);
  });

  test("Authorization: Bearer works as the token header too, and is removed before the provider", async () => {
    const { user, token, sessionId } = await mintFor("bearer");
    // The fake refuses a request that still carries Authorization, so a 200 means it was removed.
    const { seen, result: res } = await geminiRequestsDuring(() => fetch(`${gateway.url}/gemini/v1beta/models/${MODEL}:generateContent`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ contents: [{ parts: [{ text: contents }] }] }),
    }));
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal((await res.json()).candidates[0].content.parts[0].text, REPLY);
    assertProviderSaw(seen[0], { user, sessionId, token });
  });

  test("a token in the query string (?key=) is refused, never passed on", async () => {
    const { token } = await mintFor("query");
    const from = gemini.requests.length;
    const res = await fetch(`${gateway.url}/gemini/v1beta/models/${MODEL}:generateContent?key=${token}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ contents: [{ parts: [{ text: contents }] }] }),
    });
    assert.equal(res.status, 401);
    assert.equal((await res.json()).error?.status, "UNAUTHENTICATED");
    assert.equal(gemini.requests.length, from, "a refused request reached the provider");
  });
});

describe("the gateway's errors are the genai SDK's ApiError in Gemini's shape", () => {
  /**
   * assertGeminiError checks an ApiError's status and that its message (the SDK puts the JSON
   * body there) is Gemini's error shape with the expected status name and gateway code.
   */
  function assertGeminiError(err, code, status, gatewayCode) {
    assert.ok(err instanceof ApiError, `want ApiError, got ${err?.constructor?.name}: ${err?.message}`);
    assert.equal(err.status, code);
    let body;
    assert.doesNotThrow(() => { body = JSON.parse(err.message); }, `not a JSON body: ${err.message}`);
    assert.equal(body.error?.code, code, err.message);
    assert.equal(body.error?.status, status, err.message);
    assert.equal(typeof body.error?.message, "string", err.message);
    if (gatewayCode) assert.match(body.error.message, new RegExp(gatewayCode), err.message);
  }

  /** The fetch calls an SDK makes (every attempt, retries included), and the last response. */
  function countingFetch() {
    const f = async (...args) => { f.calls++; f.last = await fetch(...args); return f.last; };
    f.calls = 0;
    return f;
  }

  test("a bad token is ApiError 401 UNAUTHENTICATED", async () => {
    const { token } = await mintFor("bad");
    const [h, p, s] = token.split(".");
    const flipped = `${h}.${p}.${s.slice(0, -4)}${s.slice(-4) === "AAAA" ? "BBBB" : "AAAA"}`;
    const from = gemini.requests.length;
    for (const bad of ["not-a-jwt", flipped]) {
      const err = await sdkFor(bad).models.generateContent({ model: MODEL, contents }).catch((e) => e);
      assertGeminiError(err, 401, "UNAUTHENTICATED");
    }
    assert.equal(gemini.requests.length, from, "a refused request reached the provider");
  });

  test("a model outside the tier's models is ApiError 403 PERMISSION_DENIED naming model_not_allowed", async () => {
    const { token } = await mintFor("pro");
    const from = gemini.requests.length;
    for (const call of ["generateContent", "generateContentStream"]) {
      const err = await sdkFor(token).models[call]({ model: "gemini-2.5-pro", contents }).catch((e) => e);
      assertGeminiError(err, 403, "PERMISSION_DENIED", "model_not_allowed");
      assert.match(JSON.parse(err.message).error.message, /gemini-2\.5-pro/, "the message should name the model");
    }
    assert.equal(gemini.requests.length, from, "a refused request reached the provider");
  });

  // Token counts are free, but the contract's Model policy holds them to the allowlist too.
  test("countTokens for a model outside the tier's models is ApiError 403 too", async () => {
    const { token } = await mintFor("countpro");
    const from = gemini.requests.length;
    const err = await sdkFor(token).models.countTokens({ model: "gemini-2.5-pro", contents }).catch((e) => e);
    assertGeminiError(err, 403, "PERMISSION_DENIED", "model_not_allowed");
    assert.equal(gemini.requests.length, from, "a refused request reached the provider");
  });

  // A Gemini endpoint the gateway does not serve (cachedContents, what caches.create calls) is
  // refused in Gemini's own shape, {"error":{"code":403,"message":…,"status":"PERMISSION_DENIED"}}.
  test("an endpoint the gateway does not serve (cachedContents) is ApiError 403 in Gemini's shape", async () => {
    const { token } = await mintFor("caches");
    const from = gemini.requests.length;
    const err = await sdkFor(token).caches.create({ model: MODEL, config: { contents: [{ role: "user", parts: [{ text: contents }] }] } }).catch((e) => e);
    assert.equal(gemini.requests.length, from, "a refused request reached the provider");
    assertGeminiError(err, 403, "PERMISSION_DENIED", "permission_denied");
  });

  test("maxOutputTokens over the tier's max_output_tokens is ApiError 400 INVALID_ARGUMENT naming max_tokens_exceeded", async () => {
    const { token } = await mintFor("toolong");
    const from = gemini.requests.length;
    const err = await sdkFor(token).models.generateContent({ model: MODEL, contents, config: { maxOutputTokens: MAX_OUTPUT + 1 } }).catch((e) => e);
    assertGeminiError(err, 400, "INVALID_ARGUMENT", "max_tokens_exceeded");
    assert.equal(gemini.requests.length, from, "a refused request reached the provider");
  });

  test("a used-up quota is ApiError 429 RESOURCE_EXHAUSTED naming insufficient_quota, with x-should-retry: false", async () => {
    const { token } = await mintFor("broke", "broke");
    const f = countingFetch();
    const from = gemini.requests.length;
    const err = await sdkFor(token, { fetch: f }).models.generateContent({ model: MODEL, contents, config: { maxOutputTokens: 50 } }).catch((e) => e);
    assertGeminiError(err, 429, "RESOURCE_EXHAUSTED", "insufficient_quota");
    // ApiError keeps no headers: read them from the response the SDK got.
    assert.equal(f.last.headers.get("x-should-retry"), "false");
    assert.ok(Number(f.last.headers.get("retry-after")) >= 1, "Retry-After");
    assert.equal(f.calls, 1);
    assert.equal(gemini.requests.length, from, "a refused request reached the provider");
  });

  test("content by reference (fileData, cachedContent) reserves max_input_tokens: over a small budget", async () => {
    // Tier tight: 0.01 USD a day. A short prompt fits; a file by URI or a cached context reserves
    // 128000 input tokens (0.0384 USD at flash's price), which the body does not bound.
    const { token } = await mintFor("byref", "tight");
    const ai = sdkFor(token);
    const config = { maxOutputTokens: 50 };
    assert.equal((await ai.models.generateContent({ model: MODEL, contents, config })).text, REPLY);
    const from = gemini.requests.length;
    const byURI = { role: "user", parts: [createPartFromUri("https://generativelanguage.googleapis.com/v1beta/files/abc-123", "image/png"), { text: "What is this?" }] };
    for (const [what, request] of [
      ["fileData", { model: MODEL, contents: [byURI], config }],
      ["cachedContent", { model: MODEL, contents, config: { ...config, cachedContent: "cachedContents/abc-123" } }],
    ]) {
      const err = await ai.models.generateContent(request).catch((e) => e);
      assertGeminiError(err, 429, "RESOURCE_EXHAUSTED", "insufficient_quota");
      assert.equal(gemini.requests.length, from, `${what}: a refused request reached the provider`);
    }
  });

  test("a per-minute limit is ApiError 429 RESOURCE_EXHAUSTED naming rate_limit_exceeded, with Retry-After", async () => {
    const { token } = await mintFor("rpm", "slow");
    const f = countingFetch();
    const ai = sdkFor(token, { fetch: f });
    await ai.models.generateContent({ model: MODEL, contents });
    for (const call of ["generateContent", "generateContentStream"]) {
      const err = await ai.models[call]({ model: MODEL, contents }).catch((e) => e);
      assertGeminiError(err, 429, "RESOURCE_EXHAUSTED", "rate_limit_exceeded");
      assert.ok(Number(f.last.headers.get("retry-after")) >= 1, "Retry-After");
      assert.ok(Number(f.last.headers.get("retry-after-ms")) > 0, "retry-after-ms");
    }
  });
});
