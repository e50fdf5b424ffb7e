import { create } from "@bufbuild/protobuf";
import {
  ClassFilterSchema,
  Quality,
  SessionConfigSchema,
  type SessionConfig,
} from "../../gen/hazard/stream/v1/types_pb.js";

/** A session's config with every field resolved. */
export interface EffectiveConfig {
  fpsLimit: number;
  confidenceThreshold: number;
  iouThreshold: number;
  enableTracking: boolean;
  maxDetections: number;
  /** Class names to report; empty reports all. */
  classNames: readonly string[];
  quality: Quality;
}

/** Server-side bounds and defaults, from the environment. */
export interface ConfigLimits {
  maxFps: number;
  defaults: EffectiveConfig;
  /** Class names of the loaded model, to validate class filters against. */
  classNames: readonly string[];
  /** Whether the model accepts other input sizes (quality modes other than high need it). */
  dynamicInputSize: boolean;
}

export const MAX_DETECTIONS_LIMIT = 1000;

/** A config value out of range; `field` is the proto/JSON field name. */
export class ConfigValidationError extends Error {
  override name = "ConfigValidationError";
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

function checkRange(field: string, v: number, min: number, max: number, integer: boolean): void {
  if (!Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v))) {
    const kind = integer ? "an integer" : "a number";
    throw new ConfigValidationError(field, `${field} must be ${kind} between ${min} and ${max}, got ${v}`);
  }
}

/**
 * Applies a (partial) config on top of `base`. Absent fields keep their value; present fields are
 * validated and refused with the field named — never clamped, so a client knows what it asked for
 * is what runs.
 */
export function applyConfig(base: EffectiveConfig, patch: SessionConfig | undefined, limits: ConfigLimits): EffectiveConfig {
  const next: EffectiveConfig = { ...base };
  if (!patch) return next;
  if (patch.fpsLimit !== undefined) {
    checkRange("fps_limit", patch.fpsLimit, 1, limits.maxFps, true);
    next.fpsLimit = patch.fpsLimit;
  }
  if (patch.confidenceThreshold !== undefined) {
    checkRange("confidence_threshold", patch.confidenceThreshold, 0, 1, false);
    next.confidenceThreshold = patch.confidenceThreshold;
  }
  if (patch.iouThreshold !== undefined) {
    checkRange("iou_threshold", patch.iouThreshold, 0, 1, false);
    next.iouThreshold = patch.iouThreshold;
  }
  if (patch.enableTracking !== undefined) next.enableTracking = patch.enableTracking;
  if (patch.maxDetections !== undefined) {
    checkRange("max_detections", patch.maxDetections, 1, MAX_DETECTIONS_LIMIT, true);
    next.maxDetections = patch.maxDetections;
  }
  if (patch.classFilter !== undefined) {
    const unknown = patch.classFilter.classNames.filter((n) => !limits.classNames.includes(n));
    if (unknown.length > 0) {
      throw new ConfigValidationError(
        "class_filter",
        `class_filter names unknown classes ${JSON.stringify(unknown)}; the model knows ${JSON.stringify(limits.classNames)}`,
      );
    }
    next.classNames = [...new Set(patch.classFilter.classNames)];
  }
  if (patch.quality !== undefined) {
    if (!(patch.quality in Quality)) {
      throw new ConfigValidationError("quality", `quality ${patch.quality} is not a known quality mode`);
    }
    if (patch.quality !== Quality.UNSPECIFIED && patch.quality !== Quality.HIGH && !limits.dynamicInputSize) {
      throw new ConfigValidationError("quality", "quality modes other than HIGH need a model with a dynamic input size");
    }
    // UNSPECIFIED asks for the server default; sessions report what that is.
    next.quality = patch.quality === Quality.UNSPECIFIED ? limits.defaults.quality : patch.quality;
  }
  return next;
}

/** The effective config as the API reports it (every field present). */
export function toProtoConfig(c: EffectiveConfig): SessionConfig {
  return create(SessionConfigSchema, {
    fpsLimit: c.fpsLimit,
    confidenceThreshold: c.confidenceThreshold,
    iouThreshold: c.iouThreshold,
    enableTracking: c.enableTracking,
    maxDetections: c.maxDetections,
    classFilter: create(ClassFilterSchema, { classNames: [...c.classNames] }),
    // The model's native input size, which HIGH names (configs stored before it was the default).
    quality: c.quality === Quality.UNSPECIFIED ? Quality.HIGH : c.quality,
  });
}
