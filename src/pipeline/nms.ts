/** An axis-aligned box with a score and a class, corners in any one coordinate system. */
export interface ScoredBox {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
  score: number;
  classId: number;
}

type Corners = Pick<ScoredBox, "x1" | "y1" | "x2" | "y2">;

/** Intersection over union; 0 when both boxes are empty (torchvision would give NaN and keep both). */
export function iou(a: Corners, b: Corners): number {
  const iw = Math.min(a.x2, b.x2) - Math.max(a.x1, b.x1);
  const ih = Math.min(a.y2, b.y2) - Math.max(a.y1, b.y1);
  if (iw <= 0 || ih <= 0) return 0;
  const inter = iw * ih;
  const union = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter;
  return union > 0 ? inter / union : 0;
}

/**
 * Greedy class-aware non-maximum suppression, as torchvision `batched_nms` (what Ultralytics
 * `non_max_suppression(agnostic=False)` runs): highest score first, a box is dropped when its IoU
 * with a kept box of the same class is above `iouThreshold`. Returns at most `maxDetections` boxes,
 * highest score first; ties keep input order.
 */
export function nonMaxSuppression<T extends ScoredBox>(
  boxes: readonly T[],
  iouThreshold: number,
  maxDetections = Number.POSITIVE_INFINITY,
): T[] {
  const order = boxes.map((_, i) => i).sort((i, j) => boxes[j].score - boxes[i].score || i - j);
  const keptByClass = new Map<number, T[]>();
  const kept: T[] = [];
  for (const i of order) {
    if (kept.length >= maxDetections) break;
    const box = boxes[i];
    let sameClass = keptByClass.get(box.classId);
    if (sameClass?.some((k) => iou(k, box) > iouThreshold)) continue;
    if (!sameClass) keptByClass.set(box.classId, (sameClass = []));
    sameClass.push(box);
    kept.push(box);
  }
  return kept;
}
