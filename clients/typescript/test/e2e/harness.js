// The end-to-end harness: a real Caddy with the behest plugin, in front of a fake OpenAI provider
// written here, each on a free port, with a Caddyfile written to a temp dir. Nothing is downloaded.
import { spawn, execFile } from "node:child_process";
import { promisify } from "node:util";
import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import { existsSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const packageDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const repoRoot = path.resolve(packageDir, "../..");

export const TENANT = "t_123";
export const PROJECT = "p_456";
export const PROVIDER_KEY = "sk-fake-provider-key";

/**
 * caddyBinary returns BEHEST_CADDY_BIN, or builds ./cmd/caddy of this repository once into a temp
 * dir (go's cache makes the build a no-op when nothing changed).
 */
export async function caddyBinary() {
  const fromEnv = process.env.BEHEST_CADDY_BIN;
  if (fromEnv) {
    if (!existsSync(fromEnv)) throw new Error(`BEHEST_CADDY_BIN=${fromEnv} does not exist`);
    return fromEnv;
  }
  const dir = path.join(os.tmpdir(), "behest-client-ts-e2e");
  await fs.mkdir(dir, { recursive: true });
  const bin = path.join(dir, "caddy");
  try {
    await promisify(execFile)(process.env.GO ?? "go", ["build", "-o", bin, "./cmd/caddy"], {
      cwd: repoRoot,
      timeout: 5 * 60_000,
      maxBuffer: 16 << 20,
    });
  } catch (e) {
    throw new Error(`go build ./cmd/caddy failed in ${repoRoot}:\n${e.stderr || e.message}`);
  }
  return bin;
}

/** freePort asks the OS for a free loopback port (closed again before it is handed out). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** listen starts an http.Server on a free loopback port; close() also drops open connections. */
export function listen(handler) {
  const server = http.createServer(handler);
  return new Promise((resolve, reject) => {
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = server.address().port;
      resolve({
        server,
        port,
        url: `http://127.0.0.1:${port}`,
        close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
      });
    });
  });
}

export function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

/** The words the fake provider answers with, one SSE chunk each when streaming. */
export const REPLY_PIECES = ["Hello", " from", " the", " fake", " provider", "!"];
export const REPLY = REPLY_PIECES.join("");
const USAGE = { prompt_tokens: 11, completion_tokens: REPLY_PIECES.length, total_tokens: 11 + REPLY_PIECES.length };

/**
 * startFakeProvider serves /v1/chat/completions like OpenAI: JSON, or SSE when stream is true (with
 * a usage chunk when stream_options.include_usage is set), `chunkDelayMs` apart. It records every
 * request it gets.
 */
export async function startFakeProvider({ chunkDelayMs = 30 } = {}) {
  const requests = [];
  const srv = await listen(async (req, res) => {
    const raw = await readBody(req);
    let body;
    try { body = JSON.parse(raw); } catch { body = undefined; }
    requests.push({ method: req.method, url: req.url, headers: req.headers, body, raw });
    if (req.method !== "POST" || req.url !== "/v1/chat/completions" || !body) {
      res.writeHead(404, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ error: { message: `the fake provider has no ${req.method} ${req.url}`, type: "invalid_request_error", param: null, code: "unknown_url" } }));
      return;
    }
    const id = `chatcmpl-fake${requests.length}`;
    const created = Math.floor(Date.now() / 1000);
    const model = `${body.model}-2024-07-18`;
    if (!body.stream) {
      res.writeHead(200, { "Content-Type": "application/json", "x-request-id": `req_${requests.length}` });
      res.end(JSON.stringify({
        id, object: "chat.completion", created, model,
        choices: [{ index: 0, message: { role: "assistant", content: REPLY, refusal: null }, logprobs: null, finish_reason: "stop" }],
        usage: USAGE,
      }));
      return;
    }
    const withUsage = body.stream_options?.include_usage === true;
    res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-cache", Connection: "keep-alive" });
    const send = (obj) => res.write(`data: ${JSON.stringify(obj)}\n\n`);
    const chunk = (choices, extra = {}) => ({ id, object: "chat.completion.chunk", created, model, choices, ...(withUsage ? { usage: null } : {}), ...extra });
    send(chunk([{ index: 0, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }]));
    for (const piece of REPLY_PIECES) {
      await sleep(chunkDelayMs);
      if (res.destroyed) return;
      send(chunk([{ index: 0, delta: { content: piece }, logprobs: null, finish_reason: null }]));
    }
    send(chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: "stop" }]));
    if (withUsage) send(chunk([], { usage: USAGE }));
    res.end("data: [DONE]\n\n");
  });
  return { ...srv, requests };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * caddyfile writes the contract's shape: one site with behest in front of reverse_proxy to the
 * fake provider, which gets the provider key from header_up. With `anthropicPort` and/or
 * `geminiPort` the site serves several APIs the way the contract tells operators to: behest
 * first (it recognises each API by the path's suffix), then one handle_path per prefix, each
 * reverse_proxy setting its provider's own key header, and OpenAI in the catch-all handle.
 * `prices` are extra `price` lines ("<model> <in> <out> [<cached> [<cache write>]]"), listed
 * before the `price *` default. `costPerMonth` (USD), when set, is the project's hard monthly
 * budget (`cost_per_month`).
 *
 * A trust is `{issuer, jwksURL, algorithms, authorizedParties, lines}`: without `jwksURL` the block
 * has no `jwks_url` (the gateway discovers it); `algorithms` defaults to ["RS256"], an empty list
 * writes no `algorithms` line; `lines` are raw lines added to the block ("secret …", "claim …").
 * `defaultTier` is the project's `default_tier` (default 1); `projectLines` are raw lines added to
 * the project block (an `attest` block, say).
 */
export function caddyfile({ port, providerPort, anthropicPort, geminiPort, apiKey, storageDir, corsOrigins, trust, tiers, prices = [], costPerMonth, defaultTier = 1, projectLines = [] }) {
  const trustBlocks = (trust ?? [])
    .map((t) => {
      const algorithms = t.algorithms ?? ["RS256"];
      return `
			trust ${t.issuer} {
${t.jwksURL ? `				jwks_url ${t.jwksURL}\n` : ""}${algorithms.length ? `				algorithms ${algorithms.join(" ")}\n` : ""}${t.authorizedParties ? `				authorized_parties ${t.authorizedParties.join(" ")}\n` : ""}${(t.lines ?? []).map((l) => `				${l}\n`).join("")}			}`;
    })
    .join("");
  // A tier is its requests per minute, or the lines of its block.
  const tierBlocks = Object.entries(tiers)
    .map(([name, limits]) => `
			tier ${name} {
				${typeof limits === "number" ? `requests_per_minute ${limits}` : limits}
			}`)
    .join("");
  const priceLines = prices.map((p) => `\n\t\t\tprice ${p}`).join("");
  const routes = upstreams({ providerPort, anthropicPort, geminiPort });
  return `{
	admin off
	auto_https off
	persist_config off
	storage file_system ${storageDir}
}

http://127.0.0.1:${port} {
	bind 127.0.0.1
	behest {
		issuer http://127.0.0.1:${port}
		signing_key auto
		project ${PROJECT} {
			tenant ${TENANT}
			api_key ${apiKey}
${corsOrigins.length ? `			cors_origins ${corsOrigins.join(" ")}\n` : ""}			default_tier ${defaultTier}${trustBlocks}${tierBlocks}${priceLines}${[].concat(projectLines).map((l) => `\n\t\t\t${l}`).join("")}
			price * 1.00 2.00${costPerMonth === undefined ? "" : `\n\t\t\tcost_per_month ${costPerMonth}`}
		}
	}
${routes}}
`;
}

/** upstreams writes the site's routes after behest: see caddyfile. */
function upstreams({ providerPort, anthropicPort, geminiPort }) {
  const openai = (indent) => `${indent}reverse_proxy 127.0.0.1:${providerPort} {
${indent}	header_up Authorization "Bearer ${PROVIDER_KEY}"
${indent}}
`;
  if (!anthropicPort && !geminiPort) return openai("\t");
  const prefixed = (prefix, upstreamPort, header) => `	handle_path /${prefix}/* {
		reverse_proxy 127.0.0.1:${upstreamPort} {
			header_up ${header} ${PROVIDER_KEY}
		}
	}
`;
  return (anthropicPort ? prefixed("anthropic", anthropicPort, "x-api-key") : "")
    + (geminiPort ? prefixed("gemini", geminiPort, "x-goog-api-key") : "")
    + `	handle {\n${openai("\t\t")}\t}\n`;
}

/**
 * startGateway writes a Caddyfile for `opts` (see caddyfile) into a fresh temp dir, runs
 * `caddy run` on a free port and waits until it answers. stop() ends it and removes the dir.
 */
export async function startGateway({ providerPort, anthropicPort, geminiPort, corsOrigins = [], trust = [], tiers = { 1: 1000, 2: 2 }, prices = [], costPerMonth, defaultTier, projectLines }) {
  const bin = await caddyBinary();
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "behest-e2e-"));
  const port = await freePort();
  const apiKey = `bk_test_${randomBytes(18).toString("hex")}`;
  const config = caddyfile({
    port, providerPort, anthropicPort, geminiPort, apiKey, storageDir: path.join(dir, "storage"), corsOrigins, trust, tiers, prices, costPerMonth,
    defaultTier, projectLines,
  });
  const configPath = path.join(dir, "Caddyfile");
  await fs.writeFile(configPath, config);

  const child = spawn(bin, ["run", "--config", configPath, "--adapter", "caddyfile"], {
    cwd: dir,
    // Caddy's data and config dirs (the limits database, autosave) go to the temp dir too.
    env: { ...process.env, HOME: dir, XDG_DATA_HOME: path.join(dir, "data"), XDG_CONFIG_HOME: path.join(dir, "config") },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  const keep = (d) => { log = (log + d.toString()).slice(-64 << 10); };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  let gone = false;
  exited.then(() => { gone = true; });
  const killOnExit = () => { try { child.kill("SIGKILL"); } catch { /* already gone */ } };
  process.on("exit", killOnExit);

  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    process.off("exit", killOnExit);
    if (!gone) {
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(t);
    }
    await fs.rm(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + 30_000;
  for (;;) {
    if (gone) {
      const { code, signal } = await exited;
      await stop();
      throw new Error(`caddy exited (code ${code}, signal ${signal}) before answering. Caddyfile:\n${config}\nlog:\n${log}`);
    }
    try {
      const res = await fetch(`${url}/.well-known/jwks.json`, { signal: AbortSignal.timeout(1000) });
      if (res.ok) break;
    } catch { /* not up yet */ }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`caddy did not answer on ${url} within 30 s. log:\n${log}`);
    }
    await sleep(100);
  }
  return { url, port, apiKey, config, log: () => log, stop };
}

/** gatewayHeaders returns the X-Behest-* and Authorization headers a provider request carried. */
export function gatewayHeaders(rec) {
  const h = rec.headers;
  return {
    tenant: h["x-behest-tenant-id"],
    project: h["x-behest-project-id"],
    user: h["x-behest-user-id"],
    tier: h["x-behest-tier"],
    session: h["x-behest-session-id"],
    authorization: h.authorization,
  };
}
