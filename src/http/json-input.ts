import { create, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import {
  ClassFilterSchema,
  ErrorCode,
  FrameSchema,
  Quality,
  SessionConfigSchema,
  type Frame,
  type SessionConfig,
} from "../../gen/hazard/stream/v1/types_pb.js";
import { apiError } from "../rpc/errors.js";
import { checkMetadata, echoableFrameId } from "../rpc/frame-limits.js";

/**
 * JSON and query-string input → protobuf messages. This module only translates types: whether a
 * value is in range is the service's decision (so every door refuses the same values with the same
 * message). A value that the protobuf field cannot even hold (a string for fps_limit, 1.5 for an
 * integer) is refused here, naming the field, with the code the service would use for that part of
 * the message: INVALID_CONFIG inside a config, INVALID_MESSAGE inside a frame.
 */

const UINT32_MAX = 0xffff_ffff;

/** The snake_case config fields of the JSON API (the document's names, plus `classes` and `quality`). */
export const CONFIG_FIELDS = [
  "fps_limit",
  "confidence_threshold",
  "iou_threshold",
  "enable_tracking",
  "max_detections",
  "classes",
  "quality",
] as const;
type ConfigField = (typeof CONFIG_FIELDS)[number];
const isConfigField = (k: string): k is ConfigField => (CONFIG_FIELDS as readonly string[]).includes(k);

export function isJsonObject(v: JsonValue | undefined): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

const configError = (field: string, message: string) => apiError(ErrorCode.INVALID_CONFIG, message, { field });
const messageError = (field: string, message: string, frameId?: string) =>
  apiError(ErrorCode.INVALID_MESSAGE, message, { field, frameId });

function describe(v: JsonValue): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "object") return "an object";
  return `${typeof v} ${JSON.stringify(v)}`;
}

function uint32(field: string, v: JsonValue): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > UINT32_MAX) {
    throw configError(field, `${field} must be a whole number, got ${describe(v)}`);
  }
  return v;
}

function double(field: string, v: JsonValue): number {
  if (typeof v !== "number" || !Number.isFinite(v)) throw configError(field, `${field} must be a number, got ${describe(v)}`);
  return v;
}

function quality(v: JsonValue): Quality {
  const name = typeof v === "string" ? v.trim().toUpperCase().replace(/^QUALITY_/, "") : "";
  const value = (Quality as unknown as Record<string, Quality | undefined>)[name];
  if (typeof value !== "number") {
    const known = Object.keys(Quality).filter((k) => Number.isNaN(Number(k)));
    throw configError("quality", `quality must be one of ${known.join(", ")}, got ${describe(v)}`);
  }
  return value;
}

/**
 * A JSON config object (`POST /stream/sessions`, `PATCH .../config`, WebSocket `config_update`) as a
 * SessionConfig patch: absent or null fields stay unset. Unknown fields are refused rather than
 * ignored, so a typo (`fps_limt`) is not silently a no-op.
 */
export function configFromJson(value: JsonValue | undefined): SessionConfig {
  const config = create(SessionConfigSchema);
  if (value === undefined || value === null) return config;
  if (!isJsonObject(value)) throw configError("config", `config must be a JSON object, got ${describe(value)}`);
  for (const [field, v] of Object.entries(value)) {
    if (!isConfigField(field)) {
      throw configError(field, `unknown config field "${field}"; known fields: ${CONFIG_FIELDS.join(", ")}`);
    }
    if (v === null) continue;
    switch (field) {
      case "fps_limit":
        config.fpsLimit = uint32(field, v);
        break;
      case "max_detections":
        config.maxDetections = uint32(field, v);
        break;
      case "confidence_threshold":
        config.confidenceThreshold = double(field, v);
        break;
      case "iou_threshold":
        config.iouThreshold = double(field, v);
        break;
      case "enable_tracking":
        if (typeof v !== "boolean") throw configError(field, `${field} must be true or false, got ${describe(v)}`);
        config.enableTracking = v;
        break;
      case "classes":
        if (!Array.isArray(v) || !v.every((c): c is string => typeof c === "string")) {
          throw configError(field, `${field} must be an array of class names, got ${describe(v)}`);
        }
        config.classFilter = create(ClassFilterSchema, { classNames: v });
        break;
      case "quality":
        config.quality = quality(v);
        break;
    }
  }
  return config;
}

const TRUE_WORDS = new Set(["", "1", "true", "yes", "on"]);
const FALSE_WORDS = new Set(["0", "false", "no", "off"]);

/** A query-string boolean; a bare `?flag` counts as true. Undefined when absent. */
export function queryBool(params: URLSearchParams, name: string, code = ErrorCode.INVALID_MESSAGE): boolean | undefined {
  const raw = params.get(name);
  if (raw === null) return undefined;
  const word = raw.trim().toLowerCase();
  if (TRUE_WORDS.has(word)) return true;
  if (FALSE_WORDS.has(word)) return false;
  throw apiError(code, `${name} must be true or false, got "${raw}"`, { field: name });
}

/** A query-string number as JSON would carry it, so the JSON rules above apply unchanged. */
function queryNumber(raw: string): JsonValue {
  const trimmed = raw.trim();
  const n = trimmed === "" ? Number.NaN : Number(trimmed);
  return Number.isFinite(n) ? n : raw;
}

/**
 * The config fields of a query string (`/stream/detection?fps_limit=15&classes=pothole,crack`) as a
 * JSON object for configFromJson. `classes` is a comma list or a repeated parameter.
 */
export function configJsonFromQuery(params: URLSearchParams): JsonObject {
  const json: JsonObject = {};
  for (const field of CONFIG_FIELDS) {
    const all = params.getAll(field);
    const raw = all[0];
    if (raw === undefined) continue;
    switch (field) {
      case "classes":
        json[field] = all.flatMap((v) => v.split(",")).map((c) => c.trim()).filter((c) => c !== "");
        break;
      case "enable_tracking": {
        const b = queryBool(params, field, ErrorCode.INVALID_CONFIG);
        json[field] = b ?? null;
        break;
      }
      case "quality":
        json[field] = raw;
        break;
      default:
        json[field] = queryNumber(raw);
    }
  }
  return json;
}

// What each byte is in base64: standard and URL-safe alphabets, padding optional and whitespace
// anywhere — what browsers, Python and the base64 CLI (76-column lines) produce. 0: not base64.
const B64_DIGIT = 1; // A-Z a-z 0-9
const B64_STANDARD = 2; // + /
const B64_URL_SAFE = 3; // - _
const B64_PAD = 4; // =
const B64_SPACE = 5; // \t \n \f \r and space
const B64_CLASS = (() => {
  const t = new Uint8Array(256);
  const set = (chars: string, k: number) => {
    for (const ch of chars) t[ch.charCodeAt(0)] = k;
  };
  set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", B64_DIGIT);
  set("+/", B64_STANDARD);
  set("-_", B64_URL_SAFE);
  set("=", B64_PAD);
  set("\t\n\f\r ", B64_SPACE);
  return t;
})();

/**
 * Whether `body` is base64 as decodeBase64 accepts it: one alphabet, not both; whitespace anywhere;
 * at most two `=`, only at the end; not 4n+1 digits. One pass over its UTF-8 bytes (any non-ASCII
 * character has bytes ≥ 0x80, which are not base64), no regex, no intermediate strings: about the
 * cost of the three regex scans and the replace it replaces (0.2-0.3 ms per 116 KB frame), and
 * linear whatever the input.
 */
function isBase64(body: string): boolean {
  const bytes = Buffer.from(body, "utf8");
  let digits = 0;
  let pads = 0;
  let standard = false;
  let urlSafe = false;
  for (let i = 0; i < bytes.length; i++) {
    const k = B64_CLASS[bytes[i] ?? 0];
    if (k === B64_DIGIT) {
      if (pads > 0) return false;
      digits++;
    } else if (k === B64_STANDARD || k === B64_URL_SAFE) {
      if (pads > 0) return false;
      if (k === B64_STANDARD) standard = true;
      else urlSafe = true;
      digits++;
    } else if (k === B64_PAD) {
      if (++pads > 2) return false;
    } else if (k !== B64_SPACE) {
      return false;
    }
  }
  return !(standard && urlSafe) && digits % 4 !== 1;
}

/**
 * canvas.toDataURL() and FileReader.readAsDataURL() produce data URLs (`data:image/jpeg;base64,…`);
 * they are accepted as sent. Parsed by hand: the regex this replaces overflowed the regex stack
 * (a RangeError, so a 500) on `data:` followed by a few million semicolons.
 */
function withoutDataUrlPrefix(text: string): string {
  if (text.slice(0, 5).toLowerCase() !== "data:") return text;
  const comma = text.indexOf(",");
  // "data:" + ";base64" is 12 characters: a comma before that cannot end the prefix.
  if (comma < 12 || text.slice(comma - 7, comma).toLowerCase() !== ";base64") return text;
  return text.slice(comma + 1);
}

/**
 * Strict base64 decoding: Buffer.from() alone silently skips invalid characters, so the text is
 * checked first; then Buffer.from() decodes it as it is (it skips the whitespace, and reads both
 * alphabets).
 */
export function decodeBase64(field: string, text: string, frameId?: string): Uint8Array {
  const body = withoutDataUrlPrefix(text);
  if (!isBase64(body)) throw messageError(field, `${field} is not valid base64`, frameId);
  const bytes = Buffer.from(body, "base64");
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * A JSON frame (`{"image_data": base64, "frame_id", "timestamp", "metadata"}`, the document's
 * format) as a Frame. Fields other than these are ignored, so a client may keep its own (e.g.
 * `type`). A missing image becomes an empty one, which the service refuses like on every door.
 */
export function frameFromJson(json: JsonObject): Frame {
  const frame = create(FrameSchema);
  const id = json.frame_id;
  if (id !== undefined && id !== null) {
    if (typeof id !== "string") throw messageError("frame_id", `frame_id must be a string, got ${describe(id)}`);
    frame.frameId = id;
  }
  const ts = json.timestamp;
  if (ts !== undefined && ts !== null) {
    if (typeof ts !== "number" || !Number.isFinite(ts)) {
      throw messageError("timestamp", `timestamp must be a number (seconds since the epoch), got ${describe(ts)}`, echoableFrameId(frame.frameId));
    }
    frame.timestamp = ts;
  }
  const meta = json.metadata;
  if (meta !== undefined && meta !== null) {
    if (!isJsonObject(meta)) throw messageError("metadata", `metadata must be a JSON object, got ${describe(meta)}`, echoableFrameId(frame.frameId));
    // Checked here as well as by the service: metadata too deep for protobuf cannot reach it, and
    // metadata too large is refused before it crosses the in-process transport.
    checkMetadata(meta, frame.frameId);
    frame.metadata = meta;
  }
  const image = json.image_data;
  if (image !== undefined && image !== null) {
    if (typeof image !== "string") {
      throw messageError("image_data", `image_data must be a base64 string, got ${describe(image)}`, echoableFrameId(frame.frameId));
    }
    frame.imageData = decodeBase64("image_data", image, echoableFrameId(frame.frameId));
  }
  return frame;
}

/** A raw image body (`Content-Type: image/*`, or a binary WebSocket message) as a Frame. */
export function frameFromBytes(bytes: Uint8Array, params?: URLSearchParams): Frame {
  const frame = create(FrameSchema, { imageData: bytes });
  const id = params?.get("frame_id");
  if (id) frame.frameId = id;
  const ts = params?.get("timestamp");
  if (ts !== null && ts !== undefined) {
    const n = queryNumber(ts);
    if (typeof n !== "number") throw messageError("timestamp", `timestamp must be a number, got "${ts}"`, frame.frameId);
    frame.timestamp = n;
  }
  return frame;
}

/**
 * Parses a JSON text; malformed JSON is a message-level error, never a dropped connection.
 * `__proto__` keys are dropped: JSON.parse makes them own properties, harmless until some code
 * copies the object with assignment (Object.assign, `obj[key] = v`), where they would replace the
 * copy's prototype. Protobuf drops them on the wire anyway, so in-process and Redis paths agree.
 */
export function parseJson(text: string): JsonValue {
  try {
    return JSON.parse(text, (key: string, value: JsonValue) => (key === "__proto__" ? undefined : value)) as JsonValue;
  } catch (err) {
    throw apiError(ErrorCode.INVALID_MESSAGE, `malformed JSON: ${(err as Error).message}`);
  }
}
