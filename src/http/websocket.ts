import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { create, type JsonObject } from "@bufbuild/protobuf";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import type { Logger } from "pino";
import { WebSocket, WebSocketServer, type RawData } from "ws";
import {
  StreamDetectionsRequestSchema,
  StreamStartSchema,
  type DetectionService,
  type StreamDetectionsRequest,
  type StreamDetectionsResponse,
} from "../../gen/hazard/stream/v1/detection_service_pb.js";
import { ErrorCode, type SessionConfig } from "../../gen/hazard/stream/v1/types_pb.js";
import { apiError } from "../rpc/errors.js";
import type { CorsPolicy } from "./cors.js";
import { errorJsonOf } from "./http-errors.js";
import {
  configFromJson,
  configJsonFromQuery,
  CONFIG_FIELDS,
  frameFromBytes,
  frameFromJson,
  isJsonObject,
  parseJson,
  queryBool,
} from "./json-input.js";
import {
  configAppliedJson,
  detectionResultJson,
  flowControlJson,
  frameDroppedJson,
  frameErrorJson,
  hazardJson,
  pongJson,
  sessionCreatedJson,
  type OutboundJson,
} from "./json-messages.js";
import { RequestStream } from "./request-stream.js";

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
  cors: CorsPolicy;
  logger: Logger;
  now: () => number;
}

/** Query parameters besides the config fields. */
const FLAGS = ["client_id", "session_info", "notify"] as const;
const KNOWN_PARAMS = new Set<string>([...CONFIG_FIELDS, ...FLAGS]);

/** Requests waiting for the service, or sends waiting for the socket, beyond which reading pauses. */
const REQUEST_HIGH_WATER = 32;
const SEND_HIGH_WATER = 64;

/** Close codes (RFC 6455 §7.4.1). */
const CLOSE_NORMAL = 1000;
const CLOSE_GOING_AWAY = 1001;
const CLOSE_POLICY = 1008;
const CLOSE_INTERNAL = 1011;
const CLOSE_TRY_AGAIN = 1013;

interface ConnectionParams {
  config: SessionConfig;
  configGiven: boolean;
  clientId: string;
  sessionInfo: boolean;
  notify: boolean;
}

function parseParams(params: URLSearchParams): ConnectionParams {
  for (const name of params.keys()) {
    if (!KNOWN_PARAMS.has(name)) {
      throw apiError(ErrorCode.INVALID_MESSAGE, `unknown query parameter "${name}"; known: ${[...KNOWN_PARAMS].join(", ")}`, {
        field: name,
      });
    }
  }
  const json = configJsonFromQuery(params);
  return {
    config: configFromJson(json),
    configGiven: Object.keys(json).length > 0,
    clientId: params.get("client_id") ?? "",
    sessionInfo: queryBool(params, "session_info") ?? false,
    notify: queryBool(params, "notify") ?? false,
  };
}

function closeCodeOf(err: ConnectError): number {
  switch (err.code) {
    case Code.InvalidArgument:
    case Code.NotFound:
    case Code.Unauthenticated:
    case Code.PermissionDenied:
      return CLOSE_POLICY;
    case Code.ResourceExhausted:
      return CLOSE_TRY_AGAIN;
    case Code.Unavailable:
      return CLOSE_GOING_AWAY;
    default:
      return CLOSE_INTERNAL;
  }
}

const asBuffer = (data: RawData): Buffer =>
  Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);

/** Close reasons are limited to 123 bytes of UTF-8. */
function closeReason(text: string): string {
  const bytes = Buffer.from(text, "utf8");
  return bytes.length <= 123 ? text : bytes.subarray(0, 120).toString("utf8").replace(/\uFFFD$/, "") + "...";
}

const request = (message: StreamDetectionsRequest["message"]) => create(StreamDetectionsRequestSchema, { message });

export class WebSocketDoor {
  private readonly wss: WebSocketServer;
  private readonly open = new Set<WebSocket>();
  private shuttingDown = false;

  constructor(private readonly opts: WebSocketDoorOptions) {
    this.wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      maxPayload: opts.maxMessageBytes * 2,
      // Results are a few hundred bytes to a few kB of repetitive JSON; compressing the small ones
      // costs more CPU than the bytes are worth.
      perMessageDeflate: { threshold: 1024 },
    });
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
    const { logger, now } = this.opts;
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

    const start = create(StreamStartSchema, { clientId: params.clientId });
    if (!params.clientId) start.config = params.config;
    requests.push(request({ case: "start", value: start }));
    // A resumed session keeps its config; config parameters given with client_id change it.
    if (params.clientId && params.configGiven) requests.push(request({ case: "configUpdate", value: params.config }));

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
      const reply = this.handleMessage(bytes, isBinary);
      if (reply.request) requests.push(reply.request);
      if (reply.json) void send(reply.json);
      updatePause();
    });

    const responses = this.opts.detection.streamDetections(requests, { signal: abort.signal });
    void (async () => {
      try {
        for await (const res of responses) {
          const json = this.toJson(res, params);
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

  /** One client message → a stream request, or a direct reply (pong, or the error that makes it unusable). */
  private handleMessage(bytes: Buffer, isBinary: boolean): { request?: StreamDetectionsRequest; json?: OutboundJson } {
    const { now } = this.opts;
    let frameId: string | undefined;
    try {
      if (isBinary) return { request: request({ case: "frame", value: frameFromBytes(bytes) }) };
      const msg = parseJson(bytes.toString("utf8"));
      if (!isJsonObject(msg)) throw apiError(ErrorCode.INVALID_MESSAGE, "a message must be a JSON object with a \"type\"");
      frameId = typeof msg.frame_id === "string" ? msg.frame_id : undefined;
      switch (msg.type) {
        case "frame":
          return { request: request({ case: "frame", value: frameFromJson(msg) }) };
        case "config_update":
          return { request: request({ case: "configUpdate", value: configUpdateOf(msg) }) };
        case "ping":
          return { json: pongJson(now()) };
        default:
          throw apiError(
            ErrorCode.INVALID_MESSAGE,
            `unknown message type ${JSON.stringify(msg.type ?? null)}; expected "frame", "config_update" or "ping"`,
            { field: "type" },
          );
      }
    } catch (err) {
      return { json: errorJsonOf(err, now(), frameId) };
    }
  }

  private toJson(res: StreamDetectionsResponse, params: ConnectionParams): OutboundJson | undefined {
    const m = res.message;
    switch (m.case) {
      case "result":
        return detectionResultJson(m.value);
      case "error":
        return frameErrorJson(m.value);
      case "session":
        return params.sessionInfo ? sessionCreatedJson(m.value, params.clientId !== "") : undefined;
      case "dropped":
        return params.notify ? frameDroppedJson(m.value) : undefined;
      case "flowControl":
        return params.notify ? flowControlJson(m.value) : undefined;
      case "hazard":
        return params.notify ? hazardJson(m.value) : undefined;
      case "configApplied":
        return params.notify ? configAppliedJson(m.value) : undefined;
      default:
        return undefined;
    }
  }
}

function configUpdateOf(msg: JsonObject): SessionConfig {
  if (!isJsonObject(msg.config)) {
    throw apiError(ErrorCode.INVALID_MESSAGE, "config_update needs a \"config\" object", { field: "config" });
  }
  return configFromJson(msg.config);
}
