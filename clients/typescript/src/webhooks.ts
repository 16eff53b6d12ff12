/**
 * Budget alerts arrive as POSTs signed with `Behest-Signature: t=<unix seconds>,v1=<hex
 * HMAC-SHA256 of "<t>.<raw body>" keyed by the alerts secret>`. verifyWebhookSignature checks
 * one with Web Crypto, so it runs in Node (18+), Deno, Bun, edge runtimes and browsers alike.
 */

/** What an alert delivery carries (its JSON body). */
export interface BudgetAlert {
  id: string;
  type: "budget.threshold";
  scope: "project" | "user";
  tenant_id: string;
  project_id: string;
  user_id: string | null;
  limit: "cost_per_month" | "cost_per_day";
  threshold: number;
  spent_usd: number;
  limit_usd: number;
  period: string;
  at: number;
}

export interface VerifyOptions {
  /** The longest a signature's time may be from now, in seconds (default 300; 0: any age). */
  toleranceSeconds?: number;
  /** Now, in unix seconds (default: the clock). */
  now?: number;
}

const encoder = new TextEncoder();

/**
 * verifyWebhookSignature reports whether `header` (the Behest-Signature value) signs `rawBody`
 * (the request body exactly as received, before any JSON parsing) with `secret`, within the
 * tolerance. Deliveries are at least once: drop an alert whose `id` you have handled already.
 */
export async function verifyWebhookSignature(
  secret: string,
  header: string | null | undefined,
  rawBody: string | Uint8Array,
  options: VerifyOptions = {},
): Promise<boolean> {
  if (!header) return false;
  let t = "";
  let v1 = "";
  for (const part of header.split(",")) {
    const [k, v = ""] = part.trim().split("=", 2);
    if (k === "t") t = v;
    else if (k === "v1") v1 = v;
  }
  if (!/^\d+$/.test(t) || !/^[0-9a-f]{64}$/.test(v1)) return false;
  const tolerance = options.toleranceSeconds ?? 300;
  const now = options.now ?? Math.floor(Date.now() / 1000);
  if (tolerance > 0 && Math.abs(now - Number(t)) > tolerance) return false;

  const body = typeof rawBody === "string" ? encoder.encode(rawBody) : rawBody;
  const signed = new Uint8Array(t.length + 1 + body.length);
  signed.set(encoder.encode(`${t}.`), 0);
  signed.set(body, t.length + 1);
  const key = await crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, signed));
  const want = Array.from(mac, (b) => b.toString(16).padStart(2, "0")).join("");
  // Compared in time that does not depend on where the strings differ.
  let diff = 0;
  for (let i = 0; i < want.length; i++) diff |= want.charCodeAt(i) ^ v1.charCodeAt(i);
  return diff === 0;
}
