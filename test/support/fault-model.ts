import { GraphBuilder } from "../../scripts/default-model/onnx-graph.js";

/** Input side of the fault model; frames of this size map 1:1 onto its input (no letterbox padding). */
export const FAULT_MODEL_SIDE = 64;

/**
 * A tiny detector that ONNX Runtime fails to run on some frames, for testing per-frame inference
 * failures with a real runtime error rather than an injected one. Its output is the input reshaped
 * to `[1, 6, N]` (4 box values + 2 class scores per anchor), with the middle dimension computed
 * from the data: 6 normally, 7 when the top-left pixel's red channel is bright (> 0.9). 3·64·64 is
 * not divisible by 7, so on such a frame ORT's Reshape throws ("cannot reshape"), the way a model
 * with a data-dependent shape fails on an input it was not built for. The worker and session
 * stay usable, so the next frame runs normally.
 */
export function buildFaultModel(): Uint8Array {
  const g = new GraphBuilder("fault-model");
  const side = FAULT_MODEL_SIDE;
  const images = g.input("images", [1, 3, side, side]);
  const corner = g.op("Slice", [images, g.ints([0, 0, 0, 0]), g.ints([1, 1, 1, 1])]);
  const bright = g.op("Cast", [g.op("Greater", [corner, g.scalar(0.9)])], { to: 7 }); // INT64
  const rows = g.op("Add", [g.op("Reshape", [bright, g.ints([1])]), g.ints([6])]);
  const shape = g.op("Concat", [g.ints([1]), rows, g.ints([-1])], { axis: 0 });
  // Scores are pixel values: dark frames (below the 0.25 default confidence) give no detections.
  const out = g.op("Reshape", [images, shape]);
  g.output(out, "output0", [1, 6, (3 * side * side) / 6]);
  return g.serialize({
    opset: 13,
    producer: "hazard-stream tests",
    producerVersion: "1",
    docString: "fails on frames whose top-left pixel is bright red (test model)",
    metadata: [
      ["description", "fault test model"],
      ["stride", "32"],
      ["imgsz", `[${side}, ${side}]`],
      ["names", "{0: 'crack', 1: 'pothole'}"],
    ],
  });
}
