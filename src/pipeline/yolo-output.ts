import type { Tensor } from "../inference/engine.js";
import type { ScoredBox } from "./nms.js";

/** How a YOLO head lays out its first output. */
export type YoloLayout =
  /** `[1, 4 + nc, N]`: cx, cy, w, h then one score per class for each of N anchors; needs NMS. */
  | { kind: "anchors"; numClasses: number; numAnchors: number }
  /** `[1, K, 6]`: x1, y1, x2, y2, score, class per row; NMS already done in the graph. */
  | { kind: "end-to-end"; numRows: number };

export interface CandidateFilter {
  /** Boxes must score strictly above this (Ultralytics compares with `>`). */
  confidenceThreshold: number;
  /** Keep only these classes; undefined keeps all. */
  classIds?: ReadonlySet<number>;
}

/**
 * Tells the two Ultralytics layouts apart by shape. Both are `[1, a, b]`, and with two classes the
 * anchor layout is `[1, 6, N]` — so `b === 6` means end-to-end only when `a` is not `4 + nc`.
 * `numClasses` (from the model metadata) breaks the tie; without it a 6-wide last axis wins, since
 * an anchor grid of 6 cells is not a real input size.
 */
export function detectLayout(dims: readonly number[], numClasses?: number): YoloLayout {
  if (dims.length !== 3 || dims[0] !== 1) {
    throw new Error(`unsupported model output shape [${dims.join(", ")}]: expected [1, 4 + classes, anchors] or [1, K, 6]`);
  }
  const [, a, b] = dims;
  const anchors: YoloLayout = { kind: "anchors", numClasses: a - 4, numAnchors: b };
  const endToEnd: YoloLayout = { kind: "end-to-end", numRows: a };
  if (numClasses !== undefined && numClasses > 0) {
    if (a === 4 + numClasses && b !== 6) return anchors;
    if (b === 6 && a !== 4 + numClasses) return endToEnd;
  }
  if (b === 6) return endToEnd;
  if (a > 4) return anchors;
  throw new Error(`unsupported model output shape [${dims.join(", ")}]`);
}

/**
 * Turns the raw output into candidate boxes (corners in model-input pixels) above the confidence
 * threshold and in the class filter. Anchor rows take their best class only, like Ultralytics
 * `multi_label=False`: a box whose best class is filtered out is dropped, not demoted to its second.
 */
export function decodeYoloOutput(output: Tensor, layout: YoloLayout, filter: CandidateFilter): ScoredBox[] {
  const d = output.data;
  const needed = layout.kind === "end-to-end" ? layout.numRows * 6 : (4 + layout.numClasses) * layout.numAnchors;
  if (d.length < needed) throw new Error(`model output has ${d.length} values, its shape needs ${needed}`);
  const { confidenceThreshold: conf, classIds } = filter;
  const out: ScoredBox[] = [];
  if (layout.kind === "end-to-end") {
    for (let r = 0, o = 0; r < layout.numRows; r++, o += 6) {
      const score = d[o + 4];
      const classId = Math.round(d[o + 5]);
      if (!(score > conf) || (classIds && !classIds.has(classId))) continue;
      out.push({ x1: d[o], y1: d[o + 1], x2: d[o + 2], y2: d[o + 3], score, classId });
    }
    return out;
  }
  const n = layout.numAnchors;
  for (let i = 0; i < n; i++) {
    // Channel-major: the scores of one anchor are n apart.
    let best = -Infinity;
    let classId = 0;
    for (let c = 0, o = 4 * n + i; c < layout.numClasses; c++, o += n) {
      if (d[o] > best) {
        best = d[o];
        classId = c;
      }
    }
    if (!(best > conf) || (classIds && !classIds.has(classId))) continue;
    const cx = d[i];
    const cy = d[n + i];
    const hw = d[2 * n + i] / 2;
    const hh = d[3 * n + i] / 2;
    out.push({ x1: cx - hw, y1: cy - hh, x2: cx + hw, y2: cy + hh, score: best, classId });
  }
  return out;
}
