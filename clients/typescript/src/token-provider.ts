/** The least a token bundle needs: the token, and when it expires (unix seconds). */
export interface ExpiringToken {
  token: string;
  expiresAt: number;
}

export interface TokenProviderOptions {
  /** Refresh this many seconds before `expiresAt`. Default 60. For a token that lives less than twice this, refresh at half its life. */
  refreshSkewSeconds?: number | undefined;
  /** The clock, in milliseconds like `Date.now` (for tests). */
  now?: (() => number) | undefined;
}

/**
 * A TokenProvider hands out a cached token bundle and fetches a new one when the cached one is
 * close to expiry. Concurrent callers share one fetch; a failed fetch rejects those callers and
 * leaves nothing cached, so the next call tries again.
 */
export interface TokenProvider<B extends ExpiringToken> {
  /** The current bundle, fetched first if there is none or it is due for refresh. */
  get(): Promise<B>;
  /** The current token: pass `provider.getToken` as the OpenAI SDK's `apiKey`, which calls it before each request. */
  getToken(): Promise<string>;
  /** Forget the cached bundle (e.g. after a 401, or at sign-out); the next call fetches. */
  invalidate(): void;
  /** The cached bundle, if any, without fetching. */
  peek(): B | undefined;
}

/**
 * createTokenProvider caches what `fetchBundle` returns (e.g. your backend's
 * `/api/behest-token`, which mints with the project key) and refreshes it
 * `refreshSkewSeconds` before it expires.
 *
 * ```ts
 * const tokens = createTokenProvider(() => fetch("/api/behest-token", { method: "POST" }).then((r) => r.json()));
 * const openai = new OpenAI({ apiKey: tokens.getToken, baseURL: `${GATEWAY}/v1`, dangerouslyAllowBrowser: true });
 * ```
 */
export function createTokenProvider<B extends ExpiringToken>(
  fetchBundle: () => Promise<B>,
  options: TokenProviderOptions = {},
): TokenProvider<B> {
  if (typeof fetchBundle !== "function") {
    throw new TypeError("createTokenProvider: fetchBundle must be a function returning a Promise of { token, expiresAt }.");
  }
  const skewMs = (options.refreshSkewSeconds ?? 60) * 1000;
  if (!(Number.isFinite(skewMs) && skewMs >= 0)) {
    throw new TypeError(`createTokenProvider: refreshSkewSeconds must be a number of seconds >= 0, got ${String(options.refreshSkewSeconds)}.`);
  }
  const now = options.now ?? Date.now;

  let cached: { bundle: B; refreshAt: number } | undefined;
  let inflight: Promise<B> | undefined;
  // generation makes invalidate() win over a fetch that was already running.
  let generation = 0;

  const load = async (gen: number): Promise<B> => {
    const started = now();
    const bundle = await fetchBundle();
    checkBundle(bundle);
    if (gen === generation) {
      const expiresAtMs = bundle.expiresAt * 1000;
      const lifetime = Math.max(0, expiresAtMs - started);
      cached = { bundle, refreshAt: expiresAtMs - Math.min(skewMs, lifetime / 2) };
    }
    return bundle;
  };

  const refresh = (): Promise<B> => {
    if (inflight) return inflight;
    const p = load(generation).finally(() => {
      if (inflight === p) inflight = undefined;
    });
    inflight = p;
    return p;
  };

  const get = (): Promise<B> => {
    if (cached && now() < cached.refreshAt) return Promise.resolve(cached.bundle);
    return refresh();
  };

  return {
    get,
    getToken: () => get().then((b) => b.token),
    invalidate: () => {
      generation++;
      cached = undefined;
      inflight = undefined;
    },
    peek: () => cached?.bundle,
  };
}

function checkBundle(b: unknown): asserts b is ExpiringToken {
  const r = b as Partial<ExpiringToken> | null;
  if (typeof r !== "object" || r === null || typeof r.token !== "string" || r.token === "" || typeof r.expiresAt !== "number" || !Number.isFinite(r.expiresAt)) {
    throw new TypeError("createTokenProvider: fetchBundle must resolve to { token: string, expiresAt: unix seconds }, as POST /v1/auth/mint answers.");
  }
}
