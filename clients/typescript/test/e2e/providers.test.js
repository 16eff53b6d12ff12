// End-to-end across the three APIs one Caddy serves (the contract's "Providers" and "Model
// policy"): one end user has one set of limits whichever SDK they call, and a tier's `models`
// allowlist holds for each API, with `*` matching any run of characters.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";
import { GoogleGenAI, ApiError } from "@google/genai";
import { Behest } from "@behest/client-ts";
import { startFakeProvider, startGateway, REPLY } from "./harness.js";
import { startFakeAnthropic, startFakeGemini } from "./fake-providers.js";
import { providerTiers, providerPrices } from "./providers-config.js";

let openaiProvider, anthropic, gemini, gateway, behest;

before(async () => {
  [openaiProvider, anthropic, gemini] = await Promise.all([startFakeProvider({ chunkDelayMs: 5 }), startFakeAnthropic({ chunkDelayMs: 5 }), startFakeGemini({ chunkDelayMs: 5 })]);
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

/** The three SDKs for one user's token, as apps make them, retries off. */
async function clientsFor(prefix, tier) {
  const user = `${prefix}_${randomUUID().slice(0, 8)}`;
  const { token } = await behest.auth.mint({ user_id: user, ...(tier ? { tier } : {}) });
  return {
    user,
    openai: new OpenAI({ apiKey: token, baseURL: `${gateway.url}/v1`, maxRetries: 0 }),
    anthropic: new Anthropic({ apiKey: token, baseURL: `${gateway.url}/anthropic`, maxRetries: 0 }),
    genai: new GoogleGenAI({ apiKey: token, httpOptions: { baseUrl: `${gateway.url}/gemini` } }),
  };
}

const messages = [{ role: "user", content: "Say hello." }];

/** One call per API, each naming `model`. */
const calls = {
  openai: (c, model) => c.openai.chat.completions.create({ model, messages }),
  anthropic: (c, model) => c.anthropic.messages.create({ model, max_tokens: 50, messages }),
  gemini: (c, model) => c.genai.models.generateContent({ model, contents: "Say hello." }),
};

/** Each SDK's 403 and 429 classes, and the gateway's code as each carries it. */
const refusals = {
  openai: { forbidden: OpenAI.PermissionDeniedError, limited: OpenAI.RateLimitError, code: (e) => e.code },
  anthropic: { forbidden: Anthropic.PermissionDeniedError, limited: Anthropic.RateLimitError, code: (e) => e.error?.error?.message },
  gemini: { forbidden: ApiError, limited: ApiError, code: (e) => JSON.parse(e.message).error?.message },
};

describe("one user, three APIs", () => {
  test("a request through one API counts against the limits of the others (tier slow: 1 request a minute)", async () => {
    const c = await clientsFor("shared", "slow");
    const reply = await calls.anthropic(c, "claude-haiku-4-5");
    assert.equal(reply.content[0].text, REPLY);
    for (const [api, model] of [["gemini", "gemini-2.5-flash"], ["openai", "gpt-4o-mini"], ["anthropic", "claude-haiku-4-5"]]) {
      const err = await calls[api](c, model).catch((e) => e);
      assert.ok(err instanceof refusals[api].limited, `${api}: want ${refusals[api].limited.name}, got ${err?.constructor?.name}: ${err?.message}`);
      assert.equal(err.status, 429, api);
      assert.match(refusals[api].code(err) ?? "", /rate_limit_exceeded/, api);
    }
  });

  test("usage by model lists each API's model for the one user", async () => {
    const c = await clientsFor("mixed");
    await calls.openai(c, "gpt-4o-mini");
    await calls.anthropic(c, "claude-haiku-4-5");
    await calls.gemini(c, "gemini-2.5-flash");
    let keys = [];
    for (const deadline = Date.now() + 3000; Date.now() < deadline;) {
      const { data } = await behest.usage.query({ group_by: "model", user_id: c.user });
      keys = data.filter((r) => r.requests > 0).map((r) => r.key).sort();
      if (keys.length >= 3) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.deepEqual(keys, ["claude-haiku-4-5", "gemini-2.5-flash", "gpt-4o-mini"]);
  });
});

describe("the tier's models allowlist, for each API", () => {
  // Tier 1's list: gpt-4o-mini claude-haiku-* gemini-*-flash* gemini-embedding-*
  const cases = {
    openai: { allowed: ["gpt-4o-mini"], refused: ["gpt-4o", "gpt-4o-mini-2024-07-18", "gpt-4o-min"] },
    anthropic: { allowed: ["claude-haiku-4-5", "claude-haiku-4-5-20251001"], refused: ["claude-opus-4-1", "claude-3-5-haiku-latest", "claude-sonnet-4-5"] },
    gemini: { allowed: ["gemini-2.5-flash", "gemini-2.0-flash-lite", "gemini-2.5-flash-preview-09-2025"], refused: ["gemini-2.5-pro", "gemini-flash-latest", "gemma-3-27b-it"] },
  };
  for (const [api, { allowed, refused }] of Object.entries(cases)) {
    test(`${api}: models the list matches are served, others refused with 403 model_not_allowed naming model and tier`, async () => {
      const c = await clientsFor(`policy_${api}`);
      for (const model of allowed) {
        await assert.doesNotReject(calls[api](c, model), `${api} ${model} should be allowed`);
      }
      const fakes = [openaiProvider, anthropic, gemini];
      const from = fakes.map((f) => f.requests.length);
      for (const model of refused) {
        const err = await calls[api](c, model).catch((e) => e);
        assert.ok(err instanceof refusals[api].forbidden, `${api} ${model}: want ${refusals[api].forbidden.name}, got ${err?.constructor?.name}: ${err?.message}`);
        assert.equal(err.status, 403, `${api} ${model}`);
        const said = refusals[api].code(err) ?? "";
        if (api === "openai") {
          assert.equal(said, "model_not_allowed");
          assert.match(err.message, new RegExp(`${model}.*tier 1|tier 1.*${model}`), err.message);
        } else {
          assert.match(said, /model_not_allowed/, `${api} ${model}: ${said}`);
          assert.match(said, new RegExp(`${model}.*tier 1|tier 1.*${model}`), said);
        }
      }
      assert.deepEqual(fakes.map((f) => f.requests.length), from, "a refused request reached a provider");
    });
  }
});
