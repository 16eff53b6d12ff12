// The gateway's operator API: usage reports and revocation, called same-origin with the project
// API key as a bearer token. Failures become ApiError with a sentence an operator can act on.

/** ApiError is a failed call: status 0 when the gateway could not be reached. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }

  /** unauthorized is true when the gateway refused the API key itself. */
  get unauthorized() {
    return this.status === 401;
  }
}

const NUMBERS = ['requests', 'input_tokens', 'cached_input_tokens', 'output_tokens', 'cost_usd'];

export class Api {
  /** paths: {usage, revoke}, the endpoints the page's meta tags name. */
  constructor(paths, key) {
    this.paths = paths;
    this.key = key;
  }

  /**
   * usage asks for a report: params are group_by, from, to and optionally user_id. Rows come back
   * with their counters as numbers (0 when missing) and their dimensions as strings.
   */
  async usage(params) {
    const res = await this.#call(this.#usageURL(params), { headers: { Accept: 'application/json' } });
    let body;
    try {
      body = await res.json();
    } catch {
      throw new ApiError(res.status, 'bad_response', `The gateway's answer at ${this.paths.usage} is not JSON: is usage_path set to this path?`);
    }
    const dims = String(body.group_by || params.group_by).split(',');
    const data = Array.isArray(body.data) ? body.data : [];
    return {
      groupBy: dims,
      from: body.from,
      to: body.to,
      project: body.project || null,
      rows: data.map((r) => {
        const row = {};
        for (const d of dims) row[d] = r[d] === undefined || r[d] === null ? String(r.key ?? '') : String(r[d]);
        for (const n of NUMBERS) row[n] = Number(r[n]) || 0;
        row.key = dims.length === 1 ? row[dims[0]] : dims.map((d) => row[d]).join('\u0000');
        return row;
      }),
    };
  }

  /** usageCSV fetches the same report as CSV and returns its text. */
  async usageCSV(params) {
    const res = await this.#call(this.#usageURL({ ...params, format: 'csv' }), { headers: { Accept: 'text/csv' } });
    return res.text();
  }

  /** revoke refuses every token issued so far to a user (kind "user") or a session ("session"). */
  async revoke(kind, id) {
    const res = await this.#call(this.paths.revoke, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ [`${kind}_id`]: id }),
    });
    try {
      return await res.json();
    } catch {
      return { revoked: true };
    }
  }

  #usageURL(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
    return `${this.paths.usage}?${q}`;
  }

  async #call(url, init) {
    let res;
    try {
      res = await fetch(url, {
        ...init,
        headers: { ...init.headers, Authorization: `Bearer ${this.key}` },
        cache: 'no-store',
        referrerPolicy: 'no-referrer',
      });
    } catch {
      throw new ApiError(0, 'unreachable', 'The gateway could not be reached. Check the connection, then try again.');
    }
    if (!res.ok) throw await errorOf(res, url);
    return res;
  }
}

async function errorOf(res, url) {
  let message = '';
  let code = '';
  try {
    const body = await res.json();
    message = String(body?.error?.message ?? '');
    code = String(body?.error?.code ?? '');
  } catch {
    // Not the gateway's JSON: a proxy's page or a path the gateway does not serve.
  }
  const path = url.split('?')[0];
  switch (true) {
    case res.status === 401:
      return new ApiError(401, code || 'invalid_api_key',
        'That API key was not accepted by the gateway. Check that you pasted the whole key and that it belongs to this project.');
    case res.status === 403:
      return new ApiError(403, code, `This key may not do that${message ? `: ${message}` : '.'}`);
    case res.status === 404 && !code:
      return new ApiError(404, 'not_found', `The gateway has no endpoint at ${path}: check its usage_path and revoke_path.`);
    case res.status === 429 || res.status === 503:
      return new ApiError(res.status, code, message
        ? `The gateway could not answer (${res.status}): ${message}`
        : 'The gateway is busy or cannot reach its store right now. Try again in a moment.');
    default:
      return new ApiError(res.status, code,
        `The gateway answered ${res.status}${code ? ` (${code})` : ''}${message ? `: ${message}` : ` at ${path}.`}`);
  }
}
