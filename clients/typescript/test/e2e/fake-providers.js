// Fake Anthropic and Gemini providers for the end-to-end tests, beside harness.js's fake OpenAI.
// Each speaks its API's real wire format (JSON bodies and SSE streams, as the official SDKs parse
// them), records every request it gets, and refuses (in its own error shape) a request that does
// not carry the provider key the gateway's reverse_proxy sets, or that still carries a client
// credential: so a test that forgets to look at the recorded headers still fails on a leak.
import { listen, readBody, PROVIDER_KEY, REPLY_PIECES, REPLY } from "./harness.js";

export { REPLY_PIECES, REPLY };

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** One recorded request: what the provider got, after the gateway and reverse_proxy. */
function record(req, raw) {
  let body;
  try { body = JSON.parse(raw); } catch { body = undefined; }
  const url = new URL(req.url, "http://provider");
  return { method: req.method, url: req.url, path: url.pathname, query: Object.fromEntries(url.searchParams), headers: req.headers, body, raw };
}

/**
 * credentialProblem names what is wrong with the credentials a provider request carries: its own
 * key header must be exactly the provider key, and no other credential header (where a client's
 * token would travel) may be left.
 */
function credentialProblem(headers, own, others) {
  if (headers[own] !== PROVIDER_KEY) return `${own} is ${JSON.stringify(headers[own])}, not the provider key`;
  const left = others.filter((h) => headers[h] !== undefined);
  if (left.length) return `the request still carries ${left.join(", ")}`;
  return null;
}

// --- Anthropic -----------------------------------------------------------------------------

/** The model the fake Anthropic reports: the dated snapshot of the alias clients ask for. */
export const ANTHROPIC_MODEL = "claude-haiku-4-5-20251001";
/**
 * The usage the fake Anthropic reports for every message. Input is three parts (fresh, cache
 * write, cache read) so a test can see each priced at its own rate.
 */
export const ANTHROPIC_USAGE = Object.freeze({
  input_tokens: 21,
  cache_creation_input_tokens: 1000,
  cache_read_input_tokens: 4000,
  output_tokens: REPLY_PIECES.length,
});
export const ANTHROPIC_COUNT = 17; // count_tokens' answer

/**
 * startFakeAnthropic serves POST /v1/messages (JSON, or with stream:true the SSE event sequence
 * of the Messages API, `chunkDelayMs` between text deltas) and POST /v1/messages/count_tokens.
 * Set `deltaUsage = "cumulative"` on the result to have message_delta repeat the input counts
 * beside output_tokens (every field a running total), as the API also streams it; by default it
 * carries output_tokens alone. See holdStream for `hold`.
 */
export async function startFakeAnthropic({ chunkDelayMs = 20 } = {}) {
  const requests = [];
  const fake = { deltaUsage: "output", hold: null };
  const srv = await listen(async (req, res) => {
    const rec = record(req, await readBody(req));
    requests.push(rec);
    const fail = (status, type, message) => {
      res.writeHead(status, { "Content-Type": "application/json", "request-id": `req_fake_${requests.length}` });
      res.end(JSON.stringify({ type: "error", error: { type, message } }));
    };
    const problem = credentialProblem(req.headers, "x-api-key", ["authorization", "x-goog-api-key"]);
    if (problem) return fail(401, "authentication_error", `fake Anthropic: ${problem}`);
    if (req.method !== "POST" || !rec.body) return fail(404, "not_found_error", `fake Anthropic has no ${req.method} ${req.url}`);

    if (rec.path === "/v1/messages/count_tokens") {
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ input_tokens: ANTHROPIC_COUNT }));
      return;
    }
    if (rec.path !== "/v1/messages") return fail(404, "not_found_error", `fake Anthropic has no ${req.method} ${req.url}`);

    const id = `msg_fake${requests.length}`;
    const { output_tokens, ...input } = ANTHROPIC_USAGE;
    if (!rec.body.stream) {
      res.writeHead(200, { "Content-Type": "application/json", "request-id": `req_fake_${requests.length}` });
      res.end(JSON.stringify({
        id, type: "message", role: "assistant", model: ANTHROPIC_MODEL,
        content: [{ type: "text", text: REPLY }],
        stop_reason: "end_turn", stop_sequence: null,
        usage: ANTHROPIC_USAGE,
      }));
      return;
    }
    res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-cache", "request-id": `req_fake_${requests.length}` });
    const send = (data) => res.write(`event: ${data.type}\ndata: ${JSON.stringify(data)}\n\n`);
    // message_start carries the input usage and a first output count; message_delta's
    // output_tokens is the running total, as the Messages API streams it.
    send({
      type: "message_start",
      message: { id, type: "message", role: "assistant", model: ANTHROPIC_MODEL, content: [], stop_reason: null, stop_sequence: null, usage: { ...input, output_tokens: 1 } },
    });
    send({ type: "content_block_start", index: 0, content_block: { type: "text", text: "" } });
    send({ type: "ping" });
    for (const [i, text] of REPLY_PIECES.entries()) {
      await sleep(chunkDelayMs);
      if (i === 1 && fake.hold) await fake.hold;
      if (res.destroyed) return;
      send({ type: "content_block_delta", index: 0, delta: { type: "text_delta", text } });
    }
    send({ type: "content_block_stop", index: 0 });
    const deltaUsage = fake.deltaUsage === "cumulative" ? ANTHROPIC_USAGE : { output_tokens };
    send({ type: "message_delta", delta: { stop_reason: "end_turn", stop_sequence: null }, usage: deltaUsage });
    send({ type: "message_stop" });
    res.end();
  });
  return Object.assign(fake, srv, { requests });
}

// --- Gemini --------------------------------------------------------------------------------

/**
 * The usage the fake Gemini reports for a whole answer: a cached part of the prompt, and thoughts
 * beside the candidates (both output, as Gemini bills them).
 */
export const GEMINI_USAGE = Object.freeze({
  promptTokenCount: 1200,
  cachedContentTokenCount: 1000,
  candidatesTokenCount: REPLY_PIECES.length,
  thoughtsTokenCount: 20,
  totalTokenCount: 1200 + REPLY_PIECES.length + 20,
});
export const GEMINI_COUNT = 13; // countTokens' answer
export const GEMINI_EMBEDDING = Object.freeze([0.25, -0.5, 0.125, 1]);

/**
 * startFakeGemini serves POST /v1beta/models/<model>:generateContent, :streamGenerateContent
 * (?alt=sse: `data: <chunk>\r\n\r\n`, each chunk with the usage so far, the last with
 * finishReason STOP), :embedContent and :batchEmbedContents (no usage, as Gemini answers them)
 * and :countTokens. See holdStream for `hold`.
 */
export async function startFakeGemini({ chunkDelayMs = 20 } = {}) {
  const requests = [];
  const fake = { hold: null };
  const srv = await listen(async (req, res) => {
    const rec = record(req, await readBody(req));
    requests.push(rec);
    const fail = (code, status, message) => {
      res.writeHead(code, { "Content-Type": "application/json; charset=UTF-8" });
      res.end(JSON.stringify({ error: { code, message, status } }));
    };
    const problem = credentialProblem(req.headers, "x-goog-api-key", ["authorization", "x-api-key"]);
    if (problem) return fail(401, "UNAUTHENTICATED", `fake Gemini: ${problem}`);
    if (rec.query.key !== undefined) return fail(400, "INVALID_ARGUMENT", "fake Gemini: a key in the query string");
    const m = /^\/v1beta\/models\/([^/:]+):(\w+)$/.exec(rec.path);
    if (req.method !== "POST" || !m || !rec.body) return fail(404, "NOT_FOUND", `fake Gemini has no ${req.method} ${req.url}`);
    const [, model, method] = m;
    rec.model = model;
    rec.call = method;
    const responseId = `resp_fake${requests.length}`;
    const json = (obj) => {
      res.writeHead(200, { "Content-Type": "application/json; charset=UTF-8" });
      res.end(JSON.stringify(obj));
    };
    const candidate = (text, finish) => ({
      content: { parts: [{ text }], role: "model" },
      ...(finish ? { finishReason: "STOP" } : {}),
      index: 0,
    });

    switch (method) {
      case "countTokens":
        return json({ totalTokens: GEMINI_COUNT });
      case "embedContent":
        return json({ embedding: { values: GEMINI_EMBEDDING } });
      case "batchEmbedContents": // what @google/genai's models.embedContent calls on the Gemini API
        return json({ embeddings: (rec.body.requests ?? []).map(() => ({ values: GEMINI_EMBEDDING })) });
      case "generateContent":
        return json({ candidates: [candidate(REPLY, true)], usageMetadata: GEMINI_USAGE, modelVersion: model, responseId });
      case "streamGenerateContent": {
        if (rec.query.alt !== "sse") return fail(400, "INVALID_ARGUMENT", "fake Gemini streams SSE only (?alt=sse)");
        res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-cache" });
        const { candidatesTokenCount: _, totalTokenCount: __, ...prompt } = GEMINI_USAGE;
        for (const [i, text] of REPLY_PIECES.entries()) {
          if (i > 0) await sleep(chunkDelayMs);
          if (i === 1 && fake.hold) await fake.hold;
          if (res.destroyed) return;
          const last = i === REPLY_PIECES.length - 1;
          // Each chunk carries the usage so far (Gemini's counts are cumulative), the last the whole.
          const usageMetadata = last ? GEMINI_USAGE : { ...prompt, candidatesTokenCount: i + 1, totalTokenCount: prompt.promptTokenCount + prompt.thoughtsTokenCount + i + 1 };
          res.write(`data: ${JSON.stringify({ candidates: [candidate(text, last)], usageMetadata, modelVersion: model, responseId })}\r\n\r\n`);
        }
        res.end();
        return;
      }
      default:
        return fail(404, "NOT_FOUND", `fake Gemini has no method ${method}`);
    }
  });
  return Object.assign(fake, srv, { requests });
}

/**
 * holdStream makes `fake` stop each stream after its first text piece until release() is called.
 * A test releases it once the client has read that piece: so the client reads a piece while the
 * provider has not yet sent the next, which a gateway that buffered streams could never let
 * happen (the test would time out instead).
 */
export function holdStream(fake) {
  let release;
  fake.hold = new Promise((r) => { release = r; });
  return () => { fake.hold = null; release(); };
}
