// End-to-end: identity beyond Clerk, and device attestation. Tokens in the documented shape of
// each identity provider (Clerk, Auth0, Supabase with ES256 and with its legacy HS256 secret,
// Firebase, Cognito, WorkOS), signed here with jose, their keys served by a fake identity-provider
// host (OpenID discovery documents and JWKS), sent with the official openai SDK through one real
// Caddy with the behest plugin to the fake OpenAI provider. Then a fake Firebase App Check for the
// `attest` block. The Go twin is e2e_identity_test.go at the repository root.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import OpenAI, { AuthenticationError } from "openai";
import { SignJWT, UnsecuredJWT, exportJWK, exportSPKI, generateKeyPair } from "jose";
import { Behest } from "@behest/client-ts";
import { startFakeProvider, startGateway, listen, gatewayHeaders, REPLY, TENANT, PROJECT, PROVIDER_KEY } from "./harness.js";

// Supabase's legacy JWT secret, as a project gets it (at least 32 characters).
const SUPABASE_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long";
const AUTH0_API = "https://api.behest.example"; // the Auth0 API's identifier: the access token's audience
const FIREBASE_PROJECT = "my-app";
const APPCHECK_AUDIENCE = "projects/123456789";
const APPCHECK_APP = "1:123456789:web:abc123"; // the App Check token's sub: the Firebase app id

const messages = [{ role: "user", content: "Say hello." }];

let provider, idp, gateway, behest;
const keys = {}; // name -> { alg, kid, privateKey, publicKey, jwk }
const iss = {}; // name -> issuer URL

// --- The fake identity-provider host ----------------------------------------------------------

/**
 * startIDPHost serves several identity providers on one server, each under a path of its own: an
 * OpenID discovery document (at <issuer>/.well-known/openid-configuration) and a JWKS, where each
 * provider really keeps them. A JWKS lists keys by their name in `keys`. It records the path of every request, so a test can
 * tell which documents and key sets the gateway fetched.
 */
async function startIDPHost() {
  const docs = new Map(); // path -> discovery document
  const sets = new Map(); // path -> names of the keys its JWKS lists
  const fetched = [];
  const srv = await listen((req, res) => {
    const p = new URL(req.url, "http://idp").pathname;
    fetched.push(p);
    const body = docs.get(p) ?? (sets.has(p) ? { keys: sets.get(p).map((name) => keys[name].jwk) } : undefined);
    if (!body) { res.writeHead(404, { "Content-Type": "application/json" }); res.end('{"error":"not_found"}'); return; }
    res.writeHead(200, { "Content-Type": "application/json", "Cache-Control": "public, max-age=3600" });
    res.end(JSON.stringify(body));
  });
  return {
    ...srv,
    fetched,
    /** how many requests the gateway made for path */
    count: (p) => fetched.filter((f) => f === p).length,
    /**
     * provider serves the keys named `names` at jwksPath and, with `discovery`, a document at the
     * issuer's discovery path naming `docIssuer` (default: the issuer itself) and the JWKS at
     * `docJWKSPath` (default: jwksPath). Returns the issuer URL.
     */
    provider(issuerPath, jwksPath, { discovery = true, docIssuer, docJWKSPath = jwksPath, algs = ["RS256"] } = {}, ...names) {
      const issuer = srv.url + issuerPath;
      sets.set(jwksPath, names);
      if (discovery) {
        docs.set(`${issuerPath.replace(/\/$/, "")}/.well-known/openid-configuration`, {
          issuer: docIssuer ?? issuer,
          jwks_uri: srv.url + docJWKSPath,
          response_types_supported: ["code", "id_token", "token id_token"],
          subject_types_supported: ["public"],
          id_token_signing_alg_values_supported: algs,
        });
      }
      return issuer;
    },
    /** serve adds a JWKS of the keys named `names` at path, without any document. */
    serve(p, ...names) { sets.set(p, names); },
  };
}

/** keyPair makes a signing key with its public JWK (kid, alg, use) as a JWKS lists it. */
async function keyPair(alg, kid) {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  return { alg, kid, privateKey, publicKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: "sig" } };
}

/** sign makes a JWS of claims with k (iat now and exp an hour away unless claims say). */
function sign(k, claims, header = {}) {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ iat: now, exp: now + 3600, ...claims })
    .setProtectedHeader({ alg: k.alg, typ: "JWT", ...(k.kid ? { kid: k.kid } : {}), ...header })
    .sign(k.privateKey);
}

/** hmac is a key for HS256 with these bytes as the secret. */
const hmac = (secret, kid) => ({ alg: "HS256", kid, privateKey: typeof secret === "string" ? new TextEncoder().encode(secret) : secret });

// --- The gateway ------------------------------------------------------------------------------

before(async () => {
  provider = await startFakeProvider({ chunkDelayMs: 5 });
  idp = await startIDPHost();

  // Each provider where it keeps its keys. Clerk, Auth0 and Supabase publish a discovery document
  // naming <issuer>/.well-known/jwks.json; Firebase's names Google's service-account JWKS on
  // another path; Cognito is served without a document (the default path); WorkOS is configured
  // with its jwks_url.
  iss.clerk = idp.provider("/clerk.example.dev", "/clerk.example.dev/.well-known/jwks.json", {}, "clerk");
  iss.auth0 = idp.provider("/tenant.auth0.com/", "/tenant.auth0.com/.well-known/jwks.json", {}, "auth0");
  iss.supabase = idp.provider("/abcdefgh.supabase.co/auth/v1", "/abcdefgh.supabase.co/auth/v1/.well-known/jwks.json",
    { algs: ["ES256"] }, "supabase");
  iss.legacy = `${idp.url}/legacyref.supabase.co/auth/v1`; // HS256 with the secret: nothing served
  iss.firebase = idp.provider(`/securetoken.google.com/${FIREBASE_PROJECT}`,
    "/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com", {}, "firebase");
  iss.cognito = idp.provider("/cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123",
    "/cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123/.well-known/jwks.json", { discovery: false }, "cognito");
  iss.workos = idp.provider("/user_management/client_01HXYZ", "/sso/jwks/client_01HXYZ", { discovery: false }, "workos");

  // Two issuers whose documents name another issuer: the keys the documents point at must never
  // be fetched, those at the default path are used.
  iss.liar = idp.provider("/liar.example", "/liar.example/.well-known/jwks.json",
    { docIssuer: `${idp.url}/somebody-else.example`, docJWKSPath: "/liar.example/keys-from-the-document", algs: ["ES256"] }, "liarDefault");
  idp.serve("/liar.example/keys-from-the-document", "liarDoc");
  iss.slash = idp.provider("/slash.example", "/slash.example/.well-known/jwks.json",
    { docIssuer: `${idp.url}/slash.example/`, docJWKSPath: "/slash.example/keys-from-the-document", algs: ["ES256"] }, "slashDefault");
  idp.serve("/slash.example/keys-from-the-document", "slashDoc");

  // A fake Firebase App Check: its JWKS, and no discovery document.
  iss.appcheck = `${idp.url}/firebaseappcheck/123456789`;
  idp.serve("/firebaseappcheck/v1/jwks", "appcheck");

  // The keys, made before Caddy starts: the gateway may fetch an issuer's keys as it loads.
  await Promise.all([
    ["clerk", "RS256", "ins_2abcDEF"], ["auth0", "RS256", "auth0-NjVBRjY5MDlC"], ["supabase", "ES256", "supa-ec-1"],
    ["firebase", "RS256", "fb-8f4b2c"], ["cognito", "RS256", "cognito-1"], ["workos", "RS256", "workos-1"],
    // The same kid in each pair: only the JWKS a key is listed in differs.
    ["liarDefault", "ES256", "liar-1"], ["liarDoc", "ES256", "liar-1"],
    ["slashDefault", "ES256", "slash-1"], ["slashDoc", "ES256", "slash-1"],
    ["appcheck", "RS256", "appcheck-key-1"], ["appcheckForeign", "RS256", "appcheck-key-1"],
  ].map(async ([name, alg, kid]) => { keys[name] = await keyPair(alg, kid); }));

  gateway = await startGateway({
    providerPort: provider.port,
    defaultTier: "free",
    tiers: { 1: 1000, 2: 1000, free: 1000, pro: 1000, team: 1000 },
    trust: [
      { issuer: iss.clerk, authorizedParties: ["http://localhost:3000"], lines: ["claim org org_id", "claim tier public_metadata.plan"] },
      { issuer: iss.auth0, lines: [`audience ${AUTH0_API}`, "claim uid sub", "claim org org_id", "claim tier /https:~1~1app.example~1plan"] },
      { issuer: iss.supabase, algorithms: ["ES256"], lines: ["audience authenticated", "claim uid sub", "claim sid session_id", "claim tier app_metadata.plan"] },
      { issuer: iss.legacy, algorithms: [], lines: [`secret ${SUPABASE_SECRET}`, "audience authenticated", "claim uid sub", "claim tier is_anonymous", "tier_map true free", "tier_map false pro"] },
      { issuer: iss.firebase, lines: [`audience ${FIREBASE_PROJECT}`, "claim uid user_id", "claim tier firebase.sign_in_provider", "tier_map anonymous free", "tier_map password pro"] },
      { issuer: iss.cognito, lines: ["claim uid sub", "claim tier cognito:groups", "tier_map teams team", "tier_map premium pro"] },
      { issuer: iss.workos, jwksURL: `${idp.url}/sso/jwks/client_01HXYZ`, lines: ["claim uid sub", "claim org org_id", "claim tier role", "tier_map admin team", "tier_map member pro"] },
      { issuer: iss.liar, algorithms: ["ES256"], lines: ["claim org org_id"] },
      { issuer: iss.slash, algorithms: ["ES256"], lines: ["claim org org_id"] },
    ],
    projectLines: [
      `attest ${iss.appcheck} {`,
      `	jwks_url ${idp.url}/firebaseappcheck/v1/jwks`,
      `	audience ${APPCHECK_AUDIENCE}`,
      "	single_use",
      "	tiers 1",
      "}",
    ],
  });
  behest = new Behest({ apiKey: gateway.apiKey, baseURL: gateway.url });
});

after(async () => {
  await gateway?.stop();
  await provider?.close();
  await idp?.close();
});

/** The OpenAI SDK as an app would make it for an identity provider's token. */
function sdkFor(token, defaultHeaders = {}) {
  return new OpenAI({ apiKey: token, baseURL: `${gateway.url}/v1`, defaultHeaders, maxRetries: 0 });
}

/** chat sends one chat completion with token; it returns the answer and the provider requests it caused. */
async function chat(token, defaultHeaders) {
  const before = provider.requests.length;
  const completion = await sdkFor(token, defaultHeaders).chat.completions.create({ model: "gpt-4o-mini", messages });
  return { completion, seen: provider.requests.slice(before) };
}

/** refused sends a chat completion that must fail; it returns the error and asserts nothing reached the provider. */
async function refused(token, defaultHeaders) {
  const before = provider.requests.length;
  const err = await sdkFor(token, defaultHeaders).chat.completions.create({ model: "gpt-4o-mini", messages }).then(
    (c) => assert.fail(`expected an error, got ${JSON.stringify(c)}`), (e) => e);
  assert.equal(provider.requests.length, before, "a refused request reached the provider");
  return err;
}

/** assertAuthError: the SDK raised AuthenticationError (401) with this code. */
function assertAuthError(err, code, what) {
  assert.ok(err instanceof AuthenticationError, `${what}: ${err?.constructor?.name} ${err?.status} ${err?.message}`);
  assert.equal(err.status, 401, what);
  assert.equal(err.code, code, `${what}: ${err.message}`);
}

/** usageByOrg reads GET /v1/usage?group_by=org with the project API key: org -> requests. */
async function usageByOrg() {
  const res = await fetch(`${gateway.url}/v1/usage?group_by=org`, { headers: { Authorization: `Bearer ${gateway.apiKey}` } });
  assert.equal(res.status, 200, await res.clone().text());
  const body = await res.json();
  assert.equal(body.object, "list");
  assert.equal(body.group_by, "org");
  return Object.fromEntries(body.data.map((r) => [r.key, r.requests]));
}

/** eventually retries fn (which throws while not yet true) for up to 3 s, 50 ms apart. */
async function eventually(fn) {
  const deadline = Date.now() + 3000;
  for (;;) {
    try { return await fn(); } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

const now = () => Math.floor(Date.now() / 1000);

// --- 1. Each provider's token, end to end -----------------------------------------------------

describe("identity providers: each one's token shape maps to the right user, org, tier and session", () => {
  // Each case: the token as the provider issues it, and what the provider must see.
  const cases = [
    ["Clerk: a session token with the active organization and a template's public_metadata", () => sign(keys.clerk, {
      iss: iss.clerk, sub: "user_2abcd", azp: "http://localhost:3000", sid: "sess_2xyz", nbf: now() - 5, jti: randomUUID(),
      org_id: "org_2qrs", org_role: "org:admin", org_slug: "acme", public_metadata: { plan: "pro" },
    }), { user: "user_2abcd", org: "org_2qrs", tier: "pro", session: "sess_2xyz" }],

    ["Auth0: an access token, aud a list, a namespaced claim through a JSON Pointer", () => sign(keys.auth0, {
      iss: iss.auth0, sub: "auth0|64f1c2d3e4", aud: [AUTH0_API, `${iss.auth0}userinfo`], azp: "Xb2kq9client",
      scope: "openid profile email", org_id: "org_aBcDeF", "https://app.example/plan": "team",
    }), { user: "auth0|64f1c2d3e4", org: "org_aBcDeF", tier: "team" }],

    ["Supabase: ES256 from the project's JWKS, app_metadata.plan, session_id", () => sign(keys.supabase, {
      iss: iss.supabase, sub: "7c2a9f0e-1b3d-4e5f-8a9b-0c1d2e3f4a5b", aud: "authenticated", role: "authenticated",
      email: "ada@example.com", phone: "", aal: "aal1", amr: [{ method: "password", timestamp: now() }],
      session_id: "5f1e6d7c-session", is_anonymous: false,
      app_metadata: { provider: "email", providers: ["email"], plan: "pro" }, user_metadata: {},
    }), { user: "7c2a9f0e-1b3d-4e5f-8a9b-0c1d2e3f4a5b", tier: "pro", session: "5f1e6d7c-session" }],

    ["Supabase, the legacy HS256 secret: an anonymous user is free", () => sign(hmac(SUPABASE_SECRET), {
      iss: iss.legacy, sub: "0b8e-anon", aud: "authenticated", role: "authenticated", is_anonymous: true,
      app_metadata: { provider: "anonymous", providers: ["anonymous"] }, session_id: "legacy-s-1",
    }), { user: "0b8e-anon", tier: "free" }],

    ["Supabase, the legacy HS256 secret: a signed-in user is pro", () => sign(hmac(SUPABASE_SECRET), {
      iss: iss.legacy, sub: "1c9f-email", aud: "authenticated", role: "authenticated", is_anonymous: false,
      app_metadata: { provider: "email", providers: ["email"] },
    }), { user: "1c9f-email", tier: "pro" }],

    ["Firebase: the securetoken issuer, aud the project, anonymous sign-in is free", () => sign(keys.firebase, {
      iss: iss.firebase, aud: FIREBASE_PROJECT, auth_time: now(), user_id: "fbUidAnon123", sub: "fbUidAnon123",
      provider_id: "anonymous", firebase: { identities: {}, sign_in_provider: "anonymous" },
    }), { user: "fbUidAnon123", tier: "free" }],

    ["Firebase: a password sign-in is pro", () => sign(keys.firebase, {
      iss: iss.firebase, aud: FIREBASE_PROJECT, auth_time: now(), user_id: "fbUidPw456", sub: "fbUidPw456",
      email: "grace@example.com", email_verified: true,
      firebase: { identities: { email: ["grace@example.com"] }, sign_in_provider: "password" },
    }), { user: "fbUidPw456", tier: "pro" }],

    ["Cognito: an access token, an element of cognito:groups picks the tier", () => sign(keys.cognito, {
      iss: iss.cognito, sub: "a1b2c3d4-cognito", token_use: "access", client_id: "7abcclient", username: "ada",
      scope: "aws.cognito.signin.user.admin", auth_time: now(), jti: randomUUID(), "cognito:groups": ["users", "premium"],
    }), { user: "a1b2c3d4-cognito", tier: "pro" }],

    ["Cognito: the first tier_map line whose value the groups hold wins", () => sign(keys.cognito, {
      iss: iss.cognito, sub: "e5f6-cognito", token_use: "access", client_id: "7abcclient", username: "grace",
      "cognito:groups": ["premium", "teams"],
    }), { user: "e5f6-cognito", tier: "team" }],

    ["WorkOS: an access token with org_id, role and sid", () => sign(keys.workos, {
      iss: iss.workos, sub: "user_01HXYZ", sid: "session_01HXYZ", jti: "01HJTI", org_id: "org_01HABC", role: "admin",
      permissions: ["posts:read", "posts:write"],
    }), { user: "user_01HXYZ", org: "org_01HABC", tier: "team", session: "session_01HXYZ" }],
  ];

  for (const [name, token, want] of cases) {
    test(name, async () => {
      const { completion, seen } = await chat(await token());
      assert.equal(completion.choices[0].message.content, REPLY);
      assert.equal(seen.length, 1);
      assert.deepEqual(gatewayHeaders(seen[0]), {
        tenant: TENANT, project: PROJECT, user: want.user, tier: want.tier, session: want.session,
        authorization: `Bearer ${PROVIDER_KEY}`,
      });
      assert.equal(seen[0].headers["x-behest-org-id"] ?? "", want.org ?? "", "x-behest-org-id");
    });
  }

  test("the keys came from where each provider keeps them", () => {
    // Firebase's document points at Google's service-account JWKS, on another path.
    assert.ok(idp.count(`/securetoken.google.com/${FIREBASE_PROJECT}/.well-known/openid-configuration`) >= 1, idp.fetched.join("\n"));
    assert.ok(idp.count("/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com") >= 1, idp.fetched.join("\n"));
    assert.equal(idp.count(`/securetoken.google.com/${FIREBASE_PROJECT}/.well-known/jwks.json`), 0);
    assert.ok(idp.count("/abcdefgh.supabase.co/auth/v1/.well-known/jwks.json") >= 1);
    // Cognito has no document here: the default path. WorkOS: its configured jwks_url.
    assert.ok(idp.count("/cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123/.well-known/jwks.json") >= 1, idp.fetched.join("\n"));
    assert.ok(idp.count("/sso/jwks/client_01HXYZ") >= 1);
    // With a secret, nothing is fetched for the issuer.
    assert.deepEqual(idp.fetched.filter((p) => p.startsWith("/legacyref.supabase.co/")), []);
  });

  test("usage by org (GET /v1/usage?group_by=org) shows the orgs the org claims named", async () => {
    await eventually(async () => {
      const orgs = await usageByOrg();
      for (const org of ["org_2qrs", "org_aBcDeF", "org_01HABC"]) assert.equal(orgs[org], 1, `${org}: ${JSON.stringify(orgs)}`);
    });
  });
});

// --- 2. Discovery -----------------------------------------------------------------------------

describe("OpenID discovery: a document must name the issuer exactly", () => {
  for (const [name, ours, docKey, docPath] of [
    ["another issuer", "liar", "liarDoc", "/liar.example/keys-from-the-document"],
    ["the issuer with a trailing slash", "slash", "slashDoc", "/slash.example/keys-from-the-document"],
  ]) {
    test(`a document naming ${name} is not used: the default JWKS path is`, async () => {
      const def = keys[`${ours}Default`];
      const { seen } = await chat(await sign(def, { iss: iss[ours], sub: `user_${ours}`, org_id: `org_${ours}` }));
      assert.equal(seen[0].headers["x-behest-user-id"], `user_${ours}`);
      assert.equal(seen[0].headers["x-behest-tier"], "free"); // no tier claim: the default tier
      assert.ok(idp.count(`/${ours}.example/.well-known/jwks.json`) >= 1, idp.fetched.join("\n"));

      // A token signed with the key the document names (same kid) is refused...
      assertAuthError(await refused(await sign(keys[docKey], { iss: iss[ours], sub: `user_${ours}_doc` })), "invalid_api_key", name);
      // ...and that JWKS was never fetched.
      assert.equal(idp.count(docPath), 0, idp.fetched.join("\n"));
    });
  }
});

// --- 3. HMAC ----------------------------------------------------------------------------------

describe("HMAC: only with a secret, and only the secret", () => {
  test("a wrong secret, HS256 to a JWKS issuer (also keyed with its public key), RS256 to the HMAC issuer: all 401", async () => {
    const clerkPEM = await exportSPKI(keys.clerk.publicKey);
    const supaPEM = await exportSPKI(keys.supabase.publicKey);
    const cases = {
      "a wrong secret": await sign(hmac("another-secret-that-is-also-32-bytes-long!"),
        { iss: iss.legacy, sub: "x1", aud: "authenticated", role: "authenticated" }),
      "HS256 with the legacy secret to the Clerk issuer": await sign(hmac(SUPABASE_SECRET, keys.clerk.kid),
        { iss: iss.clerk, sub: "x2" }),
      "HS256 keyed with Clerk's public key (PEM): algorithm confusion": await sign(hmac(clerkPEM, keys.clerk.kid),
        { iss: iss.clerk, sub: "x3" }),
      "HS256 keyed with Clerk's public JWK (JSON): algorithm confusion": await sign(hmac(JSON.stringify(keys.clerk.jwk), keys.clerk.kid),
        { iss: iss.clerk, sub: "x4" }),
      "HS256 keyed with Supabase's ES256 public key (PEM): algorithm confusion": await sign(hmac(supaPEM, keys.supabase.kid),
        { iss: iss.supabase, sub: "x5", aud: "authenticated" }),
      "RS256 to the HMAC issuer": await sign(keys.clerk, { iss: iss.legacy, sub: "x6", aud: "authenticated" }),
      "alg none to the HMAC issuer": new UnsecuredJWT({ iss: iss.legacy, sub: "x7", aud: "authenticated", exp: now() + 600 }).encode(),
    };
    for (const [name, token] of Object.entries(cases)) {
      assertAuthError(await refused(token), "invalid_api_key", name);
    }
    // The right secret still works (the refusals above were not a broken issuer).
    const { seen } = await chat(await sign(hmac(SUPABASE_SECRET), { iss: iss.legacy, sub: "x8", aud: "authenticated", is_anonymous: false }));
    assert.equal(seen[0].headers["x-behest-user-id"], "x8");
    assert.equal(seen[0].headers["x-behest-tier"], "pro");
  });
});

// --- 4. Attestation ---------------------------------------------------------------------------

describe("attestation: tier 1 must send a single-use App Check token", () => {
  /** appCheckToken is an App Check token as Firebase issues it, with claims overridden. */
  const appCheckToken = (claims = {}, key = keys.appcheck) => sign(key, {
    iss: iss.appcheck, sub: APPCHECK_APP, aud: [APPCHECK_AUDIENCE, "projects/my-app"],
    exp: now() + 300, jti: randomUUID(), ...claims,
  });
  const header = (t) => ({ "X-Firebase-AppCheck": t });
  let tier1, tier2;

  before(async () => {
    tier1 = await behest.auth.mint({ user_id: "org_att:user_attest", tier: 1 });
    tier2 = await behest.auth.mint({ user_id: "org_att:user_free_of_it", tier: 2 });
  });

  test("missing, another audience, expired, a foreign key, another issuer, not a token: 401 attestation_required", async () => {
    const cases = {
      missing: undefined,
      "another audience": await appCheckToken({ aud: ["projects/999"] }),
      expired: await appCheckToken({ exp: now() - 300, iat: now() - 3900 }),
      "a foreign key with the service's kid": await appCheckToken({}, keys.appcheckForeign),
      "another issuer": await appCheckToken({ iss: `${idp.url}/firebaseappcheck/999` }),
      "not a token": "garbage",
    };
    for (const [name, att] of Object.entries(cases)) {
      const err = await refused(tier1.token, att === undefined ? {} : header(att));
      assertAuthError(err, "attestation_required", name);
      assert.match(err.message, /attest/i, name);
    }
  });

  test("a valid token is accepted once, its header is not passed on; a second use is 401 attestation_replayed", async () => {
    const att = await appCheckToken();
    const { completion, seen } = await chat(tier1.token, header(att));
    assert.equal(completion.choices[0].message.content, REPLY);
    assert.equal(seen[0].headers["x-behest-user-id"], "org_att:user_attest");
    assert.equal(seen[0].headers["x-behest-tier"], "1");
    assert.equal(seen[0].headers["x-firebase-appcheck"], undefined, "the attestation header reached the provider");
    assert.ok(idp.count("/firebaseappcheck/v1/jwks") >= 1);

    assertAuthError(await refused(tier1.token, header(att)), "attestation_replayed", "the same token again");
    // A fresh token is accepted: only the replay was refused.
    const again = await chat(tier1.token, header(await appCheckToken()));
    assert.equal(again.seen.length, 1);
  });

  test("tier 2 need not attest; a header it sends anyway is not passed on", async () => {
    for (const headers of [{}, header("anything"), header(await appCheckToken())]) {
      const { seen } = await chat(tier2.token, headers);
      assert.equal(seen[0].headers["x-behest-tier"], "2");
      assert.equal(seen[0].headers["x-firebase-appcheck"], undefined, "the attestation header reached the provider");
    }
  });

  test("no request of this file brought the attestation header to the provider", () => {
    assert.ok(provider.requests.length > 0);
    assert.deepEqual(provider.requests.filter((r) => "x-firebase-appcheck" in r.headers), []);
  });
});
