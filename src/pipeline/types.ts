/** Detection settings applied by the pipeline to one frame. */
export interface DetectOptions {
  /** Minimum confidence, 0..1. */
  confidenceThreshold: number;
  /** Class-aware NMS IoU threshold, 0..1. */
  iouThreshold: number;
  /** Keep at most this many detections (highest confidence first). */
  maxDetections: number;
  /** Class ids to keep; undefined keeps all. */
  classIds?: ReadonlySet<number>;
  /** Inference input size; undefined uses the model's native size. Must be a multiple of the stride. */
  inputSize?: { width: number; height: number };
}

/** One detection in source-image pixels. */
export interface PixelDetection {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
  confidence: number;
  classId: number;
  className: string;
}

export interface FrameTimings {
  preprocessMs: number;
  /** Waiting for a free engine worker: load, not work, so not part of inferenceMs. */
  engineWaitMs: number;
  inferenceMs: number;
  postprocessMs: number;
}

/** Everything the pipeline found in one frame. */
export interface FrameDetections {
  detections: PixelDetection[];
  /** Source image size after EXIF orientation. */
  imageWidth: number;
  imageHeight: number;
  /** Model input size actually used. */
  inputWidth: number;
  inputHeight: number;
  timings: FrameTimings;
}

/**
 * Why a frame could not be processed; mapped to ErrorCode by the RPC layer. `invalid_options`: the
 * DetectOptions themselves are unusable (e.g. an input size this model cannot take), a config error.
 */
export type PipelineErrorKind = "invalid_image" | "image_too_large" | "inference" | "invalid_options";

export class PipelineError extends Error {
  constructor(
    readonly kind: PipelineErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "PipelineError";
  }
}
