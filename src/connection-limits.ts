import http from "node:http";
import http2 from "node:http2";
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { ServerReflection as ServerReflectionV1 } from "../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionV1alpha } from "../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { DetectionService } from "../gen/hazard/stream/v1/detection_service_pb.js";
import { SessionService } from "../gen/hazard/stream/v1/session_service_pb.js";
import { ErrorCode } from "../gen/hazard/stream/v1/types_pb.js";
import type { ConnectionLimits } from "./config.js";
import { httpErrorOf } from "./http/http-errors.js";
import { sendJson } from "./http/reply.js";
import { apiError } from "./rpc/errors.js";

/**
 * Connection-level limits: idle timeouts of the HTTP/1.1 and HTTP/2 servers, and the servers that
 * turn away connections over MAX_CONNECTIONS_PER_IP (front.ts counts them).
 */

/** Node's defaults (60 s headers, 300 s request, no HTTP/2 idle limit, 2^32-1 streams) are generous to slow or idle peers. */
export function applyConnectionLimits(h1: http.Server, h2: http2.Http2Server, limits: ConnectionLimits): void {
  h1.headersTimeout = limits.headersTimeoutMs;
  h1.requestTimeout = limits.requestTimeoutMs;
  h1.keepAliveTimeout = limits.keepAliveTimeoutMs;
  // Node enforces the header and request timeouts from a periodic check (30 s apart by default)
  // that it starts on 'listening'. This server never listens (the front hands it its sockets), so
  // without the event neither timeout would ever fire: a slowloris could hold connections open.
  Object.assign(h1, { connectionsCheckingInterval: Math.min(30_000, Math.ceil(limits.headersTimeoutMs / 2)) });
  h1.emit("listening");
  h2.updateSettings({ maxConcurrentStreams: limits.http2MaxConcurrentStreams });
  h2.on("session", (session) => {
    // Only a connection with nothing open is idle: a quiet bidi stream (a camera pausing) or a
    // watch between keepalives is not. Node's session timeout counts bytes, not streams.
    let open = 0;
    session.on("stream", (stream) => {
      open++;
      stream.once("close", () => open--);
    });
    // GOAWAY, not a reset: clients reconnect on their next call without an error.
    session.setTimeout(limits.http2IdleTimeoutMs, () => {
      if (open === 0 && !session.closed && !session.destroyed) session.close();
    });
  });
}

const tooMany = (max: number) =>
  apiError(
    ErrorCode.RESOURCE_EXHAUSTED,
    `too many connections from this address (MAX_CONNECTIONS_PER_IP is ${max}); close some and retry`,
  );

/**
 * Servers for connections over the per-address limit: every request is answered in its own
 * protocol — RESOURCE_EXHAUSTED for gRPC, gRPC-Web and Connect (through connect-node, so the
 * encoding is right), 429 with the error JSON for the REST, SSE and WebSocket routes — and the
 * connection is closed after it. The services are registered without implementations: the
 * interceptor answers before any would run.
 */
export function createRefusalServers(limits: ConnectionLimits): { h1: http.Server; h2: http2.Http2Server } {
  const refuse: Interceptor = () => async () => {
    throw tooMany(limits.maxPerIp);
  };
  const routes = (router: ConnectRouter) => {
    for (const service of [DetectionService, SessionService, Health, ServerReflectionV1, ServerReflectionV1alpha]) {
      router.service(service, {});
    }
  };
  const handler = connectNodeAdapter({
    routes,
    interceptors: [refuse],
    fallback: (_req, res) => {
      const { status, body } = httpErrorOf(tooMany(limits.maxPerIp), Date.now());
      sendJson(res, status, body, { "Retry-After": "1" });
    },
  });

  const h1 = http.createServer((req, res) => {
    res.setHeader("Connection", "close");
    handler(req, res);
  });
  h1.on("upgrade", (_req, socket) => {
    const { body } = httpErrorOf(tooMany(limits.maxPerIp), Date.now());
    const text = JSON.stringify(body);
    socket.end(
      `HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\nRetry-After: 1\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`,
    );
  });
  const h2 = http2.createServer({}, handler);
  // The first call gets its answer; GOAWAY tells the client to open no more streams here.
  h2.on("session", (session) => {
    session.once("stream", () => session.close());
    session.on("error", () => session.destroy());
  });
  applyConnectionLimits(h1, h2, limits);
  return { h1, h2 };
}
