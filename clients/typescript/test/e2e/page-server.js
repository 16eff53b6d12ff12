// The web app of the browser tests: its pages, the SDKs' ESM builds and this package's dist
// served as they are (an import map names them), and the token route handler.
import fs from "node:fs/promises";
import { readFileSync } from "node:fs";
import { createRequire, isBuiltin } from "node:module";
import path from "node:path";
import { listen, readBody, packageDir } from "./harness.js";

const pageDir = path.join(packageDir, "test/e2e/page");
const modules = path.join(packageDir, "node_modules");
const roots = {
  "/openai/": path.join(modules, "openai"),
  "/behest/": path.join(packageDir, "dist"),
  "/anthropic-sdk/": path.join(modules, "@anthropic-ai/sdk"),
  "/otel/": path.join(modules, "@opentelemetry/api/dist"),
  // @google/genai's browser build (its package.json's "browser" condition).
  "/genai/": path.join(modules, "@google/genai/dist/web"),
};
const types = { ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".mjs": "text/javascript", ".map": "application/json" };

/**
 * The import map of providers.html: each bare name the page and the SDKs' ESM builds import, as
 * package.json's exports resolve it for a browser. The Anthropic SDK's "browser" field swaps its
 * Node-only modules for browser ones, which an import map does by URL. The CommonJS packages the
 * ESM builds import (standardwebhooks, p-retry) are served as ES modules by /cjs/.
 */
function providersImportMap() {
  const imports = {
    "@anthropic-ai/sdk": "/anthropic-sdk/index.mjs",
    "@opentelemetry/api": "/otel/index.mjs",
    "standardwebhooks": "/cjs/standardwebhooks.js",
    "@google/genai": "/genai/index.mjs",
    "p-retry": "/cjs/p-retry.js",
    "@behest/client-ts": "/behest/index.js",
  };
  const browser = JSON.parse(readFileSync(path.join(roots["/anthropic-sdk/"], "package.json"), "utf8")).browser ?? {};
  for (const [from, to] of Object.entries(browser)) {
    if (from.endsWith(".mjs")) imports[`/anthropic-sdk/${from.replace(/^\.\//, "")}`] = `/anthropic-sdk/${to.replace(/^\.\//, "")}`;
  }
  return { imports };
}

/**
 * cjsAsModule serves the CommonJS package `name` as one ES module, as a bundler would for a web
 * app: every file its require() calls reach is wrapped in a function and loaded on first
 * require, and the names of what Node's require returns become named exports beside the
 * default. A Node built-in is refused here, so the page never gets a module that cannot work.
 */
function cjsAsModule(name) {
  const entry = createRequire(path.join(packageDir, "package.json")).resolve(name);
  const files = new Map(); // path -> { src, deps: { specifier: path } }
  const visit = (file) => {
    if (files.has(file)) return;
    const src = readFileSync(file, "utf8");
    const deps = {};
    files.set(file, { src, deps });
    for (const [, spec] of src.matchAll(/\brequire\(\s*['"]([^'"]+)['"]\s*\)/g)) {
      if (isBuiltin(spec)) throw new Error(`${file} requires the Node built-in ${spec}`);
      deps[spec] = createRequire(file).resolve(spec);
      visit(deps[spec]);
    }
  };
  visit(entry);
  const names = Object.keys(createRequire(import.meta.url)(entry)).filter((k) => k !== "default" && /^[A-Za-z_$][\w$]*$/.test(k));
  const defs = [...files].map(([file, { src, deps }]) =>
    `${JSON.stringify(file)}: [${JSON.stringify(deps)}, function (module, exports, require) {\n${src}\n}]`);
  return `// ${name}, CommonJS served as an ES module by page-server.js
const defs = {
${defs.join(",\n")}
};
const cache = {};
function load(file) {
  if (cache[file]) return cache[file].exports;
  const module = (cache[file] = { exports: {} });
  const [deps, fn] = defs[file];
  fn.call(module.exports, module, module.exports, (spec) => load(deps[spec]));
  return module.exports;
}
const m = load(${JSON.stringify(entry)});
export default m;
export const { ${names.join(", ")} } = m;
`;
}

/**
 * startPageServer serves the demo app on a free port. `gatewayURL()` is read per request, since
 * the gateway starts after the app's port is known. `route` is the token route handler module.
 */
export async function startPageServer({ gatewayURL, route }) {
  return listen(async (req, res) => {
    try {
      const url = new URL(req.url, "http://page");
      if (url.pathname === "/api/behest-token") {
        const body = await readBody(req);
        const request = new Request(new URL(req.url, `http://${req.headers.host}`), {
          method: req.method,
          headers: Object.entries(req.headers).filter(([, v]) => typeof v === "string"),
          body: req.method === "GET" || req.method === "HEAD" ? undefined : body,
        });
        const handler = route[req.method];
        const response = handler ? await handler(request) : new Response(null, { status: 405 });
        res.writeHead(response.status, Object.fromEntries(response.headers));
        res.end(Buffer.from(await response.arrayBuffer()));
        return;
      }
      if (url.pathname === "/" || url.pathname === "/index.html" || url.pathname === "/providers.html") {
        const name = url.pathname === "/providers.html" ? "providers.html" : "index.html";
        const html = (await fs.readFile(path.join(pageDir, name), "utf8"))
          .replace("%BEHEST_BASE_URL%", JSON.stringify(gatewayURL()))
          .replace("%IMPORT_MAP%", () => JSON.stringify(providersImportMap(), null, 1));
        res.writeHead(200, { "Content-Type": types[".html"], "Cache-Control": "no-store" });
        res.end(html);
        return;
      }
      const cjs = /^\/cjs\/([\w@./-]+)\.js$/.exec(url.pathname);
      if (cjs && ["standardwebhooks", "p-retry"].includes(cjs[1])) {
        res.writeHead(200, { "Content-Type": types[".js"] });
        res.end(cjsAsModule(cjs[1]));
        return;
      }
      let file;
      const prefix = Object.keys(roots).find((p) => url.pathname.startsWith(p));
      if (prefix) file = safeJoin(roots[prefix], url.pathname.slice(prefix.length));
      else if (/^\/[\w-]+\.js$/.test(url.pathname)) file = path.join(pageDir, url.pathname);
      const data = file && (await fs.readFile(file).catch(() => undefined));
      if (!data) {
        res.writeHead(404, { "Content-Type": "text/plain" });
        res.end("not found");
        return;
      }
      res.writeHead(200, { "Content-Type": types[path.extname(file)] ?? "application/octet-stream" });
      res.end(data);
    } catch (err) {
      res.writeHead(500, { "Content-Type": "text/plain" });
      res.end(String(err?.stack ?? err));
    }
  });
}

function safeJoin(root, rel) {
  const p = path.resolve(root, decodeURIComponent(rel));
  return p.startsWith(root + path.sep) ? p : undefined;
}
