import http from "node:http";
import http2 from "node:http2";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { ServerReflection as ServerReflectionV1 } from "../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionV1alpha } from "../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { DetectionService } from "../gen/hazard/stream/v1/detection_service_pb.js";
import { SessionService } from "../gen/hazard/stream/v1/session_service_pb.js";
import { ErrorCode } from "../gen/hazard/stream/v1/types_pb.js";
import type { ConnectionLimits } from "./config.js";
import { guardHttp2Session } from "./http2-session-guard.js";
import { refusalAnswer, type RefusedRequest } from "./refusal-answer.js";
import { apiError } from "./rpc/errors.js";
import { REQUEST_ID_HEADER, requestIdFrom } from "./rpc/request-id.js";

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
  h2.on("session", (session) => guardHttp2Session(session, { idleTimeoutMs: limits.http2IdleTimeoutMs }));
}

const tooMany = (max: number, requestId: string) => {
  const err = apiError(
    ErrorCode.RESOURCE_EXHAUSTED,
    `too many connections from this address (MAX_CONNECTIONS_PER_IP is ${max}); close some and retry`,
  );
  err.metadata.set("retry-after", "1");
  err.metadata.set(REQUEST_ID_HEADER, requestId);
  return err;
};

const RPC_SERVICES: ReadonlySet<string> = new Set(
  [DetectionService, SessionService, Health, ServerReflectionV1, ServerReflectionV1alpha].map((s) => s.typeName),
);

/**
 * Servers for connections over the per-address limit: every request is answered in its own
 * protocol (refusal-answer.ts) with RESOURCE_EXHAUSTED, from its headers alone, and the connection
 * is closed after it. No request body is read, let alone decompressed, and nothing else runs: a
 * refused connection costs a header parse and a few hundred bytes written.
 */
export function createRefusalServers(limits: ConnectionLimits): { h1: http.Server; h2: http2.Http2Server } {
  const answerFor = (req: RefusedRequest, requestId: string | string[] | undefined) =>
    refusalAnswer(req, tooMany(limits.maxPerIp, requestIdFrom(requestId)), RPC_SERVICES, Date.now());

  const answerH1 = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const { status, headers, body } = answerFor(
      { method: req.method, url: req.url, contentType: req.headers["content-type"] },
      req.headers[REQUEST_ID_HEADER],
    );
    // Node closes the socket once this is written (Connection: close) without reading the body.
    res.writeHead(status, { ...headers, "content-length": body.length, connection: "close" });
    res.end(body);
  };
  const h1 = http.createServer(answerH1);
  // With a listener here Node does not send "100 Continue": the body is not wanted.
  h1.on("checkContinue", answerH1);
  h1.on("upgrade", (req: http.IncomingMessage, socket) => {
    const { status, headers, body } = answerFor({ method: undefined, url: undefined, contentType: undefined }, req.headers[REQUEST_ID_HEADER]);
    const head = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join("");
    socket.end(
      Buffer.concat([
        Buffer.from(`HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ""}\r\nconnection: close\r\n${head}content-length: ${body.length}\r\n\r\n`),
        body,
      ]),
    );
  });

  const h2 = http2.createServer();
  h2.on("stream", (stream, headers) => {
    const contentType = headers["content-type"];
    const { status, headers: answer, body } = answerFor(
      { method: headers[":method"], url: headers[":path"], contentType: typeof contentType === "string" ? contentType : undefined },
      headers[REQUEST_ID_HEADER],
    );
    // The first call gets its answer; GOAWAY tells the client to open no more streams here, and
    // the session (and socket) end as soon as the streams it has are closed.
    stream.session?.close();
    // RFC 9113 §8.1: once the response is complete, RST_STREAM(NO_ERROR) asks the client to stop
    // sending the request body without failing the call; what it sent is dropped unread.
    const done = () => stream.close(http2.constants.NGHTTP2_NO_ERROR);
    stream.on("error", () => stream.destroy());
    if (body.length === 0) {
      stream.respond({ ":status": status, ...answer }, { endStream: true });
      done();
    } else {
      stream.respond({ ":status": status, ...answer, "content-length": String(body.length) });
      stream.end(body, done);
    }
  });
  h2.on("session", (session) => session.on("error", () => session.destroy()));
  applyConnectionLimits(h1, h2, limits);
  return { h1, h2 };
}
