// The project the provider tests configure (tiers, prices), and reading its usage back.

/** The roomy tier's output cap. */
export const MAX_OUTPUT = 1024;

/**
 * Tiers: 1 is roomy with a models allowlist; "broke" has a daily budget so small that any request's
 * worst case is over it (429 insufficient_quota, x-should-retry: false); "slow" allows one request
 * a minute (429 rate_limit_exceeded, worth retrying later); "tight" has room for a prompt its body
 * bounds, not for one that reserves max_input_tokens (128000 by default; content by reference).
 */
export const providerTiers = {
  1: `requests_per_minute 1000
				max_output_tokens ${MAX_OUTPUT}
				models gpt-4o-mini claude-haiku-* gemini-*-flash* gemini-embedding-*`,
  broke: `cost_per_day 0.000001
				max_output_tokens 100
				models gpt-4o-mini claude-haiku-* gemini-*-flash*`,
  slow: `requests_per_minute 1
				models gpt-4o-mini claude-haiku-* gemini-*-flash*`,
  tight: `cost_per_day 0.01
				max_output_tokens 100
				models gpt-4o-mini claude-haiku-* gemini-*-flash*`,
};

/** USD per 1M tokens: input, output, cached input, cache write, as the `price` lines say. */
const PRICES = {
  haiku: { model: "claude-haiku-4-5", input: 1.0, output: 5.0, cached: 0.1, cacheWrite: 1.25 },
  flash: { model: "gemini-2.5-flash", input: 0.3, output: 2.5, cached: 0.03 },
  embedding: { model: "gemini-embedding-001", input: 0.15, output: 0 },
  mini: { model: "gpt-4o-mini", input: 0.15, output: 0.6 },
};

/** The `price` lines for the Caddyfile, and each model's prices by a short name. */
export const providerPrices = Object.assign(
  Object.values(PRICES).map((p) => [p.model, p.input, p.output, p.cached, p.cacheWrite].filter((v) => v !== undefined).map(String).join(" ")),
  PRICES,
);

/**
 * cost is what `tokens` cost at `price`: `input` (fresh, not cached), `cached` (read from a
 * cache), `cacheWrite` and `output` tokens.
 */
export function cost({ input = 0, cached = 0, cacheWrite = 0, output = 0 }, price) {
  return (input * price.input + cached * (price.cached ?? price.input) + cacheWrite * (price.cacheWrite ?? price.input) + output * price.output) / 1e6;
}

/**
 * usageOf reads the user's usage by model from the gateway (`GET /v1/usage?group_by=model`),
 * polling briefly until `ready(rows)`: a response is settled as it ends, which can be a moment
 * after the SDK has returned it. It returns the last rows read.
 */
export async function usageOf(behest, user, ready, { timeoutMs = 3000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const list = await behest.usage.query({ group_by: "model", user_id: user });
    if (ready(list.data) || Date.now() > deadline) return list.data;
    await new Promise((r) => setTimeout(r, 50));
  }
}
