// The README's browser code: the OpenAI SDK with a Behest token that the token provider keeps
// fresh, talking to the gateway directly (CORS), never holding a provider key.
import OpenAI from "openai";
import { createTokenProvider } from "@behest/client-ts";

const tokens = createTokenProvider(async () => {
  const res = await fetch("/api/behest-token", { method: "POST" });
  if (!res.ok) throw new Error(`/api/behest-token answered ${res.status}`);
  return res.json(); // { token, ttl, sessionId, expiresAt }
});

export async function createChatClient(gatewayURL) {
  const { sessionId } = await tokens.get();
  const openai = new OpenAI({
    apiKey: tokens.getToken, // called before each request; refreshes 60 s before expiresAt
    baseURL: `${gatewayURL}/v1`,
    dangerouslyAllowBrowser: true, // fine here: the token is short-lived and limited to one user
    defaultHeaders: { "X-Session-Id": sessionId },
  });
  return { openai, sessionId };
}
