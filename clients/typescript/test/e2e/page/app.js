// The demo page: streams one answer from the gateway into the page and reports how it went in
// data attributes the test reads.
import { createChatClient } from "./chat.js";

const $ = (id) => document.getElementById(id);
const status = $("status");
const answer = $("answer");
const prompt = "Say hello to the browser.";

function report(state, text) {
  status.dataset.state = state;
  status.textContent = text;
}

async function main() {
  $("page-origin").textContent = location.origin;
  $("gateway").textContent = window.BEHEST_BASE_URL;
  $("prompt").textContent = prompt;
  report("running", "Getting a token…");
  try {
    const { openai, sessionId } = await createChatClient(window.BEHEST_BASE_URL);
    $("session").textContent = sessionId;
    report("running", "Streaming…");
    const stream = await openai.chat.completions.create({
      model: "gpt-4o-mini",
      stream: true,
      messages: [{ role: "user", content: prompt }],
    });
    let chunks = 0;
    for await (const chunk of stream) {
      const piece = chunk.choices[0]?.delta?.content;
      if (piece) {
        chunks++;
        answer.textContent += piece;
        answer.dataset.chunks = String(chunks);
      }
    }
    report("done", `Done: ${chunks} chunks streamed through the gateway.`);
  } catch (err) {
    status.dataset.errorName = err?.constructor?.name ?? "Error";
    report("error", `${status.dataset.errorName}: ${err?.message ?? err}`);
  }
}

main();
