import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import type { Logger } from "pino";
import type { NodeRequest, NodeResponse } from "../http/node-types.js";

/**
 * The browser demo at `/demo` (and `/`, which redirects there): three assets built in memory from
 * src/web/page/ on the first request — the TypeScript bundled by esbuild, the HTML and CSS read
 * as they are. Nothing is built ahead or written anywhere, so `npm start` on a fresh clone serves
 * the page, and the URL never names a file: it is looked up in a fixed table of three entries.
 */

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

export type DemoAssets = ReadonlyMap<string, Asset>;

const PAGE_DIR = new URL("./page/", import.meta.url);
export const DEMO_PATH = "/demo";

/**
 * The page talks to its own origin only (fetch, EventSource, WebSocket), plays camera streams and
 * local files through blob: URLs, and runs no inline script or style.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' blob: data:",
  "media-src 'self' blob:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

function asset(body: Buffer | Uint8Array, type: string): Asset {
  const buf = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  return { body: buf, type, etag: `"${createHash("sha256").update(buf).digest("base64url").slice(0, 22)}"` };
}

/** Bundles the page (about a second on a busy machine; done once per process). */
export async function buildDemoAssets(): Promise<DemoAssets> {
  const { build } = await import("esbuild");
  const out = await build({
    entryPoints: [fileURLToPath(new URL("main.ts", PAGE_DIR))],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    minify: true,
    write: false,
    legalComments: "none",
    logLevel: "silent",
  });
  const js = out.outputFiles[0];
  if (!js) throw new Error("esbuild produced no output");
  const [html, css] = await Promise.all([readFile(new URL("demo.html", PAGE_DIR)), readFile(new URL("demo.css", PAGE_DIR))]);
  return new Map([
    [DEMO_PATH, asset(html, "text/html; charset=utf-8")],
    [`${DEMO_PATH}/demo.js`, asset(js.contents, "text/javascript; charset=utf-8")],
    [`${DEMO_PATH}/demo.css`, asset(css, "text/css; charset=utf-8")],
  ]);
}

export interface DemoPage {
  /** Whether the path is the demo's (after the router stripped trailing slashes). */
  handles(path: string): boolean;
  serve(req: NodeRequest, res: NodeResponse, path: string): Promise<void>;
}

export function createDemoPage(opts: { logger: Logger; build?: () => Promise<DemoAssets> }): DemoPage {
  const build = opts.build ?? buildDemoAssets;
  let assets: Promise<DemoAssets> | undefined;
  const load = (): Promise<DemoAssets> => {
    assets ??= build().catch((err: unknown) => {
      // Not cached: a later request tries again (e.g. after a source file was fixed).
      assets = undefined;
      throw err;
    });
    return assets;
  };

  const plain = (res: NodeResponse, status: number, text: string, headers: Record<string, string> = {}) => {
    res.writeHead(status, { ...headers, "Content-Type": "text/plain; charset=utf-8", "Content-Length": Buffer.byteLength(text), "Cache-Control": "no-store" });
    res.end(text);
  };

  return {
    handles: (path) => path === "/" || path === DEMO_PATH || path.startsWith(`${DEMO_PATH}/`),

    async serve(req, res, path) {
      if (req.method !== "GET" && req.method !== "HEAD") {
        return plain(res, 405, `${req.method ?? ""} is not allowed on ${path}; use GET\n`, { Allow: "GET, HEAD" });
      }
      if (path === "/") {
        res.writeHead(302, { Location: DEMO_PATH, "Content-Length": 0, "Cache-Control": "no-store" });
        res.end();
        return;
      }
      let table: DemoAssets;
      try {
        table = await load();
      } catch (err) {
        opts.logger.error({ err }, "demo page build failed");
        return plain(res, 500, "the demo page could not be built; see the server log\n");
      }
      const a = table.get(path);
      if (!a) return plain(res, 404, `no demo asset ${path}\n`);
      const headers: Record<string, string | number> = {
        "Content-Type": a.type,
        ETag: a.etag,
        // Revalidate every time: the bundle changes whenever the server restarts with new code.
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
      };
      if (path === DEMO_PATH) {
        headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY;
        headers["Permissions-Policy"] = "camera=(self), microphone=(), geolocation=()";
      }
      if (req.headers["if-none-match"] === a.etag) {
        res.writeHead(304, headers);
        res.end();
        return;
      }
      res.writeHead(200, { ...headers, "Content-Length": a.body.length });
      if (req.method === "HEAD") res.end();
      else res.end(a.body);
    },
  };
}
