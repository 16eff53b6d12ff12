// End-to-end: the official openai SDK (Node) through a real Caddy with the behest plugin, to a fake
// provider. Option A mints with this package's client; Option B signs a Clerk-shaped token with jose.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import OpenAI from "openai";
import { SignJWT, exportJWK, generateKeyPair } from "jose";
import { Behest, BehestError, createTokenProvider } from "@behest/client-ts";
import { startFakeProvider, startGateway, listen, gatewayHeaders, REPLY, TENANT, PROJECT, PROVIDER_KEY } from "./harness.js";

const APP_ORIGIN = "http://127.0.0.1:3000"; // the azp of the Clerk-shaped tokens

let provider, gateway, issuer, behest;
const clerk = { kid: "clerk-key-1" };

before(async () => {
  provider = await startFakeProvider({ chunkDelayMs: 10 });

  // A trusted issuer (a stand-in for Clerk) serving its JWKS.
  const { publicKey, privateKey } = await generateKeyPair("RS256", { extractable: true });
  clerk.privateKey = privateKey;
  const otherKeys = await generateKeyPair("RS256");
  clerk.otherPrivateKey = otherKeys.privateKey;
  const jwk = { ...(await exportJWK(publicKey)), kid: clerk.kid, alg: "RS256", use: "sig" };
  clerk.jwksFetches = 0;
  issuer = await listen((req, res) => {
    if (req.url !== "/.well-known/jwks.json") { res.writeHead(404); res.end(); return; }
    clerk.jwksFetches++;
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify({ keys: [jwk] }));
  });

  gateway = await startGateway({
    providerPort: provider.port,
    corsOrigins: [APP_ORIGIN],
    trust: [{ issuer: issuer.url, jwksURL: `${issuer.url}/.well-known/jwks.json`, authorizedParties: [APP_ORIGIN] }],
    tiers: { 1: 1000, 2: 2, broke: "cost_per_day 0.000001\n\t\t\t\tmax_output_tokens 100" },
  });
  behest = new Behest({ apiKey: gateway.apiKey, baseURL: gateway.url });
});

after(async () => {
  await gateway?.stop();
  await provider?.close();
  await issuer?.close();
});

/** The OpenAI SDK as an app would make it for a Behest token. */
function sdkFor(token, sessionId, extra = {}) {
  return new OpenAI({
    apiKey: token,
    baseURL: `${gateway.url}/v1`,
    defaultHeaders: sessionId ? { "X-Session-Id": sessionId } : {},
    maxRetries: 0,
    ...extra,
  });
}

const messages = [{ role: "user", content: "Say hello." }];

/** The provider requests that arrived while fn ran. */
async function providerRequestsDuring(fn) {
  const before = provider.requests.length;
  await fn();
  return provider.requests.slice(before);
}

/** clerkToken signs a token shaped like a Clerk JWT template's. */
function clerkToken({ uid = `user_${randomUUID().slice(0, 8)}`, tier = null, key = clerk.privateKey, kid = clerk.kid, exp = "10m", extra = {} } = {}) {
  return new SignJWT({ azp: APP_ORIGIN, tid: TENANT, pid: PROJECT, uid, tier, email: `${uid}@example.com`, ...extra })
    .setProtectedHeader({ alg: "RS256", kid, typ: "JWT" })
    .setIssuer(issuer.url)
    .setSubject(uid)
    .setIssuedAt()
    .setNotBefore("0s")
    .setExpirationTime(exp)
    .setJti(randomUUID())
    .sign(key);
}

describe("Option A: minted tokens with the openai SDK", () => {
  test("a non-streaming chat completion reaches the provider with the gateway's headers, not the token", async () => {
    const user = "org_9:user_2abc";
    const bundle = await behest.auth.mint({ user_id: user, ttl: 600 });
    assert.match(bundle.token, /^eyJ[\w-]+\.[\w-]+\.[\w-]+$/);
    assert.equal(bundle.ttl, 600);
    assert.match(bundle.sessionId, /^sess_/);
    const now = Date.now() / 1000;
    assert.ok(bundle.expiresAt > now + 590 && bundle.expiresAt < now + 610, `expiresAt ${bundle.expiresAt}`);

    const openai = sdkFor(bundle.token, bundle.sessionId);
    let completion;
    const seen = await providerRequestsDuring(async () => {
      completion = await openai.chat.completions.create({ model: "gpt-4o-mini", messages });
    });
    assert.equal(completion.choices[0].message.content, REPLY);
    assert.equal(completion.usage.total_tokens, 17);
    assert.equal(seen.length, 1);
    assert.deepEqual(gatewayHeaders(seen[0]), {
      tenant: TENANT, project: PROJECT, user, tier: "1", session: bundle.sessionId, authorization: `Bearer ${PROVIDER_KEY}`,
    });
    assert.ok(!JSON.stringify(seen[0].headers).includes(bundle.token), "the provider saw the client's token");
    assert.equal(seen[0].body.model, "gpt-4o-mini");
  });

  test("a streamed chat completion arrives chunk by chunk; the gateway asks the provider for usage", async () => {
    const user = "org_9:user_stream";
    const bundle = await behest.auth.mint({ user_id: user });
    const openai = sdkFor(bundle.token, bundle.sessionId);
    const pieces = [];
    const seen = await providerRequestsDuring(async () => {
      const stream = await openai.chat.completions.create({ model: "gpt-4o-mini", messages, stream: true });
      for await (const chunk of stream) {
        const piece = chunk.choices[0]?.delta?.content;
        if (piece) pieces.push(piece);
      }
    });
    assert.equal(pieces.join(""), REPLY);
    assert.ok(pieces.length > 1, "the answer came in one piece");
    assert.equal(seen.length, 1);
    assert.deepEqual(seen[0].body.stream_options, { include_usage: true });
    const h = gatewayHeaders(seen[0]);
    assert.equal(h.user, user);
    assert.equal(h.session, bundle.sessionId);
    assert.equal(h.tenant, TENANT);
    assert.equal(h.project, PROJECT);
    assert.equal(h.authorization, `Bearer ${PROVIDER_KEY}`);
  });

  test("the token provider as the SDK's apiKey: a refreshed token is used on the next request", async () => {
    const clock = { ms: Date.now() };
    let mints = 0;
    const tokens = createTokenProvider(() => { mints++; return behest.auth.mint({ user_id: "user_refresh", ttl: 120 }); }, { now: () => clock.ms });
    const first = await tokens.get();
    const openai = sdkFor(tokens.getToken, first.sessionId);
    const seen = await providerRequestsDuring(async () => {
      await openai.chat.completions.create({ model: "gpt-4o-mini", messages });
      clock.ms += 30_000; // still fresh: 120 s token, refreshed 60 s before expiry
      await openai.chat.completions.create({ model: "gpt-4o-mini", messages });
      clock.ms += 31_000; // now due
      await openai.chat.completions.create({ model: "gpt-4o-mini", messages });
    });
    assert.equal(mints, 2);
    const second = tokens.peek();
    assert.notEqual(second.sessionId, first.sessionId);
    // A minted token's session is its own sid, whatever X-Session-Id still says.
    assert.deepEqual(seen.map((r) => gatewayHeaders(r).session), [first.sessionId, first.sessionId, second.sessionId]);
  });

  test("X-Behest-* headers a client sends are dropped", async () => {
    const bundle = await behest.auth.mint({ user_id: "user_honest" });
    const openai = sdkFor(bundle.token, bundle.sessionId, {
      defaultHeaders: { "X-Session-Id": bundle.sessionId, "X-Behest-User-Id": "mallory", "X-Behest-Tenant-Id": "t_other", "X-Behest-Tier": "99" },
    });
    const seen = await providerRequestsDuring(() => openai.chat.completions.create({ model: "gpt-4o-mini", messages }));
    const h = gatewayHeaders(seen[0]);
    assert.equal(h.user, "user_honest");
    assert.equal(h.tenant, TENANT);
    assert.equal(h.tier, "1");
  });

  test("a 429 is the SDK's RateLimitError (tier 2: 2 requests per minute)", async () => {
    const bundle = await behest.auth.mint({ user_id: `user_rl_${randomUUID().slice(0, 8)}`, tier: 2 });
    const openai = sdkFor(bundle.token, bundle.sessionId);
    for (let i = 0; i < 2; i++) {
      const { data, response } = await openai.chat.completions.create({ model: "gpt-4o-mini", messages }).withResponse();
      assert.equal(data.choices[0].message.content, REPLY);
      assert.equal(response.headers.get("x-ratelimit-limit-requests"), "2");
      assert.equal(response.headers.get("x-ratelimit-remaining-requests"), String(1 - i));
    }
    const before = provider.requests.length;
    const err = await openai.chat.completions.create({ model: "gpt-4o-mini", messages }).catch((e) => e);
    assert.ok(err instanceof OpenAI.RateLimitError, `got ${err?.constructor?.name}: ${err?.message}`);
    assert.equal(err.status, 429);
    assert.equal(err.code, "rate_limit_exceeded");
    assert.ok(Number(err.headers.get("retry-after")) >= 1, "Retry-After");
    assert.ok(Number(err.headers.get("retry-after-ms")) > 0, "retry-after-ms");
    assert.equal(err.headers.get("x-ratelimit-remaining-requests"), "0");
    assert.equal(provider.requests.length, before, "a refused request reached the provider");
  });

  test("a used-up quota is RateLimitError with code insufficient_quota, and the SDK does not retry it", async () => {
    const bundle = await behest.auth.mint({ user_id: `user_broke_${randomUUID().slice(0, 8)}`, tier: "broke" });
    let calls = 0;
    const countingFetch = (...args) => { calls++; return fetch(...args); };
    // The SDK's default is 2 retries; x-should-retry: false must stop them.
    const openai = sdkFor(bundle.token, bundle.sessionId, { maxRetries: 2, fetch: countingFetch });
    const err = await openai.chat.completions.create({ model: "gpt-4o-mini", messages }).catch((e) => e);
    assert.ok(err instanceof OpenAI.RateLimitError, `got ${err?.constructor?.name}: ${err?.message}`);
    assert.equal(err.code, "insufficient_quota");
    assert.equal(err.headers.get("x-should-retry"), "false");
    assert.equal(calls, 1, "the SDK retried a quota that waiting cannot renew");
  });

  test("a bad token is the SDK's AuthenticationError", async () => {
    const bundle = await behest.auth.mint({ user_id: "user_tamper" });
    const [h, p, s] = bundle.token.split(".");
    const flipped = `${h}.${p}.${s.slice(0, -4)}${s.slice(-4) === "AAAA" ? "BBBB" : "AAAA"}`;
    for (const token of ["not-a-jwt", flipped]) {
      const err = await sdkFor(token).chat.completions.create({ model: "gpt-4o-mini", messages }).catch((e) => e);
      assert.ok(err instanceof OpenAI.AuthenticationError, `${token.slice(0, 12)}…: got ${err?.constructor?.name}: ${err?.message}`);
      assert.equal(err.status, 401);
      assert.equal(err.code, "invalid_api_key");
      assert.match(err.headers.get("www-authenticate") ?? "", /^Bearer error="invalid_token"/);
    }
  });

  test("revoke: a revoked session's token is refused with AuthenticationError", async () => {
    const bundle = await behest.auth.mint({ user_id: "user_revoked" });
    const openai = sdkFor(bundle.token, bundle.sessionId);
    await openai.chat.completions.create({ model: "gpt-4o-mini", messages });
    await new Promise((r) => setTimeout(r, 1100)); // iat has whole seconds: same-second tokens are refused too
    const res = await behest.auth.revoke({ session_id: bundle.sessionId });
    assert.equal(res.revoked, true);
    const err = await openai.chat.completions.create({ model: "gpt-4o-mini", messages }).catch((e) => e);
    assert.ok(err instanceof OpenAI.AuthenticationError, `got ${err?.constructor?.name}: ${err?.message}`);

    // The user's next token works.
    const next = await behest.auth.mint({ user_id: "user_revoked" });
    const ok = await sdkFor(next.token, next.sessionId).chat.completions.create({ model: "gpt-4o-mini", messages });
    assert.equal(ok.choices[0].message.content, REPLY);
  });

  test("usage.query reports the metered requests and tokens", async () => {
    const user = `org_usage:user_${randomUUID().slice(0, 8)}`;
    const bundle = await behest.auth.mint({ user_id: user });
    const openai = sdkFor(bundle.token, bundle.sessionId);
    await openai.chat.completions.create({ model: "gpt-4o-mini", messages });
    const stream = await openai.chat.completions.create({ model: "gpt-4o-mini", messages, stream: true });
    for await (const _ of stream) { /* drain */ }

    // Metering settles as the response ends; give the store a moment.
    let row;
    for (let i = 0; i < 30 && !(row?.requests >= 2); i++) {
      const list = await behest.usage.query({ group_by: "user", user_id: user });
      assert.equal(list.object, "list");
      assert.equal(list.group_by, "user");
      row = list.data.find((r) => r.key === user);
      if (!(row?.requests >= 2)) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(row, "no usage row for the user");
    assert.equal(row.requests, 2);
    assert.equal(row.input_tokens, 22);
    assert.equal(row.output_tokens, 12);

    const byOrg = await behest.usage.query({ group_by: "org", from: new Date(), to: new Date() });
    assert.ok(byOrg.data.some((r) => r.key === "org_usage"), JSON.stringify(byOrg));
  });
});

describe("Option A: the client's errors from the real gateway", () => {
  test("a wrong project key is BehestError 401 invalid_api_key, without the key in it", async () => {
    const wrong = "bk_wrong_key_1234567890";
    const err = await new Behest({ apiKey: wrong, baseURL: `${gateway.url}/v1/` }).auth.mint({ user_id: "u" }).catch((e) => e);
    assert.ok(err instanceof BehestError, String(err));
    assert.equal(err.status, 401);
    assert.equal(err.code, "invalid_api_key");
    assert.ok(!err.message.includes(wrong));
  });

  test("a ttl out of range is 400 naming ttl", async () => {
    const err = await behest.auth.mint({ user_id: "u", ttl: 5 }).catch((e) => e);
    assert.ok(err instanceof BehestError, String(err));
    assert.equal(err.status, 400);
    assert.equal(err.param, "ttl");
    assert.equal(err.type, "invalid_request_error");
  });

  test("an unknown tier is 400 naming tier", async () => {
    const err = await behest.auth.mint({ user_id: "u", tier: "platinum" }).catch((e) => e);
    assert.equal(err.status, 400);
    assert.equal(err.param, "tier");
  });

  test("an unknown group_by is 400 naming group_by", async () => {
    const err = await behest.usage.query({ group_by: "planet" }).catch((e) => e);
    assert.equal(err.status, 400);
    assert.equal(err.param, "group_by");
  });
});

describe("Option B: a Clerk-shaped token from a trusted issuer", () => {
  test("the SDK call works with it; uid, default tier and X-Session-Id reach the provider", async () => {
    const uid = "user_clerk_1";
    const token = await clerkToken({ uid, tier: null });
    const chatId = `chat_${randomUUID().slice(0, 8)}`;
    const openai = sdkFor(token, chatId);
    let completion;
    const seen = await providerRequestsDuring(async () => {
      completion = await openai.chat.completions.create({ model: "gpt-4o-mini", messages });
    });
    assert.equal(completion.choices[0].message.content, REPLY);
    assert.deepEqual(gatewayHeaders(seen[0]), {
      tenant: TENANT, project: PROJECT, user: uid, tier: "1", session: chatId, authorization: `Bearer ${PROVIDER_KEY}`,
    });
    assert.ok(clerk.jwksFetches >= 1, "the gateway never fetched the JWKS");
  });

  test("a numeric tier claim is honoured, and streaming works", async () => {
    const token = await clerkToken({ uid: "user_clerk_2", tier: 2 });
    const openai = sdkFor(token, "chat_2");
    const pieces = [];
    const seen = await providerRequestsDuring(async () => {
      const stream = await openai.chat.completions.create({ model: "gpt-4o-mini", messages, stream: true });
      for await (const chunk of stream) pieces.push(chunk.choices[0]?.delta?.content ?? "");
    });
    assert.equal(pieces.join(""), REPLY);
    assert.equal(gatewayHeaders(seen[0]).tier, "2");
  });

  test("a token signed by a key the issuer does not serve is AuthenticationError", async () => {
    const token = await clerkToken({ key: clerk.otherPrivateKey });
    const err = await sdkFor(token, "chat_x").chat.completions.create({ model: "gpt-4o-mini", messages }).catch((e) => e);
    assert.ok(err instanceof OpenAI.AuthenticationError, `got ${err?.constructor?.name}: ${err?.message}`);
  });

  test("an expired token is AuthenticationError", async () => {
    const token = await clerkToken({ exp: Math.floor(Date.now() / 1000) - 120 });
    const err = await sdkFor(token, "chat_y").chat.completions.create({ model: "gpt-4o-mini", messages }).catch((e) => e);
    assert.ok(err instanceof OpenAI.AuthenticationError, `got ${err?.constructor?.name}: ${err?.message}`);
  });

  test("a token for another project is PermissionDeniedError", async () => {
    const token = await clerkToken({ extra: { pid: "p_other" } });
    const err = await sdkFor(token, "chat_z").chat.completions.create({ model: "gpt-4o-mini", messages }).catch((e) => e);
    assert.ok(err instanceof OpenAI.PermissionDeniedError, `got ${err?.constructor?.name}: ${err?.status} ${err?.message}`);
    assert.equal(err.code, "permission_denied");
  });
});
