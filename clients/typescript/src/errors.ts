/**
 * BehestError is what every failure of this client throws: an error answer from the gateway
 * (OpenAI-shaped `{"error":{"message","type","param","code"}}`), a timeout, a network failure,
 * or a missing setting.
 */
export class BehestError extends Error {
  /** The HTTP status of the gateway's answer; undefined when no answer came (timeout, network, config). */
  readonly status: number | undefined;
  /** The gateway's `error.code` (e.g. `invalid_api_key`), or this client's: `timeout`, `connection_error`, `missing_api_key`, `missing_base_url`, `invalid_response`. */
  readonly code: string | null;
  /** The gateway's `error.type` (e.g. `invalid_request_error`). */
  readonly type: string | null;
  /** The request field the error is about (e.g. `ttl`), when the gateway names one. */
  readonly param: string | null;
  /** The answer's headers (e.g. `retry-after`), when there was an answer. */
  readonly headers: Headers | undefined;

  constructor(
    message: string,
    init: {
      status?: number | undefined;
      code?: string | null | undefined;
      type?: string | null | undefined;
      param?: string | null | undefined;
      headers?: Headers | undefined;
      cause?: unknown;
    } = {},
  ) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = "BehestError";
    this.status = init.status;
    this.code = init.code ?? null;
    this.type = init.type ?? null;
    this.param = init.param ?? null;
    this.headers = init.headers;
  }
}

const MAX_BODY_IN_MESSAGE = 200;

/**
 * errorFromResponse turns a non-2xx answer into a BehestError, reading the OpenAI-shaped body when
 * there is one and quoting the start of any other body.
 */
export function errorFromResponse(status: number, statusText: string, headers: Headers, body: string): BehestError {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    parsed = undefined;
  }
  const err = isRecord(parsed) && isRecord(parsed["error"]) ? parsed["error"] : undefined;
  if (err && typeof err["message"] === "string") {
    return new BehestError(err["message"], {
      status,
      code: stringOrNull(err["code"]),
      type: stringOrNull(err["type"]),
      param: stringOrNull(err["param"]),
      headers,
    });
  }
  const snippet = body.trim().slice(0, MAX_BODY_IN_MESSAGE);
  const what = `${status}${statusText ? " " + statusText : ""}`;
  return new BehestError(
    snippet ? `The Behest gateway answered ${what}: ${snippet}` : `The Behest gateway answered ${what} with no error details.`,
    { status, headers },
  );
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function stringOrNull(v: unknown): string | null {
  if (typeof v === "string") return v;
  if (typeof v === "number") return String(v);
  return null;
}
