// README, server side: mint, revoke, usage, errors (type-checked).
import { Behest, BehestError } from "@behest/client-ts";

export async function examples() {
  const behest = new Behest({ apiKey: process.env.BEHEST_KEY, baseURL: "https://gateway.example.com" });

  const { token, sessionId, expiresAt } = await behest.auth.mint({ user_id: "org_9:user_2abc", tier: 1, ttl: 900 });

  await behest.auth.revoke({ session_id: sessionId }); // one session
  await behest.auth.revoke({ user_id: "org_9:user_2abc" }); // every token of a user

  const usage = await behest.usage.query({ group_by: "org", from: "2026-01-01", to: new Date() });
  for (const row of usage.data) console.log(row.key, row.requests, row.input_tokens, row.output_tokens, row.cost_usd);

  try {
    await behest.auth.mint({ user_id: "user_2abc", ttl: 5 });
  } catch (err) {
    if (err instanceof BehestError) console.error(err.status, err.code, err.param, err.message); // 400 invalid_request ttl …
  }
  return { token, expiresAt };
}
