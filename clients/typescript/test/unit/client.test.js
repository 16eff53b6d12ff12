// Unit tests of the Behest client against a local HTTP server that plays the gateway.
import { test, describe, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { inspect } from "node:util";
import { Behest, BehestError, normalizeBaseURL } from "../../dist/index.js";

const KEY = "bk_live_SECRET_0123456789";

/** A fake gateway: records each request, answers with what `reply` says. */
function startServer() {
  const state = { requests: [], reply: (_req, res) => json(res, 200, {}) };
  const server = http.createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      const rec = { method: req.method, url: req.url, headers: req.headers, body };
      state.requests.push(rec);
      state.reply(rec, res);
    });
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => {
      state.url = `http://127.0.0.1:${server.address().port}`;
      state.close = () => new Promise((r) => { server.closeAllConnections(); server.close(r); });
      resolve(state);
    }),
  );
}

function json(res, status, body, headers = {}) {
  res.writeHead(status, { "Content-Type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}

let gw;
before(async () => { gw = await startServer(); });
after(() => gw.close());
beforeEach(() => {
  gw.requests.length = 0;
  gw.reply = (_req, res) => json(res, 200, {});
});

/** withEnv runs fn with process.env changed, then puts it back. */
async function withEnv(vars, fn) {
  const saved = {};
  for (const [k, v] of Object.entries(vars)) {
    saved[k] = process.env[k];
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

const noEnv = { BEHEST_KEY: undefined, BEHEST_BASE_URL: undefined };

describe("auth.mint", () => {
  test("POSTs the body as JSON with the key as a bearer token and returns the bundle", async () => {
    const bundle = { token: "eyJ.a.b", ttl: 600, sessionId: "sess_1", expiresAt: 1764201234 };
    gw.reply = (_req, res) => json(res, 200, bundle);
    const behest = new Behest({ apiKey: KEY, baseURL: gw.url });
    const got = await behest.auth.mint({ user_id: "org_9:user_2abc", tier: 2, ttl: 600 });
    assert.deepEqual(got, bundle);
    assert.equal(gw.requests.length, 1);
    const r = gw.requests[0];
    assert.equal(r.method, "POST");
    assert.equal(r.url, "/v1/auth/mint");
    assert.equal(r.headers.authorization, `Bearer ${KEY}`);
    assert.equal(r.headers["content-type"], "application/json");
    assert.equal(r.headers.accept, "application/json");
    assert.deepEqual(JSON.parse(r.body), { user_id: "org_9:user_2abc", tier: 2, ttl: 600 });
  });

  test("sends only user_id when tier and ttl are left out", async () => {
    const behest = new Behest({ apiKey: KEY, baseURL: gw.url });
    await behest.auth.mint({ user_id: "u1" });
    assert.deepEqual(JSON.parse(gw.requests[0].body), { user_id: "u1" });
  });

  test("refuses a missing user_id without calling the gateway", async () => {
    const behest = new Behest({ apiKey: KEY, baseURL: gw.url });
    await assert.rejects(behest.auth.mint({}), (e) => e instanceof BehestError && e.param === "user_id" && /user_id/.test(e.message));
    assert.equal(gw.requests.length, 0);
  });
});

describe("auth.revoke", () => {
  for (const params of [{ session_id: "sess_1" }, { user_id: "org_9:user_2abc" }]) {
    test(`POSTs ${JSON.stringify(params)} to /v1/auth/revoke`, async () => {
      gw.reply = (_req, res) => json(res, 200, { object: "revocation", revoked: true, ...params, revoked_at: 1764201234 });
      const behest = new Behest({ apiKey: KEY, baseURL: gw.url });
      const got = await behest.auth.revoke(params);
      assert.equal(got.revoked, true);
      const r = gw.requests[0];
      assert.equal(r.method, "POST");
      assert.equal(r.url, "/v1/auth/revoke");
      assert.equal(r.headers.authorization, `Bearer ${KEY}`);
      assert.deepEqual(JSON.parse(r.body), params);
    });
  }
});

describe("usage.query", () => {
  test("GETs /v1/usage with the query, Dates as UTC days, and no body", async () => {
    const list = { object: "list", group_by: "org", from: "2026-01-01", to: "2026-01-31", data: [{ key: "org_9", requests: 2, input_tokens: 10, output_tokens: 5, cost_usd: 0.001 }] };
    gw.reply = (_req, res) => json(res, 200, list);
    const behest = new Behest({ apiKey: KEY, baseURL: gw.url });
    const got = await behest.usage.query({ group_by: "org", from: "2026-01-01", to: new Date(Date.UTC(2026, 0, 31, 23, 0)), user_id: "org_9:u 1" });
    assert.deepEqual(got, list);
    const r = gw.requests[0];
    assert.equal(r.method, "GET");
    const u = new URL(r.url, gw.url);
    assert.equal(u.pathname, "/v1/usage");
    assert.deepEqual(Object.fromEntries(u.searchParams), { group_by: "org", from: "2026-01-01", to: "2026-01-31", user_id: "org_9:u 1" });
    assert.equal(r.headers.authorization, `Bearer ${KEY}`);
    assert.equal(r.headers["content-type"], undefined);
    assert.equal(r.body, "");
  });

  test("leaves out the parameters not given", async () => {
    const behest = new Behest({ apiKey: KEY, baseURL: gw.url });
    await behest.usage.query({ group_by: "day" });
    assert.equal(gw.requests[0].url, "/v1/usage?group_by=day");
  });
});

describe("baseURL", () => {
  for (const suffix of ["", "/", "/v1", "/v1/", "//"]) {
    test(`tolerates ${JSON.stringify(suffix)} after the origin`, async () => {
      const behest = new Behest({ apiKey: KEY, baseURL: gw.url + suffix });
      assert.equal(behest.baseURL, gw.url);
      await behest.auth.mint({ user_id: "u" });
      assert.equal(gw.requests[0].url, "/v1/auth/mint");
    });
  }

  test("keeps a path prefix", () => {
    assert.equal(normalizeBaseURL("https://example.com/gateway/v1/"), "https://example.com/gateway");
  });

  test("refuses what is not an http(s) URL", () => {
    assert.throws(() => new Behest({ apiKey: KEY, baseURL: "localhost:8080" }), (e) => e instanceof BehestError && e.param === "baseURL");
    assert.throws(() => new Behest({ apiKey: KEY, baseURL: "not a url" }), (e) => e instanceof BehestError && /not a URL/.test(e.message));
  });
});

describe("environment", () => {
  test("reads BEHEST_KEY and BEHEST_BASE_URL", () =>
    withEnv({ BEHEST_KEY: KEY, BEHEST_BASE_URL: gw.url + "/v1" }, async () => {
      const behest = new Behest();
      assert.equal(behest.baseURL, gw.url);
      await behest.auth.mint({ user_id: "u" });
      assert.equal(gw.requests[0].headers.authorization, `Bearer ${KEY}`);
    }));

  test("options override the environment", () =>
    withEnv({ BEHEST_KEY: "bk_from_env", BEHEST_BASE_URL: "http://127.0.0.1:9" }, async () => {
      const behest = new Behest({ apiKey: KEY, baseURL: gw.url });
      await behest.auth.mint({ user_id: "u" });
      assert.equal(gw.requests[0].headers.authorization, `Bearer ${KEY}`);
    }));

  test("a missing key fails the call with a clear error, before any request", () =>
    withEnv(noEnv, async () => {
      const behest = new Behest({ baseURL: gw.url });
      await assert.rejects(behest.auth.mint({ user_id: "u" }), (e) => e instanceof BehestError && e.code === "missing_api_key" && /BEHEST_KEY/.test(e.message));
      assert.equal(gw.requests.length, 0);
    }));

  test("a missing baseURL fails the call with a clear error", () =>
    withEnv(noEnv, async () => {
      const behest = new Behest({ apiKey: KEY });
      await assert.rejects(behest.usage.query({ group_by: "user" }), (e) => e instanceof BehestError && e.code === "missing_base_url" && /BEHEST_BASE_URL/.test(e.message));
    }));

  test("works where there is no process (browsers)", () => {
    const saved = globalThis.process;
    try {
      globalThis.process = undefined;
      const behest = new Behest({ apiKey: KEY, baseURL: gw.url });
      assert.equal(behest.baseURL, gw.url);
    } finally {
      globalThis.process = saved;
    }
  });
});

describe("errors", () => {
  test("an OpenAI-shaped error body becomes a BehestError with status, code, type, param", async () => {
    gw.reply = (_req, res) =>
      json(res, 400, { error: { message: "ttl must be between 30 and 3600 seconds.", type: "invalid_request_error", param: "ttl", code: "invalid_request" } });
    const behest = new Behest({ apiKey: KEY, baseURL: gw.url });
    const err = await behest.auth.mint({ user_id: "u", ttl: 5 }).catch((e) => e);
    assert.ok(err instanceof BehestError);
    assert.ok(err instanceof Error);
    assert.equal(err.name, "BehestError");
    assert.equal(err.message, "ttl must be between 30 and 3600 seconds.");
    assert.equal(err.status, 400);
    assert.equal(err.code, "invalid_request");
    assert.equal(err.type, "invalid_request_error");
    assert.equal(err.param, "ttl");
  });

  test("a 401 keeps param null and exposes the headers", async () => {
    gw.reply = (_req, res) =>
      json(res, 401, { error: { message: "Incorrect API key provided.", type: "invalid_request_error", param: null, code: "invalid_api_key" } }, { "WWW-Authenticate": 'Bearer error="invalid_token"' });
    const behest = new Behest({ apiKey: KEY, baseURL: gw.url });
    const err = await behest.auth.revoke({ user_id: "u" }).catch((e) => e);
    assert.equal(err.status, 401);
    assert.equal(err.code, "invalid_api_key");
    assert.equal(err.param, null);
    assert.equal(err.headers.get("www-authenticate"), 'Bearer error="invalid_token"');
  });

  test("a body that is not JSON still gives a useful error", async () => {
    gw.reply = (_req, res) => { res.writeHead(502, { "Content-Type": "text/html" }); res.end("<html>Bad Gateway</html>"); };
    const behest = new Behest({ apiKey: KEY, baseURL: gw.url });
    const err = await behest.usage.query({ group_by: "user" }).catch((e) => e);
    assert.ok(err instanceof BehestError);
    assert.equal(err.status, 502);
    assert.equal(err.code, null);
    assert.equal(err.type, null);
    assert.match(err.message, /502 Bad Gateway: <html>Bad Gateway<\/html>/);
  });

  test("an empty error body says so", async () => {
    gw.reply = (_req, res) => { res.writeHead(500); res.end(); };
    const behest = new Behest({ apiKey: KEY, baseURL: gw.url });
    const err = await behest.auth.mint({ user_id: "u" }).catch((e) => e);
    assert.equal(err.status, 500);
    assert.match(err.message, /500 Internal Server Error with no error details/);
  });

  test("a 200 that is not JSON is invalid_response", async () => {
    gw.reply = (_req, res) => { res.writeHead(200, { "Content-Type": "text/plain" }); res.end("ok"); };
    const behest = new Behest({ apiKey: KEY, baseURL: gw.url });
    const err = await behest.auth.mint({ user_id: "u" }).catch((e) => e);
    assert.equal(err.code, "invalid_response");
    assert.equal(err.status, 200);
  });

  test("an unreachable gateway is connection_error", async () => {
    const closed = await startServer();
    await closed.close();
    const behest = new Behest({ apiKey: KEY, baseURL: closed.url });
    const err = await behest.auth.mint({ user_id: "u" }).catch((e) => e);
    assert.ok(err instanceof BehestError);
    assert.equal(err.code, "connection_error");
    assert.equal(err.status, undefined);
    assert.ok(err.message.includes(closed.url));
  });
});

describe("timeout", () => {
  test("a slow gateway fails with code timeout after timeoutMs", async () => {
    gw.reply = (_req, res) => { const t = setTimeout(() => json(res, 200, {}), 2000); res.on("close", () => clearTimeout(t)); };
    const behest = new Behest({ apiKey: KEY, baseURL: gw.url, timeoutMs: 100 });
    const started = Date.now();
    const err = await behest.auth.mint({ user_id: "u" }).catch((e) => e);
    const took = Date.now() - started;
    assert.ok(err instanceof BehestError, String(err));
    assert.equal(err.code, "timeout");
    assert.match(err.message, /timed out after 100 ms/);
    assert.ok(took >= 90 && took < 1500, `took ${took} ms`);
  });

  test("a per-call timeoutMs overrides the client's", async () => {
    gw.reply = (_req, res) => { const t = setTimeout(() => json(res, 200, {}), 2000); res.on("close", () => clearTimeout(t)); };
    const behest = new Behest({ apiKey: KEY, baseURL: gw.url });
    const err = await behest.auth.mint({ user_id: "u" }, { timeoutMs: 50 }).catch((e) => e);
    assert.equal(err.code, "timeout");
  });

  test("a caller's signal aborts the call", async () => {
    gw.reply = (_req, res) => { const t = setTimeout(() => json(res, 200, {}), 2000); res.on("close", () => clearTimeout(t)); };
    const behest = new Behest({ apiKey: KEY, baseURL: gw.url });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 30);
    const err = await behest.auth.mint({ user_id: "u" }, { signal: ac.signal }).catch((e) => e);
    assert.equal(err.code, "aborted");
  });

  test("refuses a timeoutMs that is not positive", () => {
    assert.throws(() => new Behest({ apiKey: KEY, baseURL: gw.url, timeoutMs: 0 }), (e) => e.param === "timeoutMs");
  });
});

describe("the API key never shows", () => {
  const behest = new Behest({ apiKey: KEY, baseURL: "http://127.0.0.1:1" });

  test("not in JSON, toString, inspect, or the object's keys", () => {
    for (const [what, text] of [
      ["JSON.stringify", JSON.stringify(behest)],
      ["toString", String(behest)],
      ["template", `${behest}`],
      ["inspect", inspect(behest, { showHidden: true, depth: 10 })],
      ["inspect auth", inspect(behest.auth, { showHidden: true, depth: 10 })],
      ["keys", JSON.stringify(Reflect.ownKeys(behest).map(String))],
      ["values", Object.values(behest).map((v) => inspect(v)).join()],
    ]) {
      assert.ok(!text.includes(KEY), `${what} shows the key: ${text}`);
    }
    assert.match(String(behest), /apiKey: \[redacted\]/);
    assert.deepEqual(JSON.parse(JSON.stringify(behest)), { baseURL: "http://127.0.0.1:1", apiKey: "[redacted]", timeoutMs: 30000 });
  });

  test("not in an error the gateway echoes it in", async () => {
    gw.reply = (req, res) => json(res, 401, { error: { message: `Incorrect API key provided: ${req.headers.authorization}`, type: "invalid_request_error", param: null, code: "invalid_api_key" } });
    const b = new Behest({ apiKey: KEY, baseURL: gw.url });
    const err = await b.auth.mint({ user_id: "u" }).catch((e) => e);
    for (const text of [err.message, String(err), err.stack, inspect(err, { depth: 10 }), JSON.stringify(err)]) {
      assert.ok(!text.includes(KEY), `the error shows the key: ${text}`);
    }
    assert.match(err.message, /\[redacted\]/);
  });

  test("not in connection or timeout errors", async () => {
    const b = new Behest({ apiKey: KEY, baseURL: "http://127.0.0.1:1" });
    const err = await b.auth.mint({ user_id: "u" }).catch((e) => e);
    assert.equal(err.code, "connection_error");
    assert.ok(!inspect(err, { depth: 10 }).includes(KEY));
  });
});
