import { randomBytes } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import type { Logger } from "pino";
import { WebSocket, WebSocketServer, type RawData } from "ws";
import type { DetectionService, StreamDetectionsRequest } from "../../gen/hazard/stream/v1/detection_service_pb.js";
import { ErrorCode } from "../../gen/hazard/stream/v1/types_pb.js";
import { apiError } from "../rpc/errors.js";
import type { CorsPolicy } from "./cors.js";
import { credentialHeaders } from "./credentials.js";
import { errorJsonOf } from "./http-errors.js";
import type { OutboundJson } from "./json-messages.js";
import { RequestStream } from "./request-stream.js";
import {
  CLOSE_GOING_AWAY,
  CLOSE_NORMAL,
  CLOSE_POLICY,
  clientMessage,
  closeCodeOf,
  closeReason,
  openingRequests,
  parseParams,
  serverMessage,
  type ConnectionParams,
} from "./ws-protocol.js";

/**
 * `/stream/detection`: the document's WebSocket protocol over DetectionService.StreamDetections,
 * called in process. The connection is one bidi stream: `frame` and `config_update` messages
 * become stream requests, responses become `detection_result` / `error` JSON.
 *
 * The document's Python client takes the first message after its frame as the result, so by
 * default nothing is sent unprompted: `session_created` only with `?session_info=true`; drop
 * notices, flow control, config acknowledgements and hazard events only with `?notify=true`.
 */

export interface WebSocketDoorOptions {
  detection: Client<typeof DetectionService>;
  /** Largest message answered with a MESSAGE_TOO_LARGE error; twice this closes the connection (1009). */
  maxMessageBytes: number;
  /** WebSocket ping interval; a peer that has not answered the previous ping is terminated. */
  pingIntervalMs: number;
  /** Offer permessage-deflate (WS_PERMESSAGE_DEFLATE); off unless set. */
  perMessageDeflate?: boolean;
  cors: CorsPolicy;
  logger: Logger;
  now: () => number;
}

/** Requests waiting for the service, or sends waiting for the socket, beyond which reading pauses. */
const REQUEST_HIGH_WATER = 32;
const SEND_HIGH_WATER = 64;

const asBuffer = (data: RawData): Buffer =>
  Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);

export class WebSocketDoor {
  private readonly wss: WebSocketServer;
  private readonly open = new Set<WebSocket>();
  private shuttingDown = false;

  constructor(private readonly opts: WebSocketDoorOptions) {
    this.wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      maxPayload: opts.maxMessageBytes * 2,
      // Off unless asked for: browsers and `ws` deflate every message once it is negotiated, and
      // frames (JPEG, or its base64) do not compress — measured 3-6 ms more CPU per frame on each
      // side. Results are small. Where it is on, messages under 1 kB are still sent as they are.
      perMessageDeflate: opts.perMessageDeflate === true ? { threshold: 1024 } : false,
    });
  }

  /** Open connections (for the metrics). */
  get openCount(): number {
    return this.open.size;
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.shuttingDown) {
      socket.end("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
      return;
    }
    if (!this.opts.cors.allowsWebSocket(req.headers.origin, req.headers.host)) {
      socket.end("HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.serve(ws, req));
  }

  /**
   * Server shutdown, first step: no new connections; streams that end from now on (their sessions
   * end with SHUTDOWN once frames in flight are answered) close with 1001 instead of 1000.
   */
  beginShutdown(): void {
    this.shuttingDown = true;
  }

  /** Server shutdown, last step: closes whatever is still open with 1001. */
  close(): void {
    this.shuttingDown = true;
    for (const ws of this.open) ws.close(CLOSE_GOING_AWAY, "server shutting down");
  }

  private serve(ws: WebSocket, req: IncomingMessage): void {
    const { now } = this.opts;
    // One id for the connection and its in-process StreamDetections call, so their log lines join.
    const reqId = randomBytes(8).toString("hex");
    const logger = this.opts.logger.child({ reqId, door: "WEBSOCKET" });
    this.open.add(ws);
    const requests = new RequestStream<StreamDetectionsRequest>();
    const abort = new AbortController();
    let outstandingSends = 0;
    let alive = true;

    const updatePause = () => {
      if (requests.length > REQUEST_HIGH_WATER || outstandingSends > SEND_HIGH_WATER) ws.pause();
      else ws.resume();
    };
    requests.onTake = updatePause;

    /** Sends in call order; resolves once the message is handed to the socket. */
    const send = (json: OutboundJson): Promise<void> =>
      new Promise((resolve) => {
        if (ws.readyState !== WebSocket.OPEN) return resolve();
        outstandingSends++;
        updatePause();
        ws.send(JSON.stringify(json), () => {
          outstandingSends--;
          updatePause();
          resolve();
        });
      });
    const sendError = (err: unknown, frameId?: string) => void send(errorJsonOf(err, now(), frameId));

    const pinger = setInterval(() => {
      if (!alive) {
        ws.terminate();
        return;
      }
      alive = false;
      ws.ping();
    }, this.opts.pingIntervalMs);
    ws.on("pong", () => (alive = true));

    ws.on("close", () => {
      clearInterval(pinger);
      this.open.delete(ws);
      abort.abort();
      requests.end();
    });
    // Protocol errors (bad frames, over maxPayload) close the socket themselves; nothing to add.
    ws.on("error", (err) => logger.debug({ err }, "WebSocket error"));

    let params: ConnectionParams;
    try {
      params = parseParams(new URL(req.url ?? "/", "http://localhost").searchParams);
    } catch (err) {
      void send(errorJsonOf(err, now())).then(() => ws.close(CLOSE_POLICY, "invalid query parameters"));
      return;
    }

    for (const r of openingRequests(params)) requests.push(r);

    ws.on("message", (data, isBinary) => {
      const bytes = asBuffer(data);
      if (bytes.length > this.opts.maxMessageBytes) {
        sendError(
          apiError(
            ErrorCode.MESSAGE_TOO_LARGE,
            `message is ${bytes.length} bytes; the limit is ${this.opts.maxMessageBytes} (MAX_WS_MESSAGE_BYTES)`,
          ),
        );
        return;
      }
      const { request, reply } = clientMessage(bytes, isBinary, now());
      if (request) requests.push(request);
      if (reply) void send(reply);
      updatePause();
    });

    const responses = this.opts.detection.streamDetections(requests, {
      signal: abort.signal,
      // The caller's key (header or ?api_key=) goes with the call: the services' interceptor decides.
      headers: { ...credentialHeaders(req, new URL(req.url ?? "/", "http://localhost").searchParams), "x-request-id": reqId },
    });
    void (async () => {
      try {
        for await (const res of responses) {
          const json = serverMessage(res, params);
          if (json) await send(json);
        }
        // The stream ended without error: the session ended (deleted, expired, server shutdown).
        if (this.shuttingDown) ws.close(CLOSE_GOING_AWAY, "server shutting down");
        else ws.close(CLOSE_NORMAL, "session ended");
      } catch (err) {
        if (abort.signal.aborted) return;
        const e = ConnectError.from(err);
        if (e.code === Code.Internal || e.code === Code.Unknown) logger.error({ err }, "WebSocket stream failed");
        await send(errorJsonOf(err, now()));
        ws.close(closeCodeOf(e), closeReason(e.rawMessage));
      }
    })();
  }
}
