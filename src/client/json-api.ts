import type { ConfigJson, OutboundJson } from "../http/json-messages.js";

/**
 * The JSON side of the API (REST, SSE and WebSocket) for clients: the message types are the
 * server's own (type-only imports, nothing of the server is bundled), plus the few encodings a
 * client needs: config patches, query strings and base64.
 */

export type {
  ConfigAppliedJson,
  ConfigJson,
  DetectionJson,
  DetectionResultJson,
  ErrorJson,
  FlowControlJson,
  FrameDroppedJson,
  HazardJson,
  OutboundJson,
  PongJson,
  SessionCreatedJson,
  SessionEndedJson,
  SessionJson,
} from "../http/json-messages.js";
export type { SessionStatsJson, SubmitFrameJson } from "../http/json-resources.js";

/** Fields to change; absent fields keep their value (`classes: []` means every class). */
export type ConfigPatch = Partial<Omit<ConfigJson, "quality">> & { quality?: "HIGH" | "BALANCED" | "FAST" | "AUTO" };

/** Every message type a WebSocket or SSE client can receive. */
export type ServerMessage = OutboundJson;

/** `?fps_limit=15&enable_tracking=false&classes=pothole,crack` for the WebSocket route. */
export function configQuery(config: ConfigPatch): URLSearchParams {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(config)) {
    if (v === undefined) continue;
    q.set(k, Array.isArray(v) ? v.join(",") : String(v));
  }
  return q;
}

/** Parses one message; undefined for what is not a JSON object with a `type` (never thrown at). */
export function parseServerMessage(text: string): ServerMessage | undefined {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === "object" && v !== null && "type" in v && typeof v.type === "string" ? (v as ServerMessage) : undefined;
  } catch {
    return undefined;
  }
}

/** Standard base64 without a data: prefix, in chunks (String.fromCharCode takes limited arguments). */
export function bytesToBase64(bytes: Uint8Array): string {
  let s = "";
  const CHUNK = 0x8000;
  for (let i = 0; i < bytes.length; i += CHUNK) s += String.fromCharCode(...bytes.subarray(i, i + CHUNK));
  return btoa(s);
}

/** The WebSocket URL for an http(s) base URL. */
export function webSocketUrl(baseUrl: string, path: string, query?: URLSearchParams): string {
  const u = new URL(path, baseUrl);
  u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
  if (query) u.search = query.toString();
  return u.toString();
}
