/**
 * Straight-segment means on a grid, for any of a few integer directions: the mean of a map along
 * the segment from -m·v to +m·v around every cell, built from shifted copies of a short base
 * segment, so a 384 px segment costs a handful of ops rather than a 48×48 convolution.
 */
import type { Ops } from "./ops.js";

export type Direction = readonly [number, number];

/** Integer steps (x, y) in grid cells: 0°, ±18°, ±34°, ±45°, ±56°, ±72°, 90°; closed under 90° turns. */
export const DIRECTIONS: readonly Direction[] = [
  [1, 0], [3, 1], [3, 2], [1, 1], [2, 3], [1, 3], [0, 1], [-1, 3], [-2, 3], [-1, 1], [-3, 2], [-3, 1],
];
/** Segment lengths in base units that sums() can build (doubling, or tripling the base). */
export const MULTIPLES = [1, 2, 3, 4, 6, 8, 12, 16, 24] as const;
export const BASE_KERNEL = 7;

/** Mean along the base segment from -v to +v, rasterised into a BASE_KERNEL² kernel. */
export function segmentKernel([vx, vy]: Direction): number[] {
  const r = (BASE_KERNEL - 1) / 2;
  const w = new Array<number>(BASE_KERNEL * BASE_KERNEL).fill(0);
  const samples = 64;
  for (let i = 0; i <= samples; i++) {
    const t = -1 + (2 * i) / samples;
    const at = (Math.round(t * vy) + r) * BASE_KERNEL + Math.round(t * vx) + r;
    w[at] = w[at]! + 1 / (samples + 1);
  }
  return w;
}

/**
 * means(m)(p) = mean of `unit` (the base mean map for direction v) over the segment from -m·v to
 * +m·v around p, built from two halves (m = 2k) or three base segments (m = 3).
 */
export function segmentMeans(ops: Ops, unit: string, [vx, vy]: Direction): (m: number) => string {
  const memo = new Map<number, string>([[1, unit]]);
  const means = (m: number): string => {
    const known = memo.get(m);
    if (known) return known;
    let out: string;
    if (m === 3) {
      out = ops.mul(ops.g.op("Sum", [unit, ops.shift(unit, -2 * vy, -2 * vx), ops.shift(unit, 2 * vy, 2 * vx)]), 1 / 3);
    } else if (m % 2 === 0) {
      const k = m / 2;
      const half = means(k);
      out = ops.mul(ops.add(ops.shift(half, -k * vy, -k * vx), ops.shift(half, k * vy, k * vx)), 0.5);
    } else {
      throw new Error(`no segment of ${m} units`);
    }
    memo.set(m, out);
    return out;
  };
  return means;
}

/** Largest buildable multiple not above `target` (at least 1). */
export function multipleAtMost(target: number): number {
  return MULTIPLES.filter((m) => m <= Math.max(1, target)).at(-1)!;
}

export function norm([vx, vy]: Direction): number {
  return Math.hypot(vx, vy);
}
