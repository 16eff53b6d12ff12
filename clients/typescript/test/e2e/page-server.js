// The web app of the browser test: its page, the openai SDK's ESM build and this package's dist
// served as they are (an import map names them), and the token route handler.
import fs from "node:fs/promises";
import path from "node:path";
import { listen, readBody, packageDir } from "./harness.js";

const pageDir = path.join(packageDir, "test/e2e/page");
const roots = {
  "/openai/": path.join(packageDir, "node_modules/openai"),
  "/behest/": path.join(packageDir, "dist"),
};
const types = { ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".mjs": "text/javascript", ".map": "application/json" };

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
      if (url.pathname === "/" || url.pathname === "/index.html") {
        const html = (await fs.readFile(path.join(pageDir, "index.html"), "utf8")).replace("%BEHEST_BASE_URL%", JSON.stringify(gatewayURL()));
        res.writeHead(200, { "Content-Type": types[".html"], "Cache-Control": "no-store" });
        res.end(html);
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
