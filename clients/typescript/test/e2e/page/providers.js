// The providers demo page: streams one answer from the gateway with the Anthropic SDK
// (?sdk=anthropic) or the Gemini SDK (?sdk=gemini), each with a Behest token from the app's own
// /api/behest-token, and reports how it went in data attributes the test reads (as app.js does).
// ?model= asks for another model than the SDK's default.
import Anthropic from "@anthropic-ai/sdk";
import { GoogleGenAI } from "@google/genai";
import { createTokenProvider } from "@behest/client-ts";

const $ = (id) => document.getElementById(id);
const status = $("status");
const answer = $("answer");
const prompt = "Say hello to the browser.";

const tokens = createTokenProvider(async () => {
  const res = await fetch("/api/behest-token", { method: "POST" });
  if (!res.ok) throw new Error(`/api/behest-token answered ${res.status}`);
  return res.json(); // { token, ttl, sessionId, expiresAt }
});

/** Each SDK streams `prompt` through the gateway, calling onText with each piece. */
const sdks = {
  anthropic: {
    name: "Anthropic SDK",
    model: "claude-haiku-4-5",
    async stream(gatewayURL, onText) {
      const client = new Anthropic({
        apiKey: tokens.getToken, // called before each request; refreshes 60 s before expiresAt
        baseURL: `${gatewayURL}/anthropic`,
        dangerouslyAllowBrowser: true, // fine here: the token is short-lived and limited to one user
      });
      const stream = client.messages.stream({ model: this.model, max_tokens: 256, messages: [{ role: "user", content: prompt }] });
      stream.on("text", onText);
      await stream.finalMessage();
    },
  },
  gemini: {
    name: "Gemini SDK",
    model: "gemini-2.5-flash",
    async stream(gatewayURL, onText) {
      // genai takes its key as a string: a client per token.
      const ai = new GoogleGenAI({ apiKey: await tokens.getToken(), httpOptions: { baseUrl: `${gatewayURL}/gemini` } });
      for await (const chunk of await ai.models.generateContentStream({ model: this.model, contents: prompt })) {
        if (chunk.text) onText(chunk.text);
      }
    },
  },
};

function report(state, text) {
  status.dataset.state = state;
  status.textContent = text;
}

async function main() {
  const params = new URLSearchParams(location.search);
  const sdk = sdks[params.get("sdk")];
  $("page-origin").textContent = location.origin;
  $("gateway").textContent = window.BEHEST_BASE_URL;
  $("prompt").textContent = prompt;
  if (!sdk) return report("error", "Name an SDK: ?sdk=anthropic or ?sdk=gemini.");
  sdk.model = params.get("model") ?? sdk.model;
  $("sdk-name").textContent = sdk.name;
  $("model").textContent = sdk.model;
  report("running", "Getting a token…");
  try {
    const { sessionId } = await tokens.get();
    $("session").textContent = sessionId;
    report("running", "Streaming…");
    let chunks = 0;
    await sdk.stream(window.BEHEST_BASE_URL, (piece) => {
      chunks++;
      answer.textContent += piece;
      answer.dataset.chunks = String(chunks);
    });
    report("done", `Done: ${chunks} chunks streamed through the gateway with the ${sdk.name}.`);
  } catch (err) {
    status.dataset.errorName = err?.constructor?.name ?? "Error";
    if (err?.status) status.dataset.errorStatus = String(err.status);
    report("error", `${status.dataset.errorName}: ${err?.message ?? err}`);
  }
}

main();
