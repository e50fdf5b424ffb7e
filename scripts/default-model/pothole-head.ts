/**
 * Pothole head: dark compact blobs. For every cell of a stride-4 grid and every box shape in a set,
 * compare the mean brightness inside the box with each of the four strips around it (integral
 * image, so any box size costs the same) and keep the contrast against the darkest strip. The shape
 * with the strongest contrast fits the blob best; only local maxima over position and shape keep a
 * score, so one blob gives one candidate.
 */
import type { Ops } from "./ops.js";
import { readBoxes, type HeadMaps } from "./readout.js";

export interface PotholeHeadConfig {
  /** Box sizes in stride-4 cells (the aspect variants are derived). */
  readonly sizes: readonly number[];
  readonly aspects: readonly number[];
  /** Outer box side / inner box side. */
  readonly ringRatio: number;
  /** Predicted box = template box × this (blobs are round, boxes are square). */
  readonly boxScale: number;
  /** Relative contrast at which the score is 0.5, the sigmoid's slope, the peak window (cells). */
  readonly threshold: number;
  readonly slope: number;
  readonly peakWindow: number;
}

const STRIDE = 4;

interface Template {
  readonly h: number;
  readonly w: number;
  readonly oh: number;
  readonly ow: number;
}

function templates(cfg: PotholeHeadConfig): Template[] {
  const seen = new Set<string>();
  const out: Template[] = [];
  // Outer box grows by an even number of cells, so inner and outer share their centre.
  const outer = (s: number): number => s + 2 * Math.round((s * (cfg.ringRatio - 1)) / 2);
  for (const s of cfg.sizes) {
    for (const a of cfg.aspects) {
      const h = Math.max(2, Math.round(s / Math.sqrt(a)));
      const w = Math.max(2, Math.round(s * Math.sqrt(a)));
      const key = `${h}x${w}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push({ h, w, oh: outer(h), ow: outer(w) });
    }
  }
  return out;
}

/** g4: gray image at stride 4, [1,1,H/4,W/4]. */
export function potholeHead(ops: Ops, g4: string, cfg: PotholeHeadConfig): HeadMaps {
  const list = templates(cfg);
  const P = Math.ceil(Math.max(...list.map((t) => Math.max(t.oh, t.ow))) / 2 + 1);
  // Exclusive cumsums over an edge-padded image: II[i][j] = sum of rows < i, cols < j. Centred on 0.5
  // so the running sums stay small and float32 keeps small boxes exact at large input sizes too.
  const padded = ops.pad(ops.sub(g4, 0.5), [P, P, P + 1, P + 1], "edge");
  const integral = ops.cumsum(ops.cumsum(padded, 2, true), 3, true);
  const extra = 2 * P + 1;
  /** Mean − 0.5 over rows [y+r0, y+r1) and cols [x+c0, x+c1) for every cell (y, x). */
  const boxMean = (r0: number, r1: number, c0: number, c1: number): string => {
    const c = (r: number, col: number): string => ops.crop(integral, P + r, P + col, extra);
    const sum = ops.add(ops.sub(c(r1, c1), c(r0, c1)), ops.sub(c(r0, c0), c(r1, c0)));
    return ops.mul(sum, 1 / ((r1 - r0) * (c1 - c0)));
  };

  const contrasts = list.map((t) => {
    const r0 = -Math.floor(t.h / 2);
    const r1 = r0 + t.h;
    const c0 = -Math.floor(t.w / 2);
    const c1 = c0 + t.w;
    const R0 = -Math.floor(t.oh / 2);
    const R1 = R0 + t.oh;
    const C0 = -Math.floor(t.ow / 2);
    const C1 = C0 + t.ow;
    const inner = boxMean(r0, r1, c0, c1);
    // Darker than every side, not just on average: a box inside a shadow near its edge, or between
    // two lane dashes, has at least one side as dark as itself.
    const sides = [
      boxMean(R0, r0, c0, c1),
      boxMean(r1, R1, c0, c1),
      boxMean(r0, r1, C0, c0),
      boxMean(r0, r1, c1, C1),
    ];
    const darkest = ops.minOf(sides);
    return ops.div(ops.sub(darkest, inner), ops.add(darkest, 0.5 + 0.02));
  });
  const offset = (n: number): number => (n % 2 === 0 ? -0.5 : 0) * STRIDE;
  const boxes = list.map((t) => ({
    w: t.w * STRIDE * cfg.boxScale,
    h: t.h * STRIDE * cfg.boxScale,
    dx: offset(t.w),
    dy: offset(t.h),
  }));
  return readBoxes(ops, contrasts, boxes, { ...cfg, stride: STRIDE }, "pothole");
}
