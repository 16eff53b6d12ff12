// Unit tests of createTokenProvider with a fake clock: when it refreshes, that concurrent callers
// share one refresh, and that a failed refresh leaves nothing behind.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { createTokenProvider } from "../../dist/index.js";
import { createTokenProvider as fromSubpath } from "@behest/client-ts/token-provider";

const T0 = 1_764_201_000_000; // ms

/** A fake clock and a fetchBundle that mints tokens of `ttl` seconds, counting its calls. */
function setup({ ttl = 900, skew } = {}) {
  const clock = { ms: T0 };
  const calls = { n: 0 };
  let gate; // when set, fetches wait for it
  let fail; // when set, the next fetch rejects with it
  const fetchBundle = async () => {
    const n = ++calls.n;
    const startedAt = clock.ms;
    if (gate) await gate;
    if (fail) { const e = fail; fail = undefined; throw e; }
    return { token: `tok_${n}`, ttl, sessionId: `sess_${n}`, expiresAt: Math.floor(startedAt / 1000) + ttl };
  };
  const provider = createTokenProvider(fetchBundle, { now: () => clock.ms, ...(skew === undefined ? {} : { refreshSkewSeconds: skew }) });
  return {
    provider,
    calls,
    advance: (seconds) => { clock.ms += seconds * 1000; },
    hold() { let release; gate = new Promise((r) => (release = r)); return () => { gate = undefined; release(); }; },
    failNext(e) { fail = e; },
  };
}

describe("createTokenProvider", () => {
  test("is exported from the main entry and from the token-provider subpath", () => {
    assert.equal(fromSubpath, createTokenProvider);
  });

  test("fetches once, then serves the cached bundle until 60 s before expiresAt", async () => {
    const s = setup();
    const first = await s.provider.get();
    assert.equal(first.token, "tok_1");
    assert.equal(first.sessionId, "sess_1");
    assert.equal(s.calls.n, 1);

    s.advance(900 - 61); // 61 s before expiry: still cached
    assert.equal(await s.provider.getToken(), "tok_1");
    assert.equal(s.calls.n, 1);

    s.advance(1); // exactly 60 s before expiry: refresh
    assert.equal(await s.provider.getToken(), "tok_2");
    assert.equal(s.calls.n, 2);
    assert.equal(s.provider.peek().sessionId, "sess_2");

    s.advance(100); // the new token is fresh
    assert.equal(await s.provider.getToken(), "tok_2");
    assert.equal(s.calls.n, 2);
  });

  test("honours refreshSkewSeconds", async () => {
    const s = setup({ skew: 120 });
    await s.provider.get();
    s.advance(900 - 121);
    assert.equal(await s.provider.getToken(), "tok_1");
    s.advance(1);
    assert.equal(await s.provider.getToken(), "tok_2");
  });

  test("a token shorter-lived than twice the skew refreshes at half its life, not on every call", async () => {
    const s = setup({ ttl: 30 }); // 30 s tokens, 60 s skew
    await s.provider.get();
    s.advance(14);
    assert.equal(await s.provider.getToken(), "tok_1");
    s.advance(1);
    assert.equal(await s.provider.getToken(), "tok_2");
    assert.equal(await s.provider.getToken(), "tok_2");
    assert.equal(s.calls.n, 2);
  });

  test("concurrent callers share one refresh", async () => {
    const s = setup();
    const release = s.hold();
    const waiting = Array.from({ length: 5 }, () => s.provider.getToken());
    assert.equal(s.calls.n, 1);
    release();
    assert.deepEqual(await Promise.all(waiting), Array(5).fill("tok_1"));
    assert.equal(s.calls.n, 1);

    s.advance(900 - 60);
    const release2 = s.hold();
    const again = [s.provider.get(), s.provider.get(), s.provider.getToken()];
    release2();
    const got = await Promise.all(again);
    assert.equal(s.calls.n, 2);
    assert.deepEqual(got.map((b) => (typeof b === "string" ? b : b.token)), ["tok_2", "tok_2", "tok_2"]);
  });

  test("a failed refresh reaches every waiting caller and does not poison the cache", async () => {
    const s = setup();
    const boom = new Error("backend down");
    s.failNext(boom);
    const release = s.hold();
    const waiting = [s.provider.get(), s.provider.get()];
    release();
    for (const p of waiting) await assert.rejects(p, (e) => e === boom);
    assert.equal(s.calls.n, 1);
    assert.equal(s.provider.peek(), undefined);

    // The next call tries again and succeeds.
    assert.equal(await s.provider.getToken(), "tok_2");
    assert.equal(s.calls.n, 2);
  });

  test("a failed refresh near expiry is retried on the next call", async () => {
    const s = setup();
    await s.provider.get();
    s.advance(900 - 30);
    s.failNext(new Error("503"));
    await assert.rejects(s.provider.get(), /503/);
    assert.equal(await s.provider.getToken(), "tok_3");
    assert.equal(s.calls.n, 3);
  });

  test("invalidate() forgets the bundle and wins over a fetch in flight", async () => {
    const s = setup();
    await s.provider.get();
    s.provider.invalidate();
    assert.equal(s.provider.peek(), undefined);
    assert.equal(await s.provider.getToken(), "tok_2");

    s.provider.invalidate();
    const release = s.hold();
    const stale = s.provider.get();
    s.provider.invalidate();
    release();
    assert.equal((await stale).token, "tok_3"); // its caller still gets it ...
    assert.equal(s.provider.peek(), undefined); // ... but it is not cached
    assert.equal(await s.provider.getToken(), "tok_4");
  });

  test("refuses a bundle without token or expiresAt, and caches nothing", async () => {
    let n = 0;
    const p = createTokenProvider(async () => (++n === 1 ? { error: { message: "nope" } } : { token: "t", expiresAt: 2_000_000_000 }));
    await assert.rejects(p.get(), (e) => e instanceof TypeError && /expiresAt/.test(e.message));
    assert.equal(p.peek(), undefined);
    assert.equal(await p.getToken(), "t");
  });

  test("a fetchBundle that throws synchronously rejects", async () => {
    const p = createTokenProvider(() => { throw new Error("sync"); });
    await assert.rejects(p.get(), /sync/);
  });

  test("checks its arguments", () => {
    assert.throws(() => createTokenProvider("nope"), TypeError);
    assert.throws(() => createTokenProvider(async () => ({}), { refreshSkewSeconds: -1 }), TypeError);
  });

  test("uses Date.now by default", async () => {
    const p = createTokenProvider(async () => ({ token: "t", expiresAt: Math.floor(Date.now() / 1000) + 900 }));
    assert.equal(await p.getToken(), "t");
  });
});
