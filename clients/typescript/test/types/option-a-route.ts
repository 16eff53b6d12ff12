// README, Option A: app/api/behest-token/route.ts (type-checked; test/e2e/page/route.js runs the same code)
import { auth } from "@clerk/nextjs/server"; // or your auth library
import { Behest, BehestError } from "@behest/client-ts";

const behest = new Behest(); // BEHEST_KEY and BEHEST_BASE_URL from the server's environment

export async function POST() {
  const { userId, orgId } = await auth();
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
