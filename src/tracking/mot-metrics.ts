import { iou } from "../pipeline/nms.js";
import { solveAssignment } from "./assignment.js";
import type { BoxCorners } from "./types.js";

/** A ground-truth or predicted box with its identity; boxes of different known classes never match. */
export interface MotObject extends BoxCorners {
  id: number;
  classId?: number;
  /**
   * Ground truth only: a region the tracker is not judged on (an object too small or too faint to
   * detect). A prediction on it is neither a hit nor a false positive; it is never a miss.
   */
  ignore?: boolean;
}

export interface MotFrame {
  gt: readonly MotObject[];
  pred: readonly MotObject[];
}

export interface MotSummary {
  frames: number;
  gtDetections: number;
  predDetections: number;
  gtIds: number;
  predIds: number;
  tp: number;
  fp: number;
  fn: number;
  idsw: number;
  /** Times a ground-truth trajectory is picked up again after an interruption. */
  frag: number;
  /** (TP - FP - IDSW) / GT detections; 1 is perfect, can go negative. */
  mota: number;
  /** Mean IoU of matched pairs (TrackEval's convention; the CLEAR paper used a distance). */
  motp: number;
  /** Ground-truth ids matched in more than 80 % / at least 20 % / less than 20 % of their frames. */
  mostlyTracked: number;
  partiallyTracked: number;
  mostlyLost: number;
  idtp: number;
  idfp: number;
  idfn: number;
  idf1: number;
  idp: number;
  idr: number;
}

/** Matching priority of continuing last frame's pairs over IoU, as in CLEAR MOT / TrackEval. */
const CONTINUATION_BONUS = 1000;

/**
 * CLEAR MOT (Bernardin & Stiefelhagen 2008) and identity metrics (Ristani et al. 2016), computed as
 * TrackEval does at an IoU threshold: per frame, pairs continuing last frame's correspondence win,
 * then IoU is maximised; an identity switch is a ground truth matched to a different prediction id
 * than the last one it was matched to (any number of frames back). IDF1 matches whole trajectories:
 * the GT-id × predicted-id table of frames overlapping at the threshold, assigned to maximise IDTP.
 * Ignored ground truth is handled as TrackEval's MOTChallenge preprocessing does: predictions matched
 * to it (IoU at the threshold, optimal assignment) are removed from the frame, then it is removed.
 */
export class MotAccumulator {
  private frames = 0;
  private tp = 0;
  private fp = 0;
  private fn = 0;
  private idsw = 0;
  private iouSum = 0;
  private gtDetections = 0;
  private predDetections = 0;
  private readonly lastMatch = new Map<number, number>();
  private previousStep = new Map<number, number>();
  private readonly gtFrames = new Map<number, number>();
  private readonly gtMatchedFrames = new Map<number, number>();
  private readonly gtStarts = new Map<number, number>();
  private readonly predFrames = new Map<number, number>();
  private readonly overlapFrames = new Map<number, Map<number, number>>();

  constructor(readonly iouThreshold = 0.5) {}

  addFrame(allGt: readonly MotObject[], allPred: readonly MotObject[]): void {
    const { gt, pred } = this.withoutIgnored(allGt, allPred);
    this.frames++;
    this.gtDetections += gt.length;
    this.predDetections += pred.length;
    for (const g of gt) increment(this.gtFrames, g.id);
    for (const p of pred) increment(this.predFrames, p.id);

    const cols = pred.length;
    const cost = new Float64Array(gt.length * cols);
    const overlaps = new Float64Array(gt.length * cols);
    gt.forEach((g, r) => {
      for (let c = 0; c < cols; c++) {
        const p = pred[c];
        const compatible = g.classId === undefined || p.classId === undefined || g.classId === p.classId;
        const v = compatible ? iou(g, p) : 0;
        overlaps[r * cols + c] = v;
        if (v >= this.iouThreshold) {
          increment(rowOf(this.overlapFrames, g.id), p.id);
          const bonus = this.previousStep.get(g.id) === p.id ? CONTINUATION_BONUS : 0;
          cost[r * cols + c] = -(bonus + v);
        } else {
          cost[r * cols + c] = Number.POSITIVE_INFINITY;
        }
      }
    });
    const { matches } = solveAssignment(cost, gt.length, cols, 0);

    const step = new Map<number, number>();
    for (const [r, c] of matches) {
      const g = gt[r].id;
      const p = pred[c].id;
      const last = this.lastMatch.get(g);
      if (last !== undefined && last !== p) this.idsw++;
      if (!this.previousStep.has(g)) increment(this.gtStarts, g);
      this.lastMatch.set(g, p);
      step.set(g, p);
      increment(this.gtMatchedFrames, g);
      this.iouSum += overlaps[r * cols + c];
    }
    this.previousStep = step;
    this.tp += matches.length;
    this.fn += gt.length - matches.length;
    this.fp += pred.length - matches.length;
  }

  private withoutIgnored(gt: readonly MotObject[], pred: readonly MotObject[]): MotFrame {
    const ignored = gt.filter((g) => g.ignore);
    if (ignored.length === 0) return { gt, pred };
    const cost = new Float64Array(ignored.length * pred.length);
    ignored.forEach((g, r) => {
      pred.forEach((p, c) => {
        const compatible = g.classId === undefined || p.classId === undefined || g.classId === p.classId;
        const v = compatible ? iou(g, p) : 0;
        cost[r * pred.length + c] = v >= this.iouThreshold ? -v : Number.POSITIVE_INFINITY;
      });
    });
    const removed = new Set(solveAssignment(cost, ignored.length, pred.length, 0).matches.map(([, c]) => c));
    return { gt: gt.filter((g) => !g.ignore), pred: pred.filter((_, c) => !removed.has(c)) };
  }

  summary(): MotSummary {
    let mostlyTracked = 0;
    let partiallyTracked = 0;
    for (const [id, present] of this.gtFrames) {
      const ratio = (this.gtMatchedFrames.get(id) ?? 0) / present;
      if (ratio > 0.8) mostlyTracked++;
      else if (ratio >= 0.2) partiallyTracked++;
    }
    let frag = 0;
    for (const starts of this.gtStarts.values()) frag += starts - 1;

    const gtIds = [...this.gtFrames.keys()];
    const predIds = [...this.predFrames.keys()];
    const predIndex = new Map(predIds.map((id, i) => [id, i]));
    const cost = new Float64Array(gtIds.length * predIds.length).fill(Number.POSITIVE_INFINITY);
    gtIds.forEach((g, r) => {
      for (const [p, n] of this.overlapFrames.get(g) ?? []) cost[r * predIds.length + predIndex.get(p)!] = -n;
    });
    // Every allowed pair has cost <= -1; the limit just has to sit between that and 0.
    const { matches } = solveAssignment(cost, gtIds.length, predIds.length, -0.5);
    const idtp = matches.reduce((sum, [r, c]) => sum - cost[r * predIds.length + c], 0);
    const idfn = this.gtDetections - idtp;
    const idfp = this.predDetections - idtp;

    const gtTotal = Math.max(1, this.tp + this.fn);
    return {
      frames: this.frames,
      gtDetections: this.gtDetections,
      predDetections: this.predDetections,
      gtIds: gtIds.length,
      predIds: predIds.length,
      tp: this.tp,
      fp: this.fp,
      fn: this.fn,
      idsw: this.idsw,
      frag,
      mota: (this.tp - this.fp - this.idsw) / gtTotal,
      motp: this.iouSum / Math.max(1, this.tp),
      mostlyTracked,
      partiallyTracked,
      mostlyLost: gtIds.length - mostlyTracked - partiallyTracked,
      idtp,
      idfp,
      idfn,
      idf1: (2 * idtp) / Math.max(1, 2 * idtp + idfp + idfn),
      idp: idtp / Math.max(1, idtp + idfp),
      idr: idtp / Math.max(1, idtp + idfn),
    };
  }
}

/** Metrics of a whole sequence; denominators are floored at 1, so an empty sequence scores 0. */
export function evaluateMot(frames: Iterable<MotFrame>, iouThreshold = 0.5): MotSummary {
  const acc = new MotAccumulator(iouThreshold);
  for (const f of frames) acc.addFrame(f.gt, f.pred);
  return acc.summary();
}

function increment<K>(map: Map<K, number>, key: K): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

function rowOf(table: Map<number, Map<number, number>>, id: number): Map<number, number> {
  let row = table.get(id);
  if (!row) {
    row = new Map();
    table.set(id, row);
  }
  return row;
}
