// End-to-end: the official Anthropic SDK (Node) through a real Caddy with the behest plugin, which
// serves Anthropic under /anthropic beside Gemini and OpenAI (the contract's "Providers"), to a
// fake Anthropic speaking the Messages API's wire format. Tokens are minted by the gateway.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import Anthropic from "@anthropic-ai/sdk";
import { Behest } from "@behest/client-ts";
import { startFakeProvider, startGateway, gatewayHeaders, TENANT, PROJECT, PROVIDER_KEY } from "./harness.js";
import { startFakeAnthropic, startFakeGemini, holdStream, ANTHROPIC_MODEL, ANTHROPIC_USAGE, ANTHROPIC_COUNT, REPLY, REPLY_PIECES } from "./fake-providers.js";
import { providerTiers, providerPrices, MAX_OUTPUT, usageOf, cost } from "./providers-config.js";

let openaiProvider, anthropic, gemini, gateway, behest;

before(async () => {
  [openaiProvider, anthropic, gemini] = await Promise.all([startFakeProvider(), startFakeAnthropic({ chunkDelayMs: 10 }), startFakeGemini()]);
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
  const user = `org_anth:${prefix}_${randomUUID().slice(0, 8)}`;
  const bundle = await behest.auth.mint({ user_id: user, ...(tier ? { tier } : {}) });
  return { user, ...bundle };
}

/** The Anthropic SDK as an app would make it for a Behest token: `auth` is apiKey or authToken. */
function sdkFor(token, { auth = "apiKey", ...extra } = {}) {
  return new Anthropic({ [auth]: token, baseURL: `${gateway.url}/anthropic`, maxRetries: 0, ...extra });
}

/** The fake Anthropic's requests that arrived while fn ran, and fn's result. */
async function anthropicRequestsDuring(fn) {
  const from = anthropic.requests.length;
  const result = await fn();
  return { seen: anthropic.requests.slice(from), result };
}

/** assertProviderSaw checks one provider request: the provider's key, the gateway's identity, no token. */
function assertProviderSaw(rec, { user, sessionId, token, tier = "1" }) {
  assert.equal(rec.headers["x-api-key"], PROVIDER_KEY);
  assert.deepEqual(gatewayHeaders(rec), { tenant: TENANT, project: PROJECT, user, tier, session: sessionId, authorization: undefined });
  assert.ok(!JSON.stringify(rec.headers).includes(token), "the provider saw the client's token");
  assert.ok(rec.headers["anthropic-version"], "the SDK's anthropic-version was not passed on");
}

const messages = [{ role: "user", content: "Say hello." }];
const MODEL = "claude-haiku-4-5";

describe("the Anthropic SDK with a gateway token", () => {
  test("apiKey: a message comes back as the provider sent it; the provider got its own key, not the token", async () => {
    const { user, token, sessionId } = await mintFor("msg");
    let raw;
    const { seen, result: msg } = await anthropicRequestsDuring(async () => {
      // The SDK sends apiKey as Authorization: Bearer (older ones sent x-api-key): see what it sent.
      const client = sdkFor(token, { fetch: (url, init) => { raw = new Headers(init.headers); return fetch(url, init); } });
      return client.messages.create({ model: MODEL, max_tokens: 200, messages });
    });
    assert.equal(raw.get("authorization"), `Bearer ${token}`);
    assert.equal(raw.get("x-api-key"), null);
    assert.equal(msg.type, "message");
    assert.equal(msg.model, ANTHROPIC_MODEL);
    assert.deepEqual(msg.content, [{ type: "text", text: REPLY }]);
    assert.equal(msg.stop_reason, "end_turn");
    assert.deepEqual(msg.usage, ANTHROPIC_USAGE);

    assert.equal(seen.length, 1);
    assert.equal(seen[0].path, "/v1/messages", "handle_path should strip /anthropic");
    assertProviderSaw(seen[0], { user, sessionId, token });
    assert.equal(seen[0].body.max_tokens, 200, "the client's own max_tokens within the tier's cap was changed");
    assert.equal(seen[0].body.model, MODEL);
  });

  test("authToken: a streamed message arrives delta by delta, and its final message is the provider's", async () => {
    const { user, token, sessionId } = await mintFor("stream");
    const deltas = [];
    let raw;
    const { seen, result: final } = await anthropicRequestsDuring(async () => {
      const client = sdkFor(token, { auth: "authToken", fetch: (url, init) => { raw = new Headers(init.headers); return fetch(url, init); } });
      const stream = client.messages.stream({ model: MODEL, max_tokens: 200, messages });
      stream.on("text", (t) => deltas.push(t));
      return stream.finalMessage();
    });
    assert.equal(raw.get("authorization"), `Bearer ${token}`, "authToken is sent as a Bearer token too");
    assert.deepEqual(deltas, REPLY_PIECES);
    assert.deepEqual(final.content, [{ type: "text", text: REPLY }]);
    assert.equal(final.stop_reason, "end_turn");
    assert.deepEqual(final.usage, { ...ANTHROPIC_USAGE });
    assert.equal(seen.length, 1);
    assert.equal(seen[0].body.stream, true);
    assertProviderSaw(seen[0], { user, sessionId, token });
  });

  test("a stream is not buffered: its first delta arrives while the provider holds back the rest", { timeout: 10_000 }, async () => {
    const { token } = await mintFor("unbuffered");
    const release = holdStream(anthropic);
    try {
      const stream = sdkFor(token).messages.stream({ model: MODEL, max_tokens: 200, messages });
      const first = await new Promise((resolve, reject) => { stream.once("text", resolve); stream.once("error", reject); });
      assert.equal(first, REPLY_PIECES[0]);
      release();
      assert.equal((await stream.finalMessage()).content[0].text, REPLY);
    } finally {
      release();
    }
  });

  test("stream: true gives the raw events in the Messages API's order", async () => {
    const { token } = await mintFor("events");
    const stream = await sdkFor(token).messages.create({ model: MODEL, max_tokens: 200, messages, stream: true });
    const types = [];
    for await (const ev of stream) types.push(ev.type);
    assert.deepEqual(types, [
      "message_start", "content_block_start",
      ...REPLY_PIECES.map(() => "content_block_delta"),
      "content_block_stop", "message_delta", "message_stop",
    ]);
  });

  test("x-api-key, Anthropic's own header (older SDKs, curl), is a token header too", async () => {
    const { user, token, sessionId } = await mintFor("xapikey");
    const { seen, result: res } = await anthropicRequestsDuring(() => fetch(`${gateway.url}/anthropic/v1/messages`, {
      method: "POST",
      headers: { "x-api-key": token, "anthropic-version": "2023-06-01", "content-type": "application/json" },
      body: JSON.stringify({ model: MODEL, max_tokens: 50, messages }),
    }));
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal((await res.json()).content[0].text, REPLY);
    assertProviderSaw(seen[0], { user, sessionId, token });
  });

  test("Authorization and x-api-key that differ are refused (400 invalid_request_error), never passed on", async () => {
    const a = await mintFor("two");
    const b = await mintFor("two");
    const from = anthropic.requests.length;
    const err = await sdkFor(a.token, { defaultHeaders: { "x-api-key": b.token } }).messages.create({ model: MODEL, max_tokens: 10, messages }).catch((e) => e);
    assert.ok(err instanceof Anthropic.BadRequestError, `got ${err?.constructor?.name}: ${err?.message}`);
    assert.equal(err.error?.error?.type, "invalid_request_error", JSON.stringify(err.error));
    assert.equal(anthropic.requests.length, from, "an ambiguous request reached the provider");
  });

  test("without max_tokens the gateway sets the tier's cap on the request", async () => {
    const { token } = await mintFor("nomax");
    const { seen, result: res } = await anthropicRequestsDuring(() => fetch(`${gateway.url}/anthropic/v1/messages`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "anthropic-version": "2023-06-01", "content-type": "application/json" },
      body: JSON.stringify({ model: MODEL, messages }),
    }));
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(seen[0].body.max_tokens, MAX_OUTPUT);
  });

  test("messages.countTokens is passed on and is free", async () => {
    const { user, token, sessionId } = await mintFor("count");
    const { seen, result } = await anthropicRequestsDuring(() => sdkFor(token).messages.countTokens({ model: MODEL, messages }));
    assert.deepEqual(result, { input_tokens: ANTHROPIC_COUNT });
    assert.equal(seen[0].path, "/v1/messages/count_tokens");
    assertProviderSaw(seen[0], { user, sessionId, token });
    // Free: no tokens and no cost for it; the user's usage is a message's alone once one is sent.
    await sdkFor(token).messages.create({ model: MODEL, max_tokens: 200, messages });
    const rows = await usageOf(behest, user, (rs) => rs.some((r) => r.key === MODEL));
    const sum = (f) => rows.reduce((n, r) => n + r[f], 0);
    const { output_tokens, ...input } = ANTHROPIC_USAGE;
    assert.equal(sum("input_tokens"), Object.values(input).reduce((a, b) => a + b), JSON.stringify(rows));
    assert.equal(sum("output_tokens"), output_tokens, JSON.stringify(rows));
    assert.ok(Math.abs(sum("cost_usd") - rows.find((r) => r.key === MODEL).cost_usd) < 1e-12, JSON.stringify(rows));
  });

  test("usage by model: the provider's token numbers, cache reads and writes at the cached prices", async () => {
    const { user, token } = await mintFor("usage");
    const client = sdkFor(token);
    await client.messages.create({ model: MODEL, max_tokens: 200, messages });
    await client.messages.stream({ model: MODEL, max_tokens: 200, messages }).finalMessage();

    // One row, under the model asked for (the price line's), though the provider names its snapshot.
    const rows = await usageOf(behest, user, (rs) => rs.reduce((n, r) => n + r.requests, 0) >= 2);
    assert.equal(rows.length, 1, JSON.stringify(rows));
    const [row] = rows;
    assert.equal(row.key, MODEL, JSON.stringify(row));
    assert.equal(row.model, MODEL, JSON.stringify(row));
    assert.equal(row.requests, 2);
    const { input_tokens, cache_creation_input_tokens, cache_read_input_tokens, output_tokens } = ANTHROPIC_USAGE;
    assert.equal(row.input_tokens, 2 * (input_tokens + cache_creation_input_tokens + cache_read_input_tokens), JSON.stringify(row));
    assert.equal(row.output_tokens, 2 * output_tokens, JSON.stringify(row));
    // The cached part of the input is what was read from the cache (writes are charged, not read).
    assert.equal(row.cached_input_tokens, 2 * cache_read_input_tokens, JSON.stringify(row));
    // claude-haiku-4-5: 1.00 in, 5.00 out, 0.10 cache read, 1.25 cache write per 1M tokens.
    const want = 2 * cost({ input: input_tokens, cacheWrite: cache_creation_input_tokens, cached: cache_read_input_tokens, output: output_tokens }, providerPrices.haiku);
    assert.ok(Math.abs(row.cost_usd - want) < 1e-9, `cost_usd ${row.cost_usd}, want ${want}`);
  });

  test("a stream whose message_delta repeats the input counts (running totals) is not counted twice", async () => {
    const { user, token } = await mintFor("cumulative");
    anthropic.deltaUsage = "cumulative";
    try {
      const final = await sdkFor(token).messages.stream({ model: MODEL, max_tokens: 200, messages }).finalMessage();
      assert.deepEqual(final.usage, { ...ANTHROPIC_USAGE });
    } finally {
      anthropic.deltaUsage = "output";
    }
    const [row] = await usageOf(behest, user, (rs) => rs.some((r) => r.requests >= 1));
    const { input_tokens, cache_creation_input_tokens, cache_read_input_tokens, output_tokens } = ANTHROPIC_USAGE;
    assert.equal(row.input_tokens, input_tokens + cache_creation_input_tokens + cache_read_input_tokens, JSON.stringify(row));
    assert.equal(row.output_tokens, output_tokens, JSON.stringify(row));
    const want = cost({ input: input_tokens, cacheWrite: cache_creation_input_tokens, cached: cache_read_input_tokens, output: output_tokens }, providerPrices.haiku);
    assert.ok(Math.abs(row.cost_usd - want) < 1e-9, `cost_usd ${row.cost_usd}, want ${want}`);
  });
});

describe("the gateway's errors are the Anthropic SDK's own error classes", () => {
  /** The fetch calls an SDK makes (every attempt, retries included). */
  function countingFetch() {
    const f = (...args) => { f.calls++; return fetch(...args); };
    f.calls = 0;
    return f;
  }

  /** assertAnthropicError checks the error class, status and the body's shape. */
  function assertAnthropicError(err, Class, status, type, code) {
    assert.ok(err instanceof Class, `want ${Class.name}, got ${err?.constructor?.name}: ${err?.message}`);
    assert.equal(err.status, status);
    assert.equal(err.error?.type, "error", JSON.stringify(err.error));
    assert.equal(err.error?.error?.type, type, JSON.stringify(err.error));
    assert.equal(typeof err.error.error.message, "string");
    if (code) assert.match(err.error.error.message, new RegExp(code), JSON.stringify(err.error));
  }

  test("a bad token is AuthenticationError (authentication_error), for apiKey and authToken", async () => {
    const { token } = await mintFor("bad");
    const [h, p, s] = token.split(".");
    const flipped = `${h}.${p}.${s.slice(0, -4)}${s.slice(-4) === "AAAA" ? "BBBB" : "AAAA"}`;
    const from = anthropic.requests.length;
    for (const auth of ["apiKey", "authToken"]) {
      for (const bad of ["not-a-jwt", flipped]) {
        const err = await sdkFor(bad, { auth }).messages.create({ model: MODEL, max_tokens: 10, messages }).catch((e) => e);
        assertAnthropicError(err, Anthropic.AuthenticationError, 401, "authentication_error");
        assert.match(err.headers.get("www-authenticate") ?? "", /^Bearer error="invalid_token"/);
      }
    }
    assert.equal(anthropic.requests.length, from, "a refused request reached the provider");
  });

  test("a model outside the tier's models is PermissionDeniedError naming model_not_allowed", async () => {
    const { token } = await mintFor("opus");
    const from = anthropic.requests.length;
    const err = await sdkFor(token).messages.create({ model: "claude-opus-4-1", max_tokens: 10, messages }).catch((e) => e);
    assertAnthropicError(err, Anthropic.PermissionDeniedError, 403, "permission_error", "model_not_allowed");
    assert.match(err.error.error.message, /claude-opus-4-1/, "the message should name the model");
    assert.equal(anthropic.requests.length, from, "a refused request reached the provider");
  });

  test("max_tokens over the tier's max_output_tokens is BadRequestError naming max_tokens_exceeded", async () => {
    const { token } = await mintFor("toolong");
    const from = anthropic.requests.length;
    const err = await sdkFor(token).messages.create({ model: MODEL, max_tokens: MAX_OUTPUT + 1, messages }).catch((e) => e);
    assertAnthropicError(err, Anthropic.BadRequestError, 400, "invalid_request_error", "max_tokens_exceeded");
    assert.equal(anthropic.requests.length, from, "a refused request reached the provider");
  });

  test("a used-up quota is RateLimitError (rate_limit_error), and maxRetries: 2 does not retry it", async () => {
    const { token } = await mintFor("broke", "broke");
    const f = countingFetch();
    const from = anthropic.requests.length;
    const err = await sdkFor(token, { maxRetries: 2, fetch: f }).messages.create({ model: MODEL, max_tokens: 50, messages }).catch((e) => e);
    assertAnthropicError(err, Anthropic.RateLimitError, 429, "rate_limit_error", "insufficient_quota");
    assert.equal(err.headers.get("x-should-retry"), "false");
    assert.ok(Number(err.headers.get("retry-after")) >= 1, "Retry-After");
    assert.equal(f.calls, 1, "the SDK retried a quota that waiting cannot renew");
    assert.equal(anthropic.requests.length, from, "a refused request reached the provider");
  });

  // Token counts are free, but the contract's Model policy holds them to the allowlist too.
  test("count_tokens for a model outside the tier's models is PermissionDeniedError too", async () => {
    const { token } = await mintFor("countopus");
    const from = anthropic.requests.length;
    const err = await sdkFor(token).messages.countTokens({ model: "claude-opus-4-1", messages }).catch((e) => e);
    assertAnthropicError(err, Anthropic.PermissionDeniedError, 403, "permission_error", "model_not_allowed");
    assert.equal(anthropic.requests.length, from, "a refused request reached the provider");
  });

  // An Anthropic endpoint the gateway does not serve (message batches cannot be metered as they
  // run) is refused in Anthropic's own shape, {"type":"error","error":{"type":"permission_error",…}}.
  test("an endpoint the gateway does not serve (batches) is PermissionDeniedError in Anthropic's shape", async () => {
    const { token } = await mintFor("batches");
    const from = anthropic.requests.length;
    const err = await sdkFor(token).messages.batches.create({
      requests: [{ custom_id: "one", params: { model: MODEL, max_tokens: 10, messages } }],
    }).catch((e) => e);
    assert.equal(anthropic.requests.length, from, "a refused request reached the provider");
    assertAnthropicError(err, Anthropic.PermissionDeniedError, 403, "permission_error", "permission_denied");
  });

  test("content by reference reserves max_input_tokens: over a small budget, where the same prompt in the body is not", async () => {
    // Tier tight: 0.01 USD a day. A short prompt fits; an image or a file by reference reserves
    // 128000 input tokens (0.128 USD at haiku's price), which the body does not bound.
    const { token } = await mintFor("byref", "tight");
    const client = sdkFor(token, { maxRetries: 2 });
    const ask = (source) => client.messages.create({
      model: MODEL, max_tokens: 50,
      messages: [{ role: "user", content: [{ type: source.type === "file" ? "document" : "image", source }, { type: "text", text: "What is this?" }] }],
    });
    const inline = await ask({ type: "base64", media_type: "image/png", data: "iVBORw0KGgo=" });
    assert.equal(inline.content[0].text, REPLY);
    const from = anthropic.requests.length;
    for (const source of [{ type: "url", url: "https://example.com/cat.png" }, { type: "file", file_id: "file_011CNha8iCJcU1wXNR6q4V8w" }]) {
      const err = await ask(source).catch((e) => e);
      assertAnthropicError(err, Anthropic.RateLimitError, 429, "rate_limit_error", "insufficient_quota");
      assert.equal(err.headers.get("x-should-retry"), "false", source.type);
    }
    assert.equal(anthropic.requests.length, from, "a refused request reached the provider");
  });

  test("a per-minute limit is RateLimitError with Retry-After and retry-after-ms, streamed or not", async () => {
    const { token } = await mintFor("rpm", "slow");
    const client = sdkFor(token);
    await client.messages.create({ model: MODEL, max_tokens: 50, messages });
    for (const stream of [false, true]) {
      const err = await client.messages.create({ model: MODEL, max_tokens: 50, messages, stream }).catch((e) => e);
      assertAnthropicError(err, Anthropic.RateLimitError, 429, "rate_limit_error", "rate_limit_exceeded");
      assert.ok(Number(err.headers.get("retry-after")) >= 1, "Retry-After");
      assert.ok(Number(err.headers.get("retry-after-ms")) > 0, "retry-after-ms");
      assert.notEqual(err.headers.get("x-should-retry"), "false", "waiting helps here");
    }
  });
});
