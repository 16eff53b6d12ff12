// verifyWebhookSignature against the vector the gateway's Go tests pin (alerts.TestSignVector),
// and the README's node:crypto snippet against the same.
import { test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { verifyWebhookSignature } from "../../dist/index.js";

const SECRET = "whsec_test";
const BODY = `{"id":"evt_1","type":"budget.threshold"}`;
const HEADER = "t=1764201234,v1=1438d4a5efc902cfe9e14c9c75bd36fef935b469ade920a45b9d8a0878b631b8";
const NOW = 1764201234 + 30;

test("a signature made by the gateway verifies", async () => {
  assert.equal(await verifyWebhookSignature(SECRET, HEADER, BODY, { now: NOW }), true);
  assert.equal(await verifyWebhookSignature(SECRET, HEADER, new TextEncoder().encode(BODY), { now: NOW }), true);
  assert.equal(await verifyWebhookSignature(SECRET, HEADER.replace(",", ", "), BODY, { now: NOW }), true);
});

test("a tampered body, another secret, an old or malformed signature do not", async () => {
  assert.equal(await verifyWebhookSignature(SECRET, HEADER, BODY.replace("evt_1", "evt_2"), { now: NOW }), false);
  assert.equal(await verifyWebhookSignature("whsec_other", HEADER, BODY, { now: NOW }), false);
  assert.equal(await verifyWebhookSignature(SECRET, HEADER, BODY, { now: NOW + 600 }), false);
  assert.equal(await verifyWebhookSignature(SECRET, HEADER, BODY, { now: NOW + 600, toleranceSeconds: 0 }), true);
  for (const bad of [null, "", "v1=abc", "t=x,v1=" + "0".repeat(64), HEADER.slice(0, -1)]) {
    assert.equal(await verifyWebhookSignature(SECRET, bad, BODY, { now: NOW }), false, String(bad));
  }
});

// The README's receiver in plain Node, kept here so it stays true.
function readmeVerify(secret, header, rawBody, toleranceSeconds = 300) {
  const parts = Object.fromEntries(header.split(",").map((p) => p.trim().split("=", 2)));
  const t = Number(parts.t);
  if (!parts.v1 || !Number.isInteger(t) || Math.abs(Date.now() / 1000 - t) > toleranceSeconds) return false;
  const want = crypto.createHmac("sha256", secret).update(`${parts.t}.${rawBody}`).digest();
  const got = Buffer.from(parts.v1, "hex");
  return got.length === want.length && crypto.timingSafeEqual(got, want);
}

test("the README's node:crypto snippet agrees", () => {
  const t = Math.floor(Date.now() / 1000);
  const v1 = crypto.createHmac("sha256", SECRET).update(`${t}.${BODY}`).digest("hex");
  assert.equal(readmeVerify(SECRET, `t=${t},v1=${v1}`, BODY), true);
  assert.equal(readmeVerify(SECRET, `t=${t},v1=${v1}`, BODY + " "), false);
  assert.equal(readmeVerify(SECRET, HEADER, BODY, Number.MAX_SAFE_INTEGER), true);
});
