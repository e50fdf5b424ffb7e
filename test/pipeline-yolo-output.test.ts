import { describe, expect, it } from "vitest";
import type { Tensor } from "../src/inference/engine.js";
import { decodeYoloOutput, detectLayout, type YoloLayout } from "../src/pipeline/yolo-output.js";

/** Builds a channel-major `[1, 4 + nc, N]` tensor from per-anchor rows [cx, cy, w, h, ...scores]. */
function anchorTensor(rows: number[][]): Tensor {
  const n = rows.length;
  const c = rows[0]?.length ?? 6;
  const data = new Float32Array(c * n);
  rows.forEach((r, i) => r.forEach((v, ch) => (data[ch * n + i] = v)));
  return { data, dims: [1, c, n] };
}

function endToEndTensor(rows: number[][]): Tensor {
  return { data: Float32Array.from(rows.flat()), dims: [1, rows.length, 6] };
}

describe("detectLayout", () => {
  it.each<[string, number[], number | undefined, YoloLayout | string]>([
    ["80-class anchors", [1, 84, 8400], 80, { kind: "anchors", numClasses: 80, numAnchors: 8400 }],
    ["2-class anchors look like [1, 6, N]", [1, 6, 8400], 2, { kind: "anchors", numClasses: 2, numAnchors: 8400 }],
    ["end-to-end [1, 300, 6]", [1, 300, 6], 80, { kind: "end-to-end", numRows: 300 }],
    ["end-to-end with 2 classes", [1, 300, 6], 2, { kind: "end-to-end", numRows: 300 }],
    ["anchors without class names", [1, 9, 2100], undefined, { kind: "anchors", numClasses: 5, numAnchors: 2100 }],
    ["end-to-end without class names", [1, 100, 6], 0, { kind: "end-to-end", numRows: 100 }],
    ["batch of two is refused", [2, 84, 8400], 80, "unsupported"],
    ["4-D output is refused", [1, 84, 80, 80], 80, "unsupported"],
  ])("%s", (_n, dims, nc, expected) => {
    if (typeof expected === "string") expect(() => detectLayout(dims, nc)).toThrow(expected);
    else expect(detectLayout(dims, nc)).toEqual(expected);
  });
});

describe("decodeYoloOutput", () => {
  it("anchor layout: centre boxes become corners, best class only, strict confidence threshold", () => {
    const t = anchorTensor([
      [100, 50, 20, 10, 0.1, 0.9],
      [10, 10, 4, 4, 0.3, 0.25], // best 0.3 -> class 0
      [10, 10, 4, 4, 0.25, 0.1], // exactly the threshold: dropped, as Ultralytics uses >
      [0, 0, 0, 0, 0, 0],
    ]);
    const boxes = decodeYoloOutput(t, detectLayout(t.dims, 2), { confidenceThreshold: 0.25 });
    expect(boxes).toEqual([
      { x1: 90, y1: 45, x2: 110, y2: 55, score: expect.closeTo(0.9, 6), classId: 1 },
      { x1: 8, y1: 8, x2: 12, y2: 12, score: expect.closeTo(0.3, 6), classId: 0 },
    ]);
  });

  it("anchor layout: a box whose best class is filtered out is dropped, not demoted", () => {
    const t = anchorTensor([[10, 10, 4, 4, 0.8, 0.6]]);
    const boxes = decodeYoloOutput(t, detectLayout(t.dims, 2), { confidenceThreshold: 0.25, classIds: new Set([1]) });
    expect(boxes).toEqual([]);
  });

  it("end-to-end layout: rows are taken as corners, score, class", () => {
    const t = endToEndTensor([
      [1, 2, 3, 4, 0.9, 1],
      [5, 6, 7, 8, 0.5, 0],
      [0, 0, 0, 0, 0, 0], // padding rows of an end-to-end head
    ]);
    const layout = detectLayout(t.dims, 2);
    expect(decodeYoloOutput(t, layout, { confidenceThreshold: 0.25 })).toEqual([
      { x1: 1, y1: 2, x2: 3, y2: 4, score: expect.closeTo(0.9, 6), classId: 1 },
      { x1: 5, y1: 6, x2: 7, y2: 8, score: 0.5, classId: 0 },
    ]);
    expect(decodeYoloOutput(t, layout, { confidenceThreshold: 0.25, classIds: new Set([0]) })).toHaveLength(1);
  });

  it("refuses data shorter than the shape", () => {
    const t: Tensor = { data: new Float32Array(10), dims: [1, 6, 8400] };
    expect(() => decodeYoloOutput(t, detectLayout(t.dims, 2), { confidenceThreshold: 0.25 })).toThrow(/values/);
  });
});
