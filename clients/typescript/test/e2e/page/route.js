// The README's app/api/behest-token/route.ts, as a web-standard route handler: it runs on your
// server, holds the project API key, and mints a token for the signed-in user.
import { Behest, BehestError } from "@behest/client-ts";
import { auth } from "./auth.js"; // in a Next.js app with Clerk: import { auth } from "@clerk/nextjs/server";

const behest = new Behest(); // BEHEST_KEY and BEHEST_BASE_URL from the server's environment

export async function POST(request) {
  const { userId, orgId } = await auth(request);
  if (!userId) return Response.json({ error: "Sign in first." }, { status: 401 });
  try {
    const bundle = await behest.auth.mint({ user_id: orgId ? `${orgId}:${userId}` : userId, ttl: 900 });
    return Response.json(bundle, { headers: { "Cache-Control": "no-store" } });
  } catch (err) {
    if (err instanceof BehestError) {
      return Response.json({ error: err.message }, { status: err.status === 429 ? 429 : 502 });
    }
    throw err;
  }
}
