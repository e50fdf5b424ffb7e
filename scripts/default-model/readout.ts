/**
 * Turns a head's per-template score maps into Ultralytics-style candidate rows: at every grid cell
 * the best template wins, and only cells that are the strongest within a window keep their score,
 * so one hazard yields one candidate (the service's NMS only merges near-identical boxes).
 */
import type { Ops } from "./ops.js";

/** Each [1,1,h,w]: box centre and size in input pixels, and the class score in 0..1. */
export interface HeadMaps {
  readonly cx: string;
  readonly cy: string;
  readonly w: string;
  readonly h: string;
  readonly score: string;
}

/** A template's box in input pixels and its centre's offset from the cell centre. */
export interface TemplateBox {
  readonly w: number;
  readonly h: number;
  readonly dx: number;
  readonly dy: number;
}

export interface ReadoutConfig {
  readonly stride: number;
  /** Template score at which the class score is 0.5, and the sigmoid's slope. */
  readonly threshold: number;
  readonly slope: number;
  /** Side of the window (cells) in which a candidate must be the strongest. */
  readonly peakWindow: number;
}

export function readBoxes(ops: Ops, scores: readonly string[], boxes: readonly TemplateBox[], cfg: ReadoutConfig, name: string): HeadMaps {
  const g = ops.g;
  const best = ops.tap(`${name}_best`, ops.maxOf(scores));
  const peak = ops.isMax(best, ops.maxPool(best, cfg.peakWindow));
  // Ties are possible (equal scores); the conv sums them and the division averages their boxes.
  const onehot = ops.isMax(ops.concat(scores, 1), best);
  const fields = [() => 1, (b: TemplateBox) => b.w, (b: TemplateBox) => b.h, (b: TemplateBox) => b.dx, (b: TemplateBox) => b.dy];
  const sums = ops.conv(onehot, fields.flatMap((f) => boxes.map(f)), [fields.length, boxes.length, 1, 1]);
  const field = (i: number): string => g.op("Slice", [sums, g.ints([i]), g.ints([i + 1]), g.ints([1])]);
  const count = field(0);
  const mean = (i: number): string => ops.div(field(i), count);
  const [gx, gy] = ops.grid(best, cfg.stride);
  return {
    cx: ops.add(gx, mean(3)),
    cy: ops.add(gy, mean(4)),
    w: mean(1),
    h: mean(2),
    score: ops.mul(ops.sigmoid(ops.mul(ops.sub(best, cfg.threshold), cfg.slope)), peak),
  };
}
