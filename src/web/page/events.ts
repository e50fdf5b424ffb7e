import type { DetectionJson, ServerMessage, ConfigJson } from "../../client/index.js";
import { ApiError, errorCodeName, errorCodeOf } from "../../client/index.js";
import { ConnectError } from "@connectrpc/connect";
import type { WatchSessionResponse } from "../../../gen/hazard/stream/v1/session_service_pb.js";
import { DropReason, type Detection as DetectionProto, type DetectionResult } from "../../../gen/hazard/stream/v1/types_pb.js";
import { configJson } from "../../http/json-messages.js";

/**
 * What every door reports, in one shape: protobuf results (Connect, gRPC-Web) and the JSON
 * messages (WebSocket, SSE) become the same events and boxes. No DOM here.
 */

export interface Box {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
  confidence: number;
  className: string;
  trackId?: number;
  /** The track is confirmed (tentative tracks may still turn out to be one-frame noise). */
  confirmed?: boolean;
}

export type DoorEvent =
  | { kind: "result"; frameId: string; boxes: Box[]; width: number; height: number; processingMs: number; configVersion: number }
  | { kind: "error"; frameId?: string; code: string; message: string }
  | { kind: "dropped"; frameId: string; reason: string }
  | { kind: "allowance"; fps: number; reason: string }
  | { kind: "config"; config: ConfigJson; version: number }
  | { kind: "hazard"; trackId: number; className: string; framesSeen: number }
  | { kind: "closed"; reason: string };

export function boxFromJson(d: DetectionJson): Box {
  const [x1, y1, x2, y2] = d.bbox;
  return { x1, y1, x2, y2, confidence: d.confidence, className: d.class_name, ...(d.track_id === undefined ? {} : { trackId: d.track_id, confirmed: d.track_confirmed === true }) };
}

export function boxFromProto(d: DetectionProto): Box {
  const b = d.bbox;
  return {
    x1: b?.x1 ?? 0,
    y1: b?.y1 ?? 0,
    x2: b?.x2 ?? 0,
    y2: b?.y2 ?? 0,
    confidence: d.confidence,
    className: d.className,
    ...(d.trackId === undefined ? {} : { trackId: d.trackId, confirmed: d.trackConfirmed }),
  };
}

export function resultEvent(r: DetectionResult, frameId = r.frameId, configVersion = r.configVersion): DoorEvent {
  return {
    kind: "result",
    frameId,
    boxes: r.detections.map(boxFromProto),
    width: r.imageWidth,
    height: r.imageHeight,
    processingMs: r.processingTimeMs,
    configVersion,
  };
}

/** A JSON message (WebSocket, SSE) as a door event; `frameId` maps the server's id to the page's. */
export function jsonEvent(m: ServerMessage, frameId: (serverId: string) => string | undefined): DoorEvent | undefined {
  switch (m.type) {
    case "detection_result": {
      const d = m.data;
      const id = frameId(d.frame_id);
      if (id === undefined) return undefined;
      return {
        kind: "result",
        frameId: id,
        boxes: d.detections.map(boxFromJson),
        width: d.image_width,
        height: d.image_height,
        processingMs: d.processing_time_ms,
        configVersion: d.config_version,
      };
    }
    case "error": {
      const id = m.frame_id === null ? undefined : frameId(m.frame_id);
      return { kind: "error", ...(id === undefined ? {} : { frameId: id }), code: m.error_code, message: m.error };
    }
    case "frame_dropped": {
      const id = frameId(m.frame_id);
      return id === undefined ? undefined : { kind: "dropped", frameId: id, reason: m.reason };
    }
    case "flow_control":
      return { kind: "allowance", fps: m.allowed_fps, reason: m.reason };
    case "config_applied":
      return { kind: "config", config: m.config, version: m.config_version };
    case "hazard":
      return { kind: "hazard", trackId: m.data.track_id, className: m.data.class_name, framesSeen: m.data.frames_seen };
    case "session_ended":
      return { kind: "closed", reason: `session ended (${m.reason})` };
    default:
      return undefined;
  }
}

/** A WatchSession event as a door event (results keep the frame ids the page sent). */
export function watchEvent(ev: WatchSessionResponse): DoorEvent | undefined {
  const e = ev.event;
  switch (e.case) {
    case "result":
      return resultEvent(e.value);
    case "error":
      return { kind: "error", frameId: e.value.frameId, code: errorCodeName(e.value.code), message: e.value.message };
    case "dropped":
      return { kind: "dropped", frameId: e.value.frameId, reason: DropReason[e.value.reason] ?? "UNSPECIFIED" };
    case "flowControl":
      return { kind: "allowance", fps: e.value.allowedFps, reason: e.value.reason };
    case "hazard":
      return { kind: "hazard", trackId: e.value.trackId, className: e.value.className, framesSeen: e.value.framesSeen };
    case "configApplied": {
      return {
        kind: "config",
        version: e.value.configVersion,
        // The same translation the server's JSON doors use, so every door reports config alike.
        config: configJson(e.value.config),
      };
    }
    case "ended":
      return { kind: "closed", reason: "session ended" };
    default:
      return undefined;
  }
}

export function errorEvent(err: unknown, frameId: string): DoorEvent {
  if (err instanceof ApiError) return { kind: "error", frameId, code: err.code, message: err.message };
  const e = ConnectError.from(err);
  return { kind: "error", frameId, code: errorCodeName(errorCodeOf(e)), message: e.rawMessage };
}
