import { create, type JsonObject } from "@bufbuild/protobuf";
import {
  BoundingBoxSchema,
  DetectionResultSchema,
  DetectionSchema,
  ErrorCode,
  FrameErrorSchema,
  HazardEventSchema,
  TimingsSchema,
  type HazardEvent,
  type DetectionResult,
  type Frame,
  type FrameError,
} from "../../gen/hazard/stream/v1/types_pb.js";
import { PipelineError, type DetectOptions, type FrameDetections } from "../pipeline/types.js";
import type { TrackSummary } from "../tracking/types.js";
import type { EffectiveConfig } from "./session-config.js";
import type { ReportedDetection } from "./session-tracking.js";

/** Pipeline options for a session config, with the class filter resolved to the model's class ids. */
export function detectOptionsFor(config: EffectiveConfig, classNames: readonly string[]): DetectOptions {
  const options: DetectOptions = {
    confidenceThreshold: config.confidenceThreshold,
    iouThreshold: config.iouThreshold,
    maxDetections: config.maxDetections,
  };
  if (config.classNames.length > 0) {
    options.classIds = new Set(config.classNames.map((n) => classNames.indexOf(n)).filter((i) => i >= 0));
  }
  return options;
}

export function toDetectionResult(
  frame: Frame,
  found: FrameDetections,
  extra: { configVersion: number; queueMs: number; receivedAtMs: number; detections?: readonly ReportedDetection[]; trackingMs?: number },
): DetectionResult {
  const t = found.timings;
  const postprocessMs = t.postprocessMs + (extra.trackingMs ?? 0);
  return create(DetectionResultSchema, {
    frameId: frame.frameId,
    detections: (extra.detections ?? found.detections).map((d: ReportedDetection) =>
      create(DetectionSchema, {
        bbox: create(BoundingBoxSchema, { x1: d.x1, y1: d.y1, x2: d.x2, y2: d.y2 }),
        confidence: d.confidence,
        classId: d.classId,
        className: d.className,
        trackId: d.trackId,
        trackIsNew: d.trackIsNew ?? false,
        trackConfirmed: d.trackConfirmed ?? false,
      }),
    ),
    // Waiting for an engine worker is queueing (load), not processing.
    processingTimeMs: t.preprocessMs + t.inferenceMs + postprocessMs,
    timestamp: frame.timestamp > 0 ? frame.timestamp : extra.receivedAtMs / 1000,
    imageWidth: found.imageWidth,
    imageHeight: found.imageHeight,
    configVersion: extra.configVersion,
    inputWidth: found.inputWidth,
    inputHeight: found.inputHeight,
    timings: create(TimingsSchema, {
      queueMs: extra.queueMs + t.engineWaitMs,
      preprocessMs: t.preprocessMs,
      inferenceMs: t.inferenceMs,
      postprocessMs,
    }),
    metadata: frame.metadata,
  });
}

/** One report per physical hazard, when its track ends. */
export function toHazardEvent(t: TrackSummary<JsonObject>): HazardEvent {
  return create(HazardEventSchema, {
    trackId: t.trackId,
    classId: t.classId,
    className: t.className,
    firstSeen: t.firstSeen,
    lastSeen: t.lastSeen,
    framesSeen: t.framesSeen,
    peakConfidence: t.peakConfidence,
    peakBbox: create(BoundingBoxSchema, t.peakBox),
    peakFrameId: t.peakFrameId,
    peakMetadata: t.peakMetadata,
  });
}

/** The stable code for a pipeline failure; anything unexpected is INTERNAL and logged, not shown. */
export function errorCodeOf(err: unknown): ErrorCode {
  if (err instanceof PipelineError) {
    if (err.kind === "inference") return ErrorCode.INFERENCE_ERROR;
    if (err.kind === "invalid_options") return ErrorCode.INVALID_CONFIG;
    return ErrorCode.INVALID_IMAGE;
  }
  return ErrorCode.INTERNAL;
}

export function frameErrorOf(frameId: string, err: unknown, nowMs: number): FrameError {
  const code = errorCodeOf(err);
  const message = code === ErrorCode.INTERNAL ? "internal error while processing the frame" : (err as Error).message;
  return create(FrameErrorSchema, { frameId, code, message, timestamp: nowMs / 1000, field: fieldOf(code) });
}

/** The request field a pipeline failure is about: an image that cannot be used is `image_data`'s fault. */
export function fieldOf(code: ErrorCode): string {
  return code === ErrorCode.INVALID_IMAGE ? "image_data" : "";
}
