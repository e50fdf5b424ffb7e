import { create, type JsonObject } from "@bufbuild/protobuf";
import { Code, type ConnectError } from "@connectrpc/connect";
import {
  StreamDetectionsRequestSchema,
  StreamStartSchema,
  type StreamDetectionsRequest,
  type StreamDetectionsResponse,
} from "../../gen/hazard/stream/v1/detection_service_pb.js";
import { ErrorCode, type SessionConfig } from "../../gen/hazard/stream/v1/types_pb.js";
import { apiError } from "../rpc/errors.js";
import { echoableFrameId } from "../rpc/frame-limits.js";
import { API_KEY_PARAM } from "./credentials.js";
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

/**
 * The `/stream/detection` message protocol, translated to and from StreamDetections messages:
 * query string → the opening requests, client message → request or direct reply, response → the
 * JSON the client gets (or nothing, for what it did not ask for). No I/O here.
 */

/** Query parameters besides the config fields. */
const FLAGS = ["client_id", "session_info", "notify", API_KEY_PARAM] as const;
const KNOWN_PARAMS = new Set<string>([...CONFIG_FIELDS, ...FLAGS]);

export interface ConnectionParams {
  config: SessionConfig;
  /** Whether the query set any config field (applied as a config update to a resumed session). */
  configGiven: boolean;
  /** Resume this session instead of opening one. */
  clientId: string;
  /** Send `session_created` first. */
  sessionInfo: boolean;
  /** Send drop notices, flow control, config acknowledgements and hazard events. */
  notify: boolean;
}

/** Unknown parameters are refused: a typo (`fps_limt`) must not silently fall back to a default. */
export function parseParams(params: URLSearchParams): ConnectionParams {
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

const request = (message: StreamDetectionsRequest["message"]) => create(StreamDetectionsRequestSchema, { message });

/** The requests that open the stream: a StreamStart, then the query's config for a resumed session. */
export function openingRequests(p: ConnectionParams): StreamDetectionsRequest[] {
  if (!p.clientId) return [request({ case: "start", value: create(StreamStartSchema, { config: p.config }) })];
  // A resumed session keeps its config; config parameters given with client_id change it.
  const out = [request({ case: "start", value: create(StreamStartSchema, { clientId: p.clientId }) })];
  if (p.configGiven) out.push(request({ case: "configUpdate", value: p.config }));
  return out;
}

function configUpdateOf(msg: JsonObject): SessionConfig {
  if (!isJsonObject(msg.config)) {
    throw apiError(ErrorCode.INVALID_MESSAGE, 'config_update needs a "config" object', { field: "config" });
  }
  return configFromJson(msg.config);
}

/** One client message → a stream request, or a direct reply (pong, or the error that makes it unusable). */
export function clientMessage(
  bytes: Buffer,
  isBinary: boolean,
  nowMs: number,
): { request?: StreamDetectionsRequest; reply?: OutboundJson } {
  let frameId: string | undefined;
  try {
    if (isBinary) return { request: request({ case: "frame", value: frameFromBytes(bytes) }) };
    const msg = parseJson(bytes.toString("utf8"));
    if (!isJsonObject(msg)) throw apiError(ErrorCode.INVALID_MESSAGE, 'a message must be a JSON object with a "type"');
    frameId = typeof msg.frame_id === "string" ? echoableFrameId(msg.frame_id) : undefined;
    switch (msg.type) {
      case "frame":
        return { request: request({ case: "frame", value: frameFromJson(msg) }) };
      case "config_update":
        return { request: request({ case: "configUpdate", value: configUpdateOf(msg) }) };
      case "ping":
        return { reply: pongJson(nowMs) };
      default:
        throw apiError(
          ErrorCode.INVALID_MESSAGE,
          `unknown message type ${JSON.stringify(msg.type ?? null)}; expected "frame", "config_update" or "ping"`,
          { field: "type" },
        );
    }
  } catch (err) {
    return { reply: errorJsonOf(err, nowMs, frameId) };
  }
}

/** A stream response as the client sees it; undefined for what it did not ask for. */
export function serverMessage(res: StreamDetectionsResponse, p: ConnectionParams): OutboundJson | undefined {
  const m = res.message;
  switch (m.case) {
    case "result":
      return detectionResultJson(m.value);
    case "error":
      return frameErrorJson(m.value);
    case "session":
      return p.sessionInfo ? sessionCreatedJson(m.value, p.clientId !== "") : undefined;
    case "dropped":
      return p.notify ? frameDroppedJson(m.value) : undefined;
    case "flowControl":
      return p.notify ? flowControlJson(m.value) : undefined;
    case "hazard":
      return p.notify ? hazardJson(m.value) : undefined;
    case "configApplied":
      return p.notify ? configAppliedJson(m.value) : undefined;
    default:
      return undefined;
  }
}

/** Close codes (RFC 6455 §7.4.1). */
export const CLOSE_NORMAL = 1000;
export const CLOSE_GOING_AWAY = 1001;
export const CLOSE_POLICY = 1008;
const CLOSE_INTERNAL = 1011;
const CLOSE_TRY_AGAIN = 1013;

/** The close code for a stream that failed: the client's fault, its slowness, shutdown, or ours. */
export function closeCodeOf(err: ConnectError): number {
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

/** Close reasons are limited to 123 bytes of UTF-8. */
export function closeReason(text: string): string {
  const bytes = Buffer.from(text, "utf8");
  return bytes.length <= 123 ? text : bytes.subarray(0, 120).toString("utf8").replace(/\uFFFD$/, "") + "...";
}
