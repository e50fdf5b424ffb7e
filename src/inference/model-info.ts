import type { ModelInfo } from "./engine.js";
import type { UltralyticsMetadata } from "./model-metadata.js";

/**
 * A dimension as the backends report it: a positive number when fixed; a symbolic name (ONNX
 * `dim_param`), -1, or an OpenVINO [min, max] interval when it is not.
 */
export type Dim = number | string | readonly [number, number];

export const DEFAULT_INPUT_SIDE = 640;
export const DEFAULT_STRIDE = 32;

export function isFixedDim(d: Dim | undefined): d is number {
  return typeof d === "number" && Number.isInteger(d) && d > 0;
}

/**
 * Combines the model's declared input/output shapes with its Ultralytics metadata. A fixed input
 * shape beats metadata `imgsz` (the graph cannot take anything else); class names without metadata
 * come from the output's channel count so detections still get stable `classN` names.
 */
export function resolveModelInfo(args: {
  path: string;
  metadata: UltralyticsMetadata;
  inputShape: readonly Dim[];
  outputShape: readonly Dim[];
}): ModelInfo {
  const { path, metadata, inputShape, outputShape } = args;
  if (inputShape.length !== 4) {
    throw new Error(`the model input must be NCHW (4 dimensions), it has ${inputShape.length}`);
  }
  const [batch, channels, h, w] = inputShape;
  if (isFixedDim(channels) && channels !== 3) {
    throw new Error(`the model input must have 3 (RGB) channels, it has ${channels}`);
  }
  const dynamicInputSize = !isFixedDim(h) || !isFixedDim(w);
  const inputHeight = isFixedDim(h) ? h : (metadata.imgsz?.height ?? DEFAULT_INPUT_SIDE);
  const inputWidth = isFixedDim(w) ? w : (metadata.imgsz?.width ?? DEFAULT_INPUT_SIDE);
  return {
    path,
    classNames: metadata.classNames ?? namesFromOutputShape(outputShape),
    inputWidth,
    inputHeight,
    dynamicInputSize,
    dynamicBatch: !isFixedDim(batch),
    stride: metadata.stride ?? DEFAULT_STRIDE,
    description: metadata.description ?? "",
  };
}

/** `[batch, 4 + nc, anchors]` gives nc; an end-to-end `[batch, K, 6]` output does not tell. */
function namesFromOutputShape(shape: readonly Dim[]): string[] {
  const channels = shape[1];
  if (shape.length !== 3 || !isFixedDim(channels) || channels <= 4 || shape[2] === 6) return [];
  return Array.from({ length: channels - 4 }, (_, i) => `class${i}`);
}
