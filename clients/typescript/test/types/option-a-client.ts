// README, Option A: lib/behest-chat.ts, browser side (type-checked; test/e2e/page/chat.js runs the same code)
import OpenAI from "openai";
import { createTokenProvider, type TokenBundle } from "@behest/client-ts";

const tokens = createTokenProvider<TokenBundle>(async () => {
  const res = await fetch("/api/behest-token", { method: "POST" });
  if (!res.ok) throw new Error(`/api/behest-token answered ${res.status}`);
  return res.json(); // { token, ttl, sessionId, expiresAt }
});

export async function createChatClient(gatewayURL = process.env.NEXT_PUBLIC_BEHEST_BASE_URL!) {
  const { sessionId } = await tokens.get();
  const openai = new OpenAI({
    apiKey: tokens.getToken, // called before each request; refreshes 60 s before expiresAt
    baseURL: `${gatewayURL}/v1`,
    dangerouslyAllowBrowser: true, // fine here: the token is short-lived and limited to one user
    defaultHeaders: { "X-Session-Id": sessionId },
  });
  return { openai, sessionId };
}

// README: streaming an answer
export async function streamAnswer(prompt: string, onText: (piece: string) => void) {
  const { openai } = await createChatClient();
  const stream = await openai.chat.completions.create({
    model: "gpt-4o-mini",
    stream: true,
    messages: [{ role: "user", content: prompt }],
  });
  for await (const chunk of stream) onText(chunk.choices[0]?.delta?.content ?? "");
}
