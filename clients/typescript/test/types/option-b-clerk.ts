// README, Option B: a Clerk JWT template's token as the apiKey, no backend call (type-checked;
// test/e2e/sdk.test.js signs the same claims with jose and calls the gateway with them).
import OpenAI from "openai";
import { useAuth } from "@clerk/nextjs";
import { useMemo } from "react";

export function useBehestOpenAI(chatId: string) {
  const { getToken } = useAuth();
  return useMemo(
    () =>
      new OpenAI({
        // Called before each request; Clerk caches the token and refreshes it before it expires.
        apiKey: async () => {
          const token = await getToken({ template: "behest" });
          if (!token) throw new Error("Sign in first.");
          return token;
        },
        baseURL: `${process.env.NEXT_PUBLIC_BEHEST_BASE_URL}/v1`,
        dangerouslyAllowBrowser: true,
        defaultHeaders: { "X-Session-Id": chatId }, // trusted-issuer tokens carry no session: name it
      }),
    [getToken, chatId],
  );
}
