import { cors as connectCors } from "@connectrpc/connect";
import type { NodeHandler, NodeRequest, NodeResponse } from "./node-types.js";

/**
 * CORS for browser origins on every HTTP route: Connect and gRPC-Web RPCs, REST and SSE. Only the
 * origins listed in CORS_ORIGINS get CORS headers; `*` allows any origin, and only when configured.
 * By default nothing is listed, so browsers may only call from the service's own origin. (Connect's
 * handler does not answer preflight requests itself, hence the wrapper around it.)
 */

/** Methods of the REST routes besides Connect's GET and POST. */
const ALLOWED_METHODS = [...new Set([...connectCors.allowedMethods, "GET", "POST", "PATCH", "DELETE"])];
/**
 * `Last-Event-ID`: sent by a resuming EventSource (or a polyfill), which must not fail a preflight.
 * `Authorization`, `X-Api-Key`: API keys (STREAMING_API_KEYS) from browser code.
 */
const ALLOWED_HEADERS = [...connectCors.allowedHeaders, "Last-Event-ID", "Authorization", "X-Api-Key"];
const EXPOSED_HEADERS = [...connectCors.exposedHeaders, "Location"];
/** Browsers cap this anyway (Chromium: 2 h); it saves a preflight per request. */
const PREFLIGHT_MAX_AGE_S = 7200;

export interface CorsPolicy {
  /** The Access-Control-Allow-Origin value for this origin, or undefined when it is not allowed. */
  allowOrigin(origin: string): string | undefined;
  /** Whether a WebSocket upgrade from this origin (or none) may proceed. */
  allowsWebSocket(origin: string | undefined, host: string | undefined): boolean;
}

function sameOrigin(origin: string, host: string | undefined): boolean {
  try {
    return host !== undefined && new URL(origin).host === host.toLowerCase();
  } catch {
    return false;
  }
}

export function createCorsPolicy(origins: readonly string[]): CorsPolicy {
  const anyOrigin = origins.includes("*");
  const listed = new Set(origins.map((o) => o.toLowerCase()));
  const allowOrigin = (origin: string) => (anyOrigin ? "*" : listed.has(origin.toLowerCase()) ? origin : undefined);
  return {
    allowOrigin,
    // WebSocket upgrades are not subject to CORS, so the same list guards them against cross-site
    // hijacking: clients without an Origin header (not browsers) and same-origin pages always pass.
    allowsWebSocket: (origin, host) => origin === undefined || sameOrigin(origin, host) || allowOrigin(origin) !== undefined,
  };
}

function header(req: NodeRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Answers preflight requests and adds CORS headers to responses for allowed origins. */
export function withCors(handler: NodeHandler, policy: CorsPolicy): NodeHandler {
  return (req: NodeRequest, res: NodeResponse) => {
    const origin = header(req, "origin");
    const allowed = origin === undefined ? undefined : policy.allowOrigin(origin);
    if (allowed !== undefined) {
      res.setHeader("Access-Control-Allow-Origin", allowed);
      if (allowed !== "*") res.setHeader("Vary", "Origin");
    }
    const isPreflight = req.method === "OPTIONS" && origin !== undefined && header(req, "access-control-request-method") !== undefined;
    if (!isPreflight) {
      if (allowed !== undefined) res.setHeader("Access-Control-Expose-Headers", EXPOSED_HEADERS.join(", "));
      handler(req, res);
      return;
    }
    if (allowed === undefined) {
      res.writeHead(403, { "Content-Type": "text/plain; charset=utf-8" });
      res.end("origin not allowed (CORS_ORIGINS)\n");
      return;
    }
    res.writeHead(204, {
      "Access-Control-Allow-Methods": ALLOWED_METHODS.join(", "),
      "Access-Control-Allow-Headers": ALLOWED_HEADERS.join(", "),
      "Access-Control-Max-Age": String(PREFLIGHT_MAX_AGE_S),
      "Content-Length": "0",
    });
    res.end();
  };
}
