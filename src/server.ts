import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, createRouterTransport } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Logger } from "pino";
import { routes, type ServiceDeps } from "./connect.js";
import { Door } from "../gen/hazard/stream/v1/session_pb.js";
import { createFront } from "./front.js";
import { defaultHttpRoutesConfig, type HttpRoutesConfig } from "./http/http-config.js";
import { createHttpAdapter } from "./http/router.js";
import { doorInterceptor } from "./rpc/door-context.js";
import type { SessionManager } from "./streaming/session-manager.js";

export interface ServerOptions {
  deps: ServiceDeps;
  sessions: SessionManager;
  logger: Logger;
  tls?: { cert: Buffer; key: Buffer };
  /** How long a graceful shutdown may take before remaining connections are cut. */
  shutdownTimeoutMs: number;
  /** REST/SSE/WebSocket routes; defaults derive from deps.maxFrameBytes. */
  http?: HttpRoutesConfig;
}

export interface HazardServer {
  listen(port: number, host: string): Promise<AddressInfo>;
  /** Graceful shutdown: stop accepting, finish frames in flight, end streams cleanly, close. */
  close(): Promise<void>;
}

/** Builds the server without listening; only the entry point (or a test) listens. */
export function createServer(opts: ServerOptions): HazardServer {
  const shutdown = new AbortController();
  // The largest message a client may send: a maximal frame plus protobuf/JSON/base64 overhead.
  // Frames between maxFrameBytes and this get a per-frame MESSAGE_TOO_LARGE error instead of
  // ending the stream.
  const readMaxBytes = Math.ceil(opts.deps.maxFrameBytes * 1.5) + 64 * 1024;
  // The REST, SSE and WebSocket routes call the same services through an in-process client with
  // the same limits, so every door validates, fails and counts alike.
  const adapter = createHttpAdapter({
    ...(opts.http ?? defaultHttpRoutesConfig(opts.deps.maxFrameBytes)),
    transport: createRouterTransport(routes(opts.deps), {
      // The WebSocket route is the only caller of StreamDetections through this transport. No
      // shutdownSignal here: in-process streams end with their sessions (so the final
      // session_ended still reaches SSE clients), and adapter.close() cuts whatever is left.
      router: { readMaxBytes, interceptors: [doorInterceptor(Door.WEBSOCKET)] },
    }),
    logger: opts.logger,
  });
  const handler = adapter.withCors(
    connectNodeAdapter({
      routes: routes(opts.deps),
      readMaxBytes,
      shutdownSignal: shutdown.signal,
      grpc: true,
      grpcWeb: true,
      connect: true,
      fallback: adapter.handleRequest,
    }),
  );

  const h2 = http2.createServer({}, handler);
  const h2Sessions = new Set<http2.ServerHttp2Session>();
  h2.on("session", (s) => {
    h2Sessions.add(s);
    s.once("close", () => h2Sessions.delete(s));
    s.on("error", () => s.destroy());
  });
  const h1 = http.createServer(handler);
  adapter.attachUpgrades(h1);
  const front = createFront({ h2, h1, tls: opts.tls });

  return {
    listen(port, host) {
      return new Promise((resolve, reject) => {
        front.server.once("error", reject);
        front.server.listen(port, host, () => {
          front.server.off("error", reject);
          resolve(front.server.address() as AddressInfo);
        });
      });
    },

    async close() {
      const closed = new Promise<void>((resolve) => front.server.close(() => resolve()));
      const deadline = new Promise<void>((resolve) => setTimeout(resolve, opts.shutdownTimeoutMs).unref());
      // Frames in flight finish and are delivered; then every session ends with SHUTDOWN, which
      // closes their streams with a final message instead of an error.
      adapter.beginShutdown();
      await Promise.race([opts.sessions.shutdown(), deadline]);
      shutdown.abort(new ConnectError("server is shutting down", Code.Unavailable));
      adapter.close();
      for (const s of h2Sessions) s.close();
      h1.closeIdleConnections();
      await Promise.race([closed, deadline]);
      front.destroyAll();
      h1.closeAllConnections();
      opts.logger.info("server closed");
    },
  };
}
