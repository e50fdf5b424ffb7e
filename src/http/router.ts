import type { IncomingMessage, Server as HttpServer } from "node:http";
import type { Duplex } from "node:stream";
import { createClient, type Transport } from "@connectrpc/connect";
import type { Logger } from "pino";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { DetectionService } from "../../gen/hazard/stream/v1/detection_service_pb.js";
import { SessionService } from "../../gen/hazard/stream/v1/session_service_pb.js";
import { ErrorCode } from "../../gen/hazard/stream/v1/types_pb.js";
import { createCorsPolicy, withCors } from "./cors.js";
import { credentialHeaders } from "./credentials.js";
import type { HttpRoutesConfig } from "./http-config.js";
import { httpErrorOf } from "./http-errors.js";
import { errorJson } from "./json-messages.js";
import type { NodeHandler, NodeRequest, NodeResponse } from "./node-types.js";
import { sendJson, sendJsonAndClose } from "./reply.js";
import { createRestRoutes, type RestRoute } from "./rest-routes.js";
import { serveSse } from "./sse.js";
import { WebSocketDoor } from "./websocket.js";
import { createDemoPage } from "../web/demo-page.js";

/**
 * The HTTP adapter: the document's REST, SSE and WebSocket routes as a thin translation layer over
 * the Connect services, which it calls through an in-process client (`transport`, built with
 * createRouterTransport from the same routes the server serves). It owns paths, JSON shapes and
 * HTTP statuses; nothing about sessions, frames or limits.
 */

export interface HttpAdapterOptions extends HttpRoutesConfig {
  /** In-process transport to the service implementation. */
  transport: Transport;
  logger: Logger;
  now?: () => number;
}

export interface HttpAdapter {
  /** For connectNodeAdapter's `fallback`: every request that is not an RPC. */
  handleRequest: NodeHandler;
  /** Wraps the server's whole handler (RPCs included) with CORS. */
  withCors(handler: NodeHandler): NodeHandler;
  /** Serves WebSocket upgrades (and only those) on an HTTP/1.1 server. */
  attachUpgrades(server: HttpServer): void;
  /** Shutdown, first step: refuse new streams; streams that end now close as "going away". */
  beginShutdown(): void;
  /** Shutdown, last step: ends whatever SSE and WebSocket streams are still open. */
  close(): void;
  /** Open WebSocket connections and SSE streams (read by the metrics at scrape time). */
  readonly openStreams: { websocket: number; sse: number };
}

interface Route {
  pattern: RegExp;
  methods: Partial<Record<string, RestRoute>>;
}

const WS_PATH = "/stream/detection";
/** How long SSE streams may take to send their final event once the server is closing. */
const CLOSE_GRACE_MS = 1000;

export function createHttpAdapter(opts: HttpAdapterOptions): HttpAdapter {
  const now = opts.now ?? Date.now;
  const logger = opts.logger;
  const sessions = createClient(SessionService, opts.transport);
  const detection = createClient(DetectionService, opts.transport);
  const cors = createCorsPolicy(opts.corsOrigins);
  const shutdown = new AbortController();
  const health = createClient(Health, opts.transport);
  const demo = createDemoPage({ logger });
  const rest = createRestRoutes({ sessions, health, maxRequestBytes: opts.maxRequestBytes, now });
  const ws = new WebSocketDoor({
    detection,
    maxMessageBytes: opts.maxWsMessageBytes,
    pingIntervalMs: opts.wsPingIntervalMs,
    perMessageDeflate: opts.wsPerMessageDeflate ?? false,
    cors,
    logger,
    now,
  });

  let closing = false;
  let sseOpen = 0;
  const sse: RestRoute = async ({ req, res, clientId, query, call }) => {
    if (closing) {
      sendJson(res, 503, errorJson({ message: "server is shutting down", code: ErrorCode.SERVICE_UNAVAILABLE, timestampSec: now() / 1000 }));
      return;
    }
    sseOpen++;
    try {
      await serveSse(req, res, clientId, query, {
        sessions,
        call,
        retryMs: opts.sseRetryMs ?? 3000,
        logger,
        now,
        shutdown: shutdown.signal,
        closing: () => closing,
      });
    } finally {
      sseOpen--;
    }
  };
  const upgradeRequired: RestRoute = async ({ res }) => {
    sendJson(
      res,
      426,
      errorJson({
        message: `${WS_PATH} is a WebSocket endpoint: connect with a WebSocket client (ws://host${WS_PATH})`,
        code: ErrorCode.INVALID_MESSAGE,
        timestampSec: now() / 1000,
      }),
      { Upgrade: "websocket" },
    );
  };

  const ID = "([^/]+)";
  const routes: Route[] = [
    { pattern: /^\/stream\/sessions$/, methods: { POST: rest.createSession } },
    { pattern: new RegExp(`^/stream/sessions/${ID}$`), methods: { GET: rest.getSession, DELETE: rest.deleteSession } },
    { pattern: new RegExp(`^/stream/sessions/${ID}/stats$`), methods: { GET: rest.sessionStats } },
    { pattern: new RegExp(`^/stream/sessions/${ID}/config$`), methods: { PATCH: rest.updateConfig } },
    { pattern: new RegExp(`^/stream/process/${ID}$`), methods: { POST: rest.submitFrame } },
    { pattern: new RegExp(`^/stream/events/${ID}$`), methods: { GET: sse } },
    { pattern: /^\/stream\/health$/, methods: { GET: rest.health } },
    { pattern: /^\/stream\/stats$/, methods: { GET: rest.serviceStats } },
    { pattern: /^\/stream\/detection$/, methods: { GET: upgradeRequired } },
  ];

  const fail = (res: NodeResponse, status: number, message: string, headers = {}) =>
    sendJson(res, status, errorJson({ message, code: ErrorCode.INVALID_MESSAGE, timestampSec: now() / 1000 }), headers);

  async function dispatch(req: NodeRequest, res: NodeResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    const path = trimTrailingSlashes(url.pathname) || "/";
    if (!path.startsWith("/stream/")) {
      if (demo.handles(path)) return demo.serve(req, res, path);
      // Neither an RPC nor one of ours: answer like connect-node's own fallback.
      res.writeHead(404);
      res.end();
      return;
    }
    for (const route of routes) {
      const match = route.pattern.exec(path);
      if (!match) continue;
      const handler = route.methods[req.method ?? ""];
      if (!handler) {
        const allow = Object.keys(route.methods).join(", ");
        return fail(res, 405, `${req.method} is not allowed on ${path}; use ${allow}`, { Allow: allow });
      }
      let clientId = "";
      try {
        clientId = decodeURIComponent(match[1] ?? "");
      } catch {
        return fail(res, 400, "the client_id in the path is not valid percent-encoding");
      }
      try {
        await handler({ req, res, clientId, query: url.searchParams, call: { headers: credentialHeaders(req, url.searchParams) } });
      } catch (err) {
        const { status, body } = httpErrorOf(err, now());
        // 503 (not ready, shutting down, Redis down) is logged as a warning by the RPC's own log line.
        if (status >= 500 && status !== 503) logger.error({ err, path }, "HTTP route failed");
        // A body left unread (too large) is not drained: the connection closes after the answer.
        if (req.complete) sendJson(res, status, body);
        else sendJsonAndClose(req, res, status, body);
      }
      return;
    }
    fail(res, 404, `no route ${req.method} ${path}`);
  }

  return {
    handleRequest(req, res) {
      dispatch(req, res).catch((err: unknown) => {
        logger.error({ err }, "HTTP adapter failed");
        if (!res.headersSent) fail(res, 500, "internal error");
        else res.end();
      });
    },
    withCors: (handler) => withCors(handler, cors),
    attachUpgrades(server) {
      server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
        if ((req.headers.upgrade ?? "").toLowerCase() !== "websocket") {
          serveWithoutUpgrade(server, req, socket, head);
          return;
        }
        if (new URL(req.url ?? "/", "http://localhost").pathname !== WS_PATH) {
          socket.end("HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
          return;
        }
        ws.handleUpgrade(req, socket, head);
      });
    },
    get openStreams() {
      return { websocket: ws.openCount, sse: sseOpen };
    },
    beginShutdown() {
      closing = true;
      ws.beginShutdown();
    },
    close() {
      // Streams whose sessions just ended are still writing their last results and events (and
      // then close themselves: WebSocket 1001, SSE session_ended); give them a moment before
      // cutting what is left (the server's shutdown deadline bounds this anyway).
      setTimeout(() => {
        ws.close();
        shutdown.abort();
      }, CLOSE_GRACE_MS).unref();
    },
  };
}

/**
 * With an 'upgrade' listener, Node hands every request with an Upgrade header to it, including
 * `curl --http2` asking for h2c (which we do not offer: h2c is served with prior knowledge). Such a
 * request is an ordinary HTTP/1.1 request too, and RFC 9110 lets a server ignore Upgrade: so it is
 * written back without the upgrade headers and the socket handed to the server as a new
 * connection, which parses and serves it as if no listener existed.
 */
function serveWithoutUpgrade(server: HttpServer, req: IncomingMessage, socket: Duplex, head: Buffer): void {
  const hopByHop = new Set(["upgrade", "http2-settings"]);
  const lines = [`${req.method ?? "GET"} ${req.url ?? "/"} HTTP/${req.httpVersion}`];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i] ?? "";
    let value = req.rawHeaders[i + 1] ?? "";
    const lower = name.toLowerCase();
    if (hopByHop.has(lower)) continue;
    if (lower === "connection") {
      value = value
        .split(",")
        .map((t) => t.trim())
        .filter((t) => t !== "" && !hopByHop.has(t.toLowerCase()))
        .join(", ");
      if (value === "") continue;
    }
    lines.push(`${name}: ${value}`);
  }
  socket.unshift(Buffer.concat([Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "latin1"), head]));
  server.emit("connection", socket);
}

/**
 * `/a///` → `/a`. Not `replace(/\/+$/, "")`: on a path of many slashes followed by anything else
 * that regex backtracks quadratically (~90 ms of event loop for a 16 KB request line).
 */
export function trimTrailingSlashes(path: string): string {
  let end = path.length;
  while (end > 0 && path.charCodeAt(end - 1) === 0x2f) end--;
  return path.slice(0, end);
}
