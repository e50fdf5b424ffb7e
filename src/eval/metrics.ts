import { iou } from "../pipeline/nms.js";

/** A ground-truth box in pixels, class ids in the model's numbering. */
export interface LabelBox {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
  classId: number;
}

export interface DetectionBox extends LabelBox {
  confidence: number;
}

/** The result of one image: every detection's verdict (highest confidence first) and the misses. */
export interface ImageMatch {
  outcomes: Array<{ confidence: number; classId: number; truePositive: boolean }>;
  tp: number;
  fp: number;
  fn: number;
  /** Labels per class, for per-class AP. */
  labelsPerClass: Map<number, number>;
}

/**
 * Greedy matching as the team counts it: detections in descending confidence each take the still
 * unmatched label of the same class with the highest IoU ≥ `iouThreshold` (a true positive); every
 * other detection, of any class, is a false positive; labels left unmatched are false negatives.
 */
export function matchImage(detections: readonly DetectionBox[], labels: readonly LabelBox[], iouThreshold = 0.5): ImageMatch {
  const taken = new Array<boolean>(labels.length).fill(false);
  const order = [...detections].sort((a, b) => b.confidence - a.confidence);
  const outcomes: ImageMatch["outcomes"] = [];
  for (const d of order) {
    let best = -1;
    let bestIou = iouThreshold;
    labels.forEach((l, i) => {
      if (taken[i] || l.classId !== d.classId) return;
      const v = iou(d, l);
      if (v >= bestIou) {
        best = i;
        bestIou = v;
      }
    });
    if (best >= 0) taken[best] = true;
    outcomes.push({ confidence: d.confidence, classId: d.classId, truePositive: best >= 0 });
  }
  const tp = outcomes.filter((o) => o.truePositive).length;
  const labelsPerClass = new Map<number, number>();
  for (const l of labels) labelsPerClass.set(l.classId, (labelsPerClass.get(l.classId) ?? 0) + 1);
  return { outcomes, tp, fp: outcomes.length - tp, fn: labels.length - tp, labelsPerClass };
}

export interface Totals {
  tp: number;
  fp: number;
  fn: number;
  precision: number;
  recall: number;
}

export function totals(images: readonly ImageMatch[]): Totals {
  const tp = images.reduce((s, m) => s + m.tp, 0);
  const fp = images.reduce((s, m) => s + m.fp, 0);
  const fn = images.reduce((s, m) => s + m.fn, 0);
  return { tp, fp, fn, precision: tp + fp > 0 ? tp / (tp + fp) : 0, recall: tp + fn > 0 ? tp / (tp + fn) : 0 };
}

/**
 * Average precision of one class over a data set (AP50 when the matches used IoU 0.5), computed as
 * Ultralytics does: precision envelope, sampled at 101 recall points, trapezoid integral. Detections
 * of other classes are ignored.
 */
export function averagePrecision(images: readonly ImageMatch[], classId: number): number {
  const nLabels = images.reduce((s, m) => s + (m.labelsPerClass.get(classId) ?? 0), 0);
  if (nLabels === 0) return 0;
  const outs = images.flatMap((m) => m.outcomes.filter((o) => o.classId === classId));
  outs.sort((a, b) => b.confidence - a.confidence);
  const recall = [0];
  const precision = [1];
  let tp = 0;
  outs.forEach((o, i) => {
    if (o.truePositive) tp++;
    recall.push(tp / nLabels);
    precision.push(tp / (i + 1));
  });
  recall.push(1);
  precision.push(0);
  for (let i = precision.length - 2; i >= 0; i--) precision[i] = Math.max(precision[i], precision[i + 1]);
  let ap = 0;
  let prev = interpolate(0, recall, precision);
  for (let k = 1; k <= 100; k++) {
    const cur = interpolate(k / 100, recall, precision);
    ap += ((prev + cur) / 2) * 0.01;
    prev = cur;
  }
  return ap;
}

/** numpy.interp over an ascending `xs` (ties resolve to the rightmost point, as numpy does). */
function interpolate(x: number, xs: readonly number[], ys: readonly number[]): number {
  let hi = xs.findIndex((v) => v > x);
  if (hi === -1) return ys[ys.length - 1];
  if (hi === 0) return ys[0];
  const lo = hi - 1;
  const span = xs[hi] - xs[lo];
  return span === 0 ? ys[hi] : ys[lo] + ((x - xs[lo]) * (ys[hi] - ys[lo])) / span;
}
