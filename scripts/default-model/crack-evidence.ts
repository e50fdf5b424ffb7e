/**
 * Crack evidence: where the image has a thin dark line, and in which direction. Oriented ridge
 * filters at stride 2 respond to a line darker than BOTH parallel side bands, so the step edges of
 * shadows, lane paint and pothole rims do not count; the result is pooled to the stride-8 grid on
 * which the segment templates work.
 */
import type { Ops } from "./ops.js";

export interface CrackEvidenceConfig {
  /** Ridge filter: half length along the line and side-band offset, in stride-2 cells. */
  readonly ridgeHalfLength: number;
  readonly sideOffset: number;
  /** Width of the centre line (half, stride-2 cells) and the stride the filters are sampled at (1 or 2). */
  readonly centerHalfWidth: number;
  readonly ridgeStride: number;
  /** Relative ridge contrast mapped linearly onto evidence 0..1. */
  readonly evidenceLow: number;
  readonly evidenceHigh: number;
  /** Local / wide-area brightness below which ridges fade out (over 0.15 more): pothole interiors. */
  readonly darkSurround: number;
  /** Max-pool window (stride-8 cells) that widens the evidence for long segments. */
  readonly wideDilation: number;
}

export interface CrackEvidence {
  /** [1, RIDGE_ORIENTATIONS, H/8, W/8] evidence per ridge orientation, widened by one cell each way. */
  readonly oriented: string;
  /** The same, widened by wideDilation cells: long cracks drift further from a straight line. */
  readonly orientedWide: string;
  /** [1,1,H/8,W/8] evidence of any orientation, widened by one cell each way. */
  readonly any: string;
}

export const RIDGE_ORIENTATIONS = 8;
const RIDGE_KERNEL = 9;

/** Line direction of ridge channel i, radians (0 = along +x, y down). */
export function ridgeAngle(i: number): number {
  return (i * Math.PI) / RIDGE_ORIENTATIONS;
}

/** g2: gray image at stride 2, [1,1,H/2,W/2]. */
export function crackEvidence(ops: Ops, g2: string, cfg: CrackEvidenceConfig): CrackEvidence {
  const g = ops.g;
  const n = RIDGE_ORIENTATIONS;
  const k = RIDGE_KERNEL;
  const side = (sign: number): number[] =>
    Array.from({ length: n }, (_, i) => ridgeAngle(i)).flatMap((a) => {
      const center = bandKernel(k, a, cfg.ridgeHalfLength, 0, cfg.centerHalfWidth);
      const band = bandKernel(k, a, cfg.ridgeHalfLength, sign * cfg.sideOffset, 0.75);
      return band.map((v, j) => v - center[j]!);
    });
  // One conv gives (side band − centre line) for both sides of every orientation. Sampled at stride 4
  // (the filter is 18 px long, so a line between two samples still fills most of the centre band).
  const diffs = ops.conv(g2, [...side(1), ...side(-1)], [2 * n, 1, k, k], { stride: cfg.ridgeStride });
  const sideA = g.op("Slice", [diffs, g.ints([0]), g.ints([n]), g.ints([1])]);
  const sideB = g.op("Slice", [diffs, g.ints([n]), g.ints([2 * n]), g.ints([1])]);
  const gs = cfg.ridgeStride === 2 ? ops.avgPool(g2, 2, 2, 2) : g2;
  const local = ops.boxMean(gs, cfg.ridgeStride === 2 ? 5 : 9);
  const relative = ops.div(ops.min(sideA, sideB), ops.add(local, 0.02));
  // Inside a pothole the gravel makes ridges too; cracks lie on asphalt of ordinary brightness, so
  // fade evidence out where the surroundings are much darker than a 240 px area (larger than any pothole).
  const wide = ops.upsample(ops.boxMean(ops.avgPool(g2, 8, 8, 8), 15), 8 / cfg.ridgeStride);
  const onAsphalt = ops.clamp(ops.mul(ops.sub(ops.div(local, ops.add(wide, 0.02)), cfg.darkSurround), 1 / 0.15), 0, 1);
  const evidence = ops.mul(
    ops.clamp(ops.mul(ops.sub(relative, cfg.evidenceLow), 1 / (cfg.evidenceHigh - cfg.evidenceLow)), 0, 1),
    onAsphalt,
  );
  ops.tap("crack_evidence", ops.reduceMax(evidence, 1));
  const e8 = ops.maxPool(evidence, 4 / cfg.ridgeStride, 4 / cfg.ridgeStride);
  const oriented = ops.maxPool(e8, 3);
  return {
    oriented,
    orientedWide: ops.maxPool(e8, cfg.wideDilation),
    any: ops.tap("crack_e8", ops.reduceMax(oriented, 1)),
  };
}

/** Weights of a band |along| <= halfLength, |across - offset| <= halfWidth, supersampled, sum 1. */
function bandKernel(size: number, angle: number, halfLength: number, offset: number, halfWidth: number): number[] {
  const sub = 8;
  const r = (size - 1) / 2;
  const w: number[] = [];
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let hits = 0;
      for (let sy = 0; sy < sub; sy++) {
        for (let sx = 0; sx < sub; sx++) {
          const dx = x - r + (sx + 0.5) / sub - 0.5;
          const dy = y - r + (sy + 0.5) / sub - 0.5;
          const along = dx * Math.cos(angle) + dy * Math.sin(angle);
          const across = -dx * Math.sin(angle) + dy * Math.cos(angle);
          if (Math.abs(along) <= halfLength && Math.abs(across - offset) <= halfWidth) hits++;
        }
      }
      w.push(hits);
    }
  }
  const total = w.reduce((a, b) => a + b, 0);
  return w.map((v) => v / total);
}
