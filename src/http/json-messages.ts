import type { JsonObject } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { Door, type Session } from "../../gen/hazard/stream/v1/session_pb.js";
import { EndReason } from "../../gen/hazard/stream/v1/session_service_pb.js";
import {
  DropReason,
  ErrorCode,
  Quality,
  type BoundingBox,
  type Detection,
  type DetectionResult,
  type FlowControl,
  type FrameDropped,
  type FrameError,
  type HazardEvent,
  type SessionConfig,
} from "../../gen/hazard/stream/v1/types_pb.js";

/**
 * The JSON messages of the REST, SSE and WebSocket doors, built field by field from the protobuf
 * messages (never by spreading them: they carry `$typeName` and bigints). Field and `type` names are
 * the seed document's; everything it does not name is an extension documented in the README.
 *
 * Boxes travel as float32, so 123.4 arrives as 123.40000152587890625: pixel values are rounded to
 * 0.1 px, confidences to 4 digits and milliseconds to 0.01 ms, which is below anything a client can
 * use and keeps the float32 noise out of the JSON.
 */

export const round = (v: number, digits: number): number => {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
};
const px = (v: number) => round(v, 1);
const ms = (v: number) => round(v, 2);
const score = (v: number) => round(v, 4);

/** Enum value names as the JSON API writes them: `ERROR_CODE_INVALID_IMAGE` → `INVALID_IMAGE`. */
export const errorCodeName = (c: ErrorCode): string => ErrorCode[c] ?? "UNSPECIFIED";
export const dropReasonName = (r: DropReason): string => DropReason[r] ?? "UNSPECIFIED";
export const endReasonName = (r: EndReason): string => EndReason[r] ?? "UNSPECIFIED";
export const doorName = (d: Door): string => Door[d] ?? "UNSPECIFIED";
export const qualityName = (q: Quality): string => Quality[q] ?? "UNSPECIFIED";

/** Seconds since the epoch, like every timestamp of the document. */
export const seconds = (t: Timestamp | undefined): number | null =>
  t === undefined ? null : round(Number(t.seconds) + t.nanos / 1e9, 3);

export type Bbox = [x1: number, y1: number, x2: number, y2: number];

export interface DetectionJson {
  bbox: Bbox;
  confidence: number;
  class_id: number;
  class_name: string;
  center_x: number;
  center_y: number;
  width: number;
  height: number;
  area: number;
  track_id?: number;
  /** With track_id: false while the track is tentative (see Detection.track_confirmed). */
  track_confirmed?: boolean;
}

function bboxOf(b: BoundingBox | undefined): Bbox {
  return [px(b?.x1 ?? 0), px(b?.y1 ?? 0), px(b?.x2 ?? 0), px(b?.y2 ?? 0)];
}

export function detectionJson(d: Detection): DetectionJson {
  const x1 = d.bbox?.x1 ?? 0;
  const y1 = d.bbox?.y1 ?? 0;
  const w = (d.bbox?.x2 ?? 0) - x1;
  const h = (d.bbox?.y2 ?? 0) - y1;
  const json: DetectionJson = {
    bbox: bboxOf(d.bbox),
    confidence: score(d.confidence),
    class_id: d.classId,
    class_name: d.className,
    center_x: px(x1 + w / 2),
    center_y: px(y1 + h / 2),
    width: px(w),
    height: px(h),
    area: px(w * h),
  };
  if (d.trackId !== undefined) {
    json.track_id = d.trackId;
    json.track_confirmed = d.trackConfirmed;
  }
  return json;
}

export interface DetectionResultJson {
  type: "detection_result";
  data: {
    frame_id: string;
    detections: DetectionJson[];
    processing_time_ms: number;
    timestamp: number;
    image_width: number;
    image_height: number;
    config_version: number;
    input_size: [width: number, height: number];
    metadata: JsonObject;
  };
}

export function detectionResultJson(r: DetectionResult): DetectionResultJson {
  return {
    type: "detection_result",
    data: {
      frame_id: r.frameId,
      detections: r.detections.map(detectionJson),
      processing_time_ms: ms(r.processingTimeMs),
      timestamp: r.timestamp,
      image_width: r.imageWidth,
      image_height: r.imageHeight,
      config_version: r.configVersion,
      input_size: [r.inputWidth, r.inputHeight],
      metadata: r.metadata ?? {},
    },
  };
}

/** The document's error format; `field` (extension) names the offending field when there is one. */
export interface ErrorJson {
  type: "error";
  error: string;
  error_code: string;
  frame_id: string | null;
  timestamp: number;
  field?: string;
}

export function errorJson(e: { message: string; code: ErrorCode; frameId?: string; field?: string; timestampSec: number }): ErrorJson {
  const json: ErrorJson = {
    type: "error",
    error: e.message,
    error_code: errorCodeName(e.code),
    frame_id: e.frameId ? e.frameId : null,
    timestamp: round(e.timestampSec, 3),
  };
  if (e.field) json.field = e.field;
  return json;
}

export const frameErrorJson = (e: FrameError): ErrorJson =>
  errorJson({ message: e.message, code: e.code, frameId: e.frameId, field: e.field, timestampSec: e.timestamp });

export interface FrameDroppedJson {
  type: "frame_dropped";
  frame_id: string;
  reason: string;
}

export const frameDroppedJson = (d: FrameDropped): FrameDroppedJson => ({
  type: "frame_dropped",
  frame_id: d.frameId,
  reason: dropReasonName(d.reason),
});

export interface FlowControlJson {
  type: "flow_control";
  allowed_fps: number;
  reason: string;
}

export const flowControlJson = (f: FlowControl): FlowControlJson => ({
  type: "flow_control",
  allowed_fps: round(f.allowedFps, 2),
  reason: f.reason,
});

export interface HazardJson {
  type: "hazard";
  data: {
    track_id: number;
    class_id: number;
    class_name: string;
    first_seen: number;
    last_seen: number;
    frames_seen: number;
    peak_confidence: number;
    peak_bbox: Bbox;
    peak_frame_id: string;
    peak_metadata: JsonObject;
  };
}

export const hazardJson = (h: HazardEvent): HazardJson => ({
  type: "hazard",
  data: {
    track_id: h.trackId,
    class_id: h.classId,
    class_name: h.className,
    first_seen: h.firstSeen,
    last_seen: h.lastSeen,
    frames_seen: h.framesSeen,
    peak_confidence: score(h.peakConfidence),
    peak_bbox: bboxOf(h.peakBbox),
    peak_frame_id: h.peakFrameId,
    peak_metadata: h.peakMetadata ?? {},
  },
});

/** A session's effective config in the document's snake_case names. */
export interface ConfigJson {
  fps_limit: number;
  confidence_threshold: number;
  iou_threshold: number;
  enable_tracking: boolean;
  max_detections: number;
  /** Reported classes; empty means all. */
  classes: string[];
  quality: string;
}

export const configJson = (c: SessionConfig | undefined): ConfigJson => ({
  fps_limit: c?.fpsLimit ?? 0,
  confidence_threshold: c?.confidenceThreshold ?? 0,
  iou_threshold: c?.iouThreshold ?? 0,
  enable_tracking: c?.enableTracking ?? false,
  max_detections: c?.maxDetections ?? 0,
  classes: [...(c?.classFilter?.classNames ?? [])],
  quality: qualityName(c?.quality ?? Quality.UNSPECIFIED),
});

/** Paths of a session's REST + SSE routes, so a client never builds them itself. */
export const sseEndpoint = (clientId: string) => `/stream/events/${encodeURIComponent(clientId)}`;
export const uploadEndpoint = (clientId: string) => `/stream/process/${encodeURIComponent(clientId)}`;

export interface SessionJson {
  client_id: string;
  /** The same id under the name other clients of the original service used. */
  session_id: string;
  sse_endpoint: string;
  upload_endpoint: string;
  config: ConfigJson;
  config_version: number;
  door: string;
  created_at: number | null;
  expires_at: number | null;
}

export const sessionJson = (s: Session): SessionJson => ({
  client_id: s.clientId,
  session_id: s.clientId,
  sse_endpoint: sseEndpoint(s.clientId),
  upload_endpoint: uploadEndpoint(s.clientId),
  config: configJson(s.config),
  config_version: s.configVersion,
  door: doorName(s.door),
  created_at: seconds(s.createdAt),
  expires_at: seconds(s.expiresAt),
});

/** WebSocket only, on request (`?session_info=true`): the session the connection runs in. */
export type SessionCreatedJson = { type: "session_created"; resumed: boolean } & SessionJson;

export const sessionCreatedJson = (s: Session, resumed: boolean): SessionCreatedJson => ({
  type: "session_created",
  resumed,
  ...sessionJson(s),
});

export interface ConfigAppliedJson {
  type: "config_applied";
  config: ConfigJson;
  config_version: number;
}

export const configAppliedJson = (s: Session): ConfigAppliedJson => ({
  type: "config_applied",
  config: configJson(s.config),
  config_version: s.configVersion,
});

export interface SessionEndedJson {
  type: "session_ended";
  reason: string;
}

export const sessionEndedJson = (reason: EndReason): SessionEndedJson => ({ type: "session_ended", reason: endReasonName(reason) });

export interface PongJson {
  type: "pong";
  timestamp: number;
}

export const pongJson = (nowMs: number): PongJson => ({ type: "pong", timestamp: round(nowMs / 1000, 3) });

/** Every message a client can receive on the WebSocket or SSE door. */
export type OutboundJson =
  | DetectionResultJson
  | ErrorJson
  | FrameDroppedJson
  | FlowControlJson
  | HazardJson
  | SessionCreatedJson
  | ConfigAppliedJson
  | SessionEndedJson
  | PongJson;
