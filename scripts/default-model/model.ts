/**
 * The default model: fixed image filters as an ONNX graph in the Ultralytics detect layout.
 * input `images` [1,3,H,W] RGB 0..1 (H, W multiples of 32) → output `output0` [1, 4+2, N]:
 * cx, cy, w, h in input pixels, then scores for 0=crack, 1=pothole. N = (H/4·W/4) pothole
 * candidates followed by (H/8·W/8) crack candidates; the service applies conf threshold and NMS.
 */
import { crackHead, type CrackHeadConfig } from "./crack-head.js";
import { GraphBuilder } from "./onnx-graph.js";
import { Ops } from "./ops.js";
import { potholeHead, type PotholeHeadConfig } from "./pothole-head.js";
import type { HeadMaps } from "./readout.js";

export interface DefaultModelConfig {
  readonly pothole: PotholeHeadConfig;
  readonly crack: CrackHeadConfig;
}

export const DEFAULT_MODEL_CONFIG: DefaultModelConfig = {
  pothole: {
    sizes: [4, 5, 7, 9, 12, 16, 21, 28, 37],
    aspects: [1, 1.5, 1 / 1.5],
    ringRatio: 2,
    boxScale: 1.3,
    threshold: 0.25,
    slope: 20,
    peakWindow: 7,
  },
  crack: {
    ridgeHalfLength: 3.5,
    sideOffset: 2.5,
    centerHalfWidth: 0.75,
    ridgeStride: 1,
    evidenceLow: 0.06,
    evidenceHigh: 0.18,
    darkSurround: 0.55,
    wideDilation: 5,
    minLength: 60,
    maxLength: 420,
    wideFrom: 140,
    coveragePenalty: 1,
    endDilation: 5,
    endSpread: [-3, -2, 0, 2, 3],
    lateralPx: 24,
    lateralScale: 0.1,
    lengthScale: 0.8,
    marginScale: 0.04,
    marginPx: 10,
    threshold: 0.25,
    slope: 10,
    peakWindow: 9,
  },
};

export const CLASS_NAMES = ["crack", "pothole"] as const;
export const MODEL_VERSION = "1.0.0";
const OPSET = 17;

/** Ultralytics-style metadata_props, so the service reads class names and size like any YOLO export. */
export function modelMetadata(): [string, string][] {
  return [
    ["description", "hazard-stream default road-hazard filter: fixed dark-blob (pothole) and dark-line (crack) filters, not a trained detector"],
    ["author", "hazard-stream (scripts/build-default-model.ts)"],
    ["version", MODEL_VERSION],
    ["license", "Apache-2.0"],
    ["stride", "32"],
    ["task", "detect"],
    ["batch", "1"],
    ["imgsz", "[640, 640]"],
    ["names", `{${CLASS_NAMES.map((n, i) => `${i}: '${n}'`).join(", ")}}`],
  ];
}

/** `debug` adds the heads' intermediate maps (Ops.tap) as extra outputs, for tuning only. */
export function buildDefaultModel(config: DefaultModelConfig = DEFAULT_MODEL_CONFIG, debug = false): Uint8Array {
  const g = new GraphBuilder("road_hazard_filter");
  const ops = new Ops(g);
  const images = g.input("images", [1, 3, "height", "width"]);
  // Halve first, then mix RGB to luma (BT.601) with Mul + ReduceSum: a 1×1 Conv at full size costs
  // more than everything else here, because runtimes re-layout its input and output.
  const rgb2 = ops.avgPool(images, 2, 2, 2);
  const g2 = g.op("ReduceSum", [ops.mul(rgb2, g.floats([0.299, 0.587, 0.114], [1, 3, 1, 1])), g.ints([1])], { keepdims: 1 });
  const g4 = ops.avgPool(g2, 2, 2, 2);
  const potholes = flatten(ops, potholeHead(ops, g4, config.pothole), 1);
  const cracks = flatten(ops, crackHead(ops, g2, config.crack), 0);
  g.output(ops.concat([potholes, cracks], 2), "output0", [1, 4 + CLASS_NAMES.length, "anchors"]);
  if (debug) for (const [name, value] of ops.taps) g.output(value, name, [1, "c", "h", "w"]);
  return g.serialize({
    opset: OPSET,
    producer: "hazard-stream",
    producerVersion: MODEL_VERSION,
    docString: "Fixed-filter road-hazard detector in the Ultralytics YOLO detect output layout.",
    metadata: modelMetadata(),
  });
}

/** [1, 4+nc, h·w] rows for one head: its box, its score in its class row, zeros elsewhere. */
function flatten(ops: Ops, head: HeadMaps, classId: number): string {
  const zeros = ops.mul(head.score, 0);
  const rows = [head.cx, head.cy, head.w, head.h, ...CLASS_NAMES.map((_, i) => (i === classId ? head.score : zeros))];
  return ops.g.op("Reshape", [ops.concat(rows, 1), ops.g.ints([1, 4 + CLASS_NAMES.length, -1])]);
}
