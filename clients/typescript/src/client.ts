import { BehestError, errorFromResponse } from "./errors.js";

/** Options of {@link Behest}; each one overrides its environment variable. */
export interface BehestOptions {
  /** The project API key. Default: `process.env.BEHEST_KEY`. Keep it on your server. */
  apiKey?: string | undefined;
  /** The gateway's origin, e.g. `https://gateway.example.com` (a trailing `/` or `/v1` is fine). Default: `process.env.BEHEST_BASE_URL`. */
  baseURL?: string | undefined;
  /** How long one call may take, in milliseconds, before it fails with code `timeout`. Default 30000. */
  timeoutMs?: number | undefined;
  /** The fetch to use. Default: the global `fetch`. */
  fetch?: typeof fetch | undefined;
}

/** Per-call options. */
export interface RequestOptions {
  /** Cancels the call; it then fails with the signal's reason. */
  signal?: AbortSignal | undefined;
  /** Overrides the client's `timeoutMs` for this call. */
  timeoutMs?: number | undefined;
}

/** The body of `POST /v1/auth/mint`. */
export interface MintParams {
  /** The end user, chosen by your app: `user_2abc`, or `org_9:user_2abc` to group usage by org. */
  user_id: string;
  /** One of the project's tiers; default: the project's `default_tier`. */
  tier?: number | string | undefined;
  /** Lifetime in seconds, 30 to the project's `max_ttl`; default 900. */
  ttl?: number | undefined;
}

/** A minted end-user token. Hand it to the client as it is. */
export interface TokenBundle {
  /** The JWT: the OpenAI SDK's `apiKey`. */
  token: string;
  /** Its lifetime in seconds. */
  ttl: number;
  /** The session the token's requests are metered under; send it as `X-Session-Id`. */
  sessionId: string;
  /** When the token expires, in unix seconds. */
  expiresAt: number;
}

/** The body of `POST /v1/auth/revoke`: one session, or every session of one user. */
export type RevokeParams = { session_id: string; user_id?: undefined } | { user_id: string; session_id?: undefined };

/** The answer of `POST /v1/auth/revoke`. */
export interface RevokeResult {
  object: "revocation";
  revoked: boolean;
  session_id?: string;
  user_id?: string;
  /** Unix seconds; tokens issued at or before it are refused. */
  revoked_at: number;
}

export type UsageGroupBy = "user" | "org" | "session" | "tier" | "model" | "day";

/** The query of `GET /v1/usage`. Dates are UTC days, `YYYY-MM-DD` strings or Dates. */
export interface UsageParams {
  group_by: UsageGroupBy;
  /** First day, inclusive. Default: the first of this month. */
  from?: string | Date | undefined;
  /** Last day, inclusive. Default: today. */
  to?: string | Date | undefined;
  /** Only this end user's usage. */
  user_id?: string | undefined;
}

export interface UsageRow {
  /** The user, org, session, tier, model or day, by `group_by`. */
  key: string;
  requests: number;
  input_tokens: number;
  output_tokens: number;
  cost_usd: number;
}

export interface UsageList {
  object: "list";
  group_by: UsageGroupBy;
  from: string;
  to: string;
  data: UsageRow[];
}

const DEFAULT_TIMEOUT_MS = 30_000;

/**
 * Behest is the server-side client of a Behest gateway: it mints and revokes end-user tokens and
 * reads usage with the project API key. Use it on your backend only; browsers and mobile apps get
 * the minted token, never the key.
 *
 * The key is kept out of `JSON.stringify`, `util.inspect`, `toString` and every error message.
 */
export class Behest {
  readonly #apiKey: string | undefined;
  readonly #baseURL: string | undefined;
  readonly #timeoutMs: number;
  readonly #fetch: typeof fetch | undefined;

  /** Mint and revoke end-user tokens. */
  readonly auth: {
    /** `POST /v1/auth/mint`: a token for one end user. */
    mint(params: MintParams, options?: RequestOptions): Promise<TokenBundle>;
    /** `POST /v1/auth/revoke`: refuse every token of a session or user issued until now. */
    revoke(params: RevokeParams, options?: RequestOptions): Promise<RevokeResult>;
  };
  /** Read the project's metered usage. */
  readonly usage: {
    /** `GET /v1/usage`: requests, tokens and cost, grouped. */
    query(params: UsageParams, options?: RequestOptions): Promise<UsageList>;
  };

  constructor(options: BehestOptions = {}) {
    const env = readEnv();
    const apiKey = options.apiKey ?? env["BEHEST_KEY"];
    this.#apiKey = apiKey === "" ? undefined : apiKey;
    const baseURL = options.baseURL ?? env["BEHEST_BASE_URL"];
    this.#baseURL = baseURL === undefined || baseURL === "" ? undefined : normalizeBaseURL(baseURL);
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) {
      throw new BehestError(`timeoutMs must be a positive number of milliseconds, got ${String(options.timeoutMs)}.`, {
        code: "invalid_option",
        param: "timeoutMs",
      });
    }
    this.#timeoutMs = timeoutMs;
    this.#fetch = options.fetch;

    this.auth = {
      mint: (params, opts) => {
        if (!params || typeof params.user_id !== "string" || params.user_id === "") {
          return Promise.reject(
            new BehestError("mint: user_id is required, like { user_id: \"user_2abc\" }.", {
              code: "invalid_request",
              param: "user_id",
            }),
          );
        }
        return this.#request<TokenBundle>("POST", "/v1/auth/mint", params, opts);
      },
      revoke: (params, opts) => this.#request<RevokeResult>("POST", "/v1/auth/revoke", params, opts),
    };
    this.usage = {
      query: (params, opts) => {
        const q = new URLSearchParams();
        q.set("group_by", params.group_by);
        if (params.from !== undefined) q.set("from", toDay(params.from));
        if (params.to !== undefined) q.set("to", toDay(params.to));
        if (params.user_id !== undefined) q.set("user_id", params.user_id);
        return this.#request<UsageList>("GET", `/v1/usage?${q.toString()}`, undefined, opts);
      },
    };
  }

  /** The gateway origin calls go to, without a trailing `/` or `/v1`; undefined when not set. */
  get baseURL(): string | undefined {
    return this.#baseURL;
  }

  toString(): string {
    return `Behest(${this.#describe()})`;
  }

  toJSON(): Record<string, unknown> {
    return { baseURL: this.#baseURL ?? null, apiKey: this.#apiKey === undefined ? null : "[redacted]", timeoutMs: this.#timeoutMs };
  }

  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return this.toString();
  }

  #describe(): string {
    const key = this.#apiKey === undefined ? "none" : "[redacted]";
    return `baseURL: ${this.#baseURL ?? "unset"}, apiKey: ${key}, timeoutMs: ${this.#timeoutMs}`;
  }

  async #request<T>(method: "GET" | "POST", path: string, body: unknown, opts: RequestOptions = {}): Promise<T> {
    const baseURL = this.#baseURL;
    if (baseURL === undefined) {
      throw new BehestError(
        "No gateway URL: pass { baseURL: \"https://gateway.example.com\" } to new Behest() or set BEHEST_BASE_URL.",
        { code: "missing_base_url" },
      );
    }
    const apiKey = this.#apiKey;
    if (apiKey === undefined) {
      throw new BehestError("No project API key: pass { apiKey } to new Behest() or set BEHEST_KEY (on your server only).", {
        code: "missing_api_key",
      });
    }
    const doFetch = this.#fetch ?? globalThis.fetch;
    if (typeof doFetch !== "function") {
      throw new BehestError("No fetch: run on Node 20+ or a browser, or pass { fetch } to new Behest().", {
        code: "missing_fetch",
      });
    }

    const timeoutMs = opts.timeoutMs ?? this.#timeoutMs;
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeoutMs);
    const onAbort = (): void => controller.abort(opts.signal?.reason);
    if (opts.signal?.aborted) onAbort();
    else opts.signal?.addEventListener("abort", onAbort, { once: true });

    const headers: Record<string, string> = { Authorization: `Bearer ${apiKey}`, Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const what = `${method} ${path.split("?")[0]}`;
    try {
      let res: Response;
      let text: string;
      try {
        res = await doFetch.call(globalThis, baseURL + path, {
          method,
          headers,
          body: body === undefined ? null : JSON.stringify(body),
          signal: controller.signal,
        });
        text = await res.text();
      } catch (err) {
        if (timedOut) {
          throw new BehestError(`${what} timed out after ${timeoutMs} ms.`, { code: "timeout" });
        }
        if (opts.signal?.aborted) {
          throw new BehestError(`${what} was aborted.`, { code: "aborted", cause: opts.signal.reason });
        }
        throw new BehestError(`${what}: could not reach the Behest gateway at ${baseURL}: ${redact(errorText(err), apiKey)}`, {
          code: "connection_error",
          cause: err,
        });
      }
      if (!res.ok) {
        const e = errorFromResponse(res.status, res.statusText, res.headers, redact(text, apiKey));
        throw e;
      }
      try {
        return JSON.parse(text) as T;
      } catch {
        throw new BehestError(`${what}: the gateway answered ${res.status} with a body that is not JSON.`, {
          status: res.status,
          code: "invalid_response",
          headers: res.headers,
        });
      }
    } finally {
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
    }
  }
}

/** normalizeBaseURL accepts the gateway's origin with or without a trailing `/` or `/v1`. */
export function normalizeBaseURL(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new BehestError(`baseURL ${JSON.stringify(raw)} is not a URL; expected the gateway's origin, like https://gateway.example.com.`, {
      code: "invalid_option",
      param: "baseURL",
    });
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new BehestError(`baseURL ${JSON.stringify(raw)} must be an http or https URL.`, { code: "invalid_option", param: "baseURL" });
  }
  let path = url.pathname.replace(/\/+$/, "");
  if (path.endsWith("/v1")) path = path.slice(0, -3);
  return url.origin + path;
}

function readEnv(): Record<string, string | undefined> {
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return typeof proc === "object" && proc !== null && typeof proc.env === "object" && proc.env !== null ? proc.env : {};
}

function toDay(d: string | Date): string {
  return typeof d === "string" ? d : d.toISOString().slice(0, 10);
}

function errorText(err: unknown): string {
  if (err instanceof Error) {
    const cause = err.cause instanceof Error ? ` (${err.cause.message})` : "";
    return err.message + cause;
  }
  return String(err);
}

function redact(text: string, secret: string): string {
  return secret.length > 0 ? text.split(secret).join("[redacted]") : text;
}
