import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, createRouterTransport, type Interceptor, type Transport } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Logger } from "pino";
import { refuseUntilReady, routes, unavailableRoutes, type ServiceDeps } from "./connect.js";
import { Door } from "../gen/hazard/stream/v1/session_pb.js";
import type { ConnectionLimits } from "./config.js";
import { applyConnectionLimits, createRefusalServers } from "./connection-limits.js";
import { createFront } from "./front.js";
import { trackHttp1Connections } from "./http1-connections.js";
import { closeAfterEarlyAnswer } from "./http/early-answer.js";
import { defaultHttpRoutesConfig, type HttpRoutesConfig } from "./http/http-config.js";
import type { NodeHandler } from "./http/node-types.js";
import { createHttpAdapter } from "./http/router.js";
import { metricsInterceptor } from "./metrics/metrics-interceptor.js";
import type { HazardMetrics } from "./metrics/metrics.js";
import { ApiKeys, authInterceptor } from "./rpc/auth.js";
import { doorInterceptor } from "./rpc/door-context.js";
import type { HealthState } from "./rpc/health-state.js";
import { REQUEST_ID_HEADER, requestIdFrom } from "./rpc/request-id.js";
import { requestLogInterceptor } from "./rpc/request-log.js";
import type { SessionManager } from "./streaming/session-manager.js";

export interface ServerOptions {
  health: HealthState;
  logger: Logger;
  metrics: HazardMetrics;
  /** Serve `GET /metrics` on this port too (undefined: only on the main port; see METRICS_PORT). */
  metricsPort?: number;
  maxFrameBytes: number;
  /** Why the API answers UNAVAILABLE until `serve()` (model loading, or failed to load). */
  unavailableReason: () => string;
  tls?: { cert: Buffer; key: Buffer };
  /** How long a graceful shutdown may take before remaining connections are cut. */
  shutdownTimeoutMs: number;
  /** REST/SSE/WebSocket routes; defaults derive from maxFrameBytes. */
  http?: HttpRoutesConfig;
  /** STREAMING_API_KEYS: checked by one interceptor on both routers, so on every door (none: open). */
  apiKeys?: readonly string[];
  /** Per-address connection limit and idle timeouts (absent: Node's defaults, no limit). */
  connections?: ConnectionLimits;
}

export interface HazardServer {
  /** Listens on the main port (and METRICS_PORT when set); resolves with the main address. */
  listen(port: number, host: string): Promise<AddressInfo>;
  /** The METRICS_PORT listener's address, once listening. */
  metricsAddress(): AddressInfo | undefined;
  /**
   * Starts serving the API. Until then the server listens and answers: health (NOT_SERVING),
   * reflection and metrics work, every API call is UNAVAILABLE with `unavailableReason()`.
   */
  serve(deps: ServiceDeps, sessions: SessionManager): void;
  /** Graceful shutdown: stop accepting, finish frames in flight, end streams cleanly, close. */
  close(): Promise<void>;
}

/** Builds the server without listening; only the entry point (or a test) listens. */
export function createServer(opts: ServerOptions): HazardServer {
  const shutdown = new AbortController();
  // The largest message a client may send: a maximal frame plus protobuf/JSON/base64 overhead.
  // Frames between maxFrameBytes and this get a per-frame MESSAGE_TOO_LARGE error instead of
  // ending the stream.
  const readMaxBytes = Math.ceil(opts.maxFrameBytes * 1.5) + 64 * 1024;
  const observe = (via: "network" | "http"): Interceptor[] => [
    requestLogInterceptor(opts.logger, via),
    metricsInterceptor(opts.metrics),
  ];
  // One instance for both routers: the REST, SSE and WebSocket routes forward the caller's key into
  // the in-process call, so this decides for every door. Before `extra`: a caller without a key
  // learns nothing, not even that the model is still loading.
  const auth = authInterceptor(new ApiKeys(opts.apiKeys ?? []));
  // The API is swapped in by serve(); until then both routers answer with the not-ready routes.
  const notReady = { routes: unavailableRoutes(opts.health), refuse: refuseUntilReady(opts.unavailableReason) };
  const inProcess = (r: ReturnType<typeof routes>, extra: Interceptor[] = []): Transport =>
    createRouterTransport(r, {
      // The WebSocket route is the only caller of StreamDetections through this transport. No
      // shutdownSignal here: in-process streams end with their sessions (so the final
      // session_ended still reaches SSE clients), and adapter.close() cuts whatever is left.
      router: { readMaxBytes, interceptors: [...observe("http"), auth, ...extra, doorInterceptor(Door.WEBSOCKET)] },
    });
  const network = (r: ReturnType<typeof routes>, extra: Interceptor[] = []): NodeHandler =>
    connectNodeAdapter({
      routes: r,
      readMaxBytes,
      // Connect-JSON clients read fields by name: `detections: []` and `x1: 0` must be there, not
      // left out as proto3 JSON leaves out default values.
      jsonOptions: { alwaysEmitImplicit: true },
      shutdownSignal: shutdown.signal,
      interceptors: [...observe("network"), auth, ...extra],
      grpc: true,
      grpcWeb: true,
      connect: true,
      fallback: (req, res) => {
        // Not an RPC: the REST routes' in-process calls have ids of their own.
        res.removeHeader(REQUEST_ID_HEADER);
        adapter.handleRequest(req, res);
      },
    });
  let transport = inProcess(notReady.routes, [notReady.refuse]);
  let rpc = network(notReady.routes, [notReady.refuse]);
  let sessions: SessionManager | undefined;

  // The REST, SSE and WebSocket routes call the same services through an in-process client with
  // the same limits, so every door validates, fails and counts alike. The client's transport
  // follows the swap in serve().
  const adapter = createHttpAdapter({
    ...(opts.http ?? defaultHttpRoutesConfig(opts.maxFrameBytes)),
    transport: {
      unary: (method, signal, timeoutMs, header, input, contextValues) =>
        transport.unary(method, signal, timeoutMs, header, input, contextValues),
      stream: (method, signal, timeoutMs, header, input, contextValues) =>
        transport.stream(method, signal, timeoutMs, header, input, contextValues),
    },
    logger: opts.logger,
  });
  opts.metrics.sources.subscribers = () => adapter.openStreams;

  const serveMetrics: NodeHandler = (req, res) => {
    opts.metrics.render().then(
      ({ contentType, body }) => {
        res.writeHead(200, { "Content-Type": contentType });
        if (req.method === "HEAD") res.end();
        else res.end(body);
      },
      (err: unknown) => {
        opts.logger.error({ err }, "metrics scrape failed");
        res.writeHead(500);
        res.end();
      },
    );
  };
  const isMetrics = (req: { method?: string; url?: string }) =>
    (req.method === "GET" || req.method === "HEAD") && req.url?.split("?")[0] === "/metrics";
  const api = adapter.withCors((req, res) => {
    // Every RPC answer names its request id, also when Connect refuses the call before any
    // interceptor runs (a message over readMaxBytes, malformed, badly compressed); the request log
    // interceptor takes the same id from the rewritten request header.
    const id = requestIdFrom(req.headers[REQUEST_ID_HEADER]);
    req.headers[REQUEST_ID_HEADER] = id;
    res.setHeader(REQUEST_ID_HEADER, id);
    rpc(req, res);
  });
  const handler: NodeHandler = (req, res) => {
    // With METRICS_PORT set the main (public) port does not expose metrics.
    if (opts.metricsPort === undefined && isMetrics(req)) return serveMetrics(req, res);
    api(req, res);
  };

  const h2 = http2.createServer({}, handler);
  const h2Sessions = new Set<http2.ServerHttp2Session>();
  const h2Streams = new Set<http2.ServerHttp2Stream>();
  h2.on("stream", (stream) => {
    h2Streams.add(stream);
    stream.once("close", () => h2Streams.delete(stream));
  });
  h2.on("session", (s) => {
    h2Sessions.add(s);
    opts.metrics.connections.inc({ protocol: "h2" });
    s.once("close", () => {
      h2Sessions.delete(s);
      opts.metrics.connections.dec({ protocol: "h2" });
    });
    s.on("error", () => s.destroy());
  });
  const h1 = http.createServer(closeAfterEarlyAnswer(handler));
  // Before attachUpgrades: the tracker must see an upgrade before the adapter may re-emit its socket.
  const h1Connections = trackHttp1Connections(h1, (d) => opts.metrics.connections.inc({ protocol: "http1" }, d));
  adapter.attachUpgrades(h1);
  if (opts.connections) applyConnectionLimits(h1, h2, opts.connections);
  const front = createFront({
    h2,
    h1,
    tls: opts.tls,
    maxConnectionsPerIp: opts.connections?.maxPerIp,
    refuse: opts.connections && opts.connections.maxPerIp > 0 ? createRefusalServers(opts.connections) : undefined,
    firstBytesTimeoutMs: opts.connections?.headersTimeoutMs,
  });
  const metricsServer =
    opts.metricsPort === undefined
      ? undefined
      : http.createServer((req, res) => {
          if (isMetrics(req)) return serveMetrics(req, res);
          res.writeHead(404);
          res.end();
        });

  const listenOn = (server: http.Server | typeof front.server, port: number, host: string) =>
    new Promise<AddressInfo>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        resolve(server.address() as AddressInfo);
      });
    });

  return {
    async listen(port, host) {
      const address = await listenOn(front.server, port, host);
      if (metricsServer && opts.metricsPort !== undefined) await listenOn(metricsServer, opts.metricsPort, host);
      return address;
    },

    metricsAddress() {
      return (metricsServer?.address() as AddressInfo | null) ?? undefined;
    },

    serve(deps, live) {
      transport = inProcess(routes(deps));
      rpc = network(routes(deps));
      sessions = live;
      opts.metrics.sources.sessionsByDoor = () => live.sessionsByDoor();
      opts.metrics.sources.framesInFlight = () => live.inFlight;
    },

    async close() {
      const closed = new Promise<void>((resolve) => front.server.close(() => resolve()));
      const deadline = new Promise<void>((resolve) => setTimeout(resolve, opts.shutdownTimeoutMs).unref());
      // Frames in flight finish and are delivered; frames arriving from now on are refused with
      // SERVICE_UNAVAILABLE; then every session ends with SHUTDOWN, which closes their streams
      // with a final message (WebSocket 1001, SSE session_ended) instead of an error.
      adapter.beginShutdown();
      h1Connections.closeIdle();
      await Promise.race([sessions?.shutdown() ?? Promise.resolve(), deadline]);
      shutdown.abort(new ConnectError("server is shutting down", Code.Unavailable));
      adapter.close();
      // GOAWAY: clients finish the streams they have and open no new ones on this connection.
      for (const s of h2Sessions) s.close();
      // A bidi client that never half-closes keeps its stream, and so the connection, open after the
      // response ended. As RFC 9113 §8.1 allows (and grpc-go does), such streams are reset with
      // NO_ERROR once the response's END_STREAM is out; polled only while shutting down.
      const resetDone = () => {
        for (const st of h2Streams) if (st.state.localClose && !st.state.remoteClose) st.close(http2.constants.NGHTTP2_NO_ERROR);
      };
      resetDone();
      const resetter = setInterval(resetDone, 25);
      h1Connections.closeIdle();
      metricsServer?.close();
      await Promise.race([closed, deadline]);
      clearInterval(resetter);
      front.destroyAll();
      metricsServer?.closeAllConnections();
      opts.logger.info("server closed");
    },
  };
}
