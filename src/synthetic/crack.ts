import { boundsOf, type PixelBox } from "./box.js";
import { clipRect, shadePixel, type Canvas } from "./canvas.js";
import { createRng, type Rng } from "./prng.js";

/**
 * Where and how big one crack is. Its jagged path, branches and width profile come from `seed` in
 * units of its length, so the same crack can be redrawn moved, rotated or scaled.
 */
export interface CrackPose {
  readonly seed: number;
  /** Midpoint of the chord from the crack's first to its last point. */
  readonly cx: number;
  readonly cy: number;
  /** Chord length, px. */
  readonly length: number;
  /** Chord direction, radians. */
  readonly angle: number;
  /** Widest line width, px. */
  readonly width: number;
  /** Brightness factor inside the crack, e.g. 0.5. */
  readonly depth: number;
}

/** One stroke of a crack in image pixels, with a line width per point. */
export interface CrackStroke {
  readonly points: readonly (readonly [number, number])[];
  readonly widths: readonly number[];
}

export function randomCrack(rng: Rng, minLength: number, maxLength: number): Omit<CrackPose, "cx" | "cy"> {
  return {
    seed: rng.int(0, 2 ** 31),
    length: rng.uniform(minLength, maxLength),
    angle: rng.uniform(0, Math.PI),
    width: rng.uniform(1.6, 4),
    depth: rng.uniform(0.3, 0.6),
  };
}

/** A random walk whose heading is pulled back to 0, so the crack zigzags but keeps its course. */
function walk(rng: Rng, steps: number, heading0: number, jitter: number): [number, number][] {
  const points: [number, number][] = [[0, 0]];
  let heading = 0;
  let x = 0;
  let y = 0;
  for (let i = 0; i < steps; i++) {
    heading = 0.55 * heading + jitter * rng.normal();
    const step = rng.uniform(0.6, 1.4);
    x += step * Math.cos(heading0 + heading);
    y += step * Math.sin(heading0 + heading);
    points.push([x, y]);
  }
  return points;
}

/** The crack's strokes in its own frame: chord from (-0.5, 0) to (0.5, 0). */
function localStrokes(seed: number): { points: [number, number][]; widths: number[] }[] {
  const rng = createRng(seed);
  const raw = walk(rng, rng.int(18, 34), 0, 0.3);
  const [fx, fy] = raw[0]!;
  const [lx, ly] = raw[raw.length - 1]!;
  const chord = Math.hypot(lx - fx, ly - fy);
  const rot = -Math.atan2(ly - fy, lx - fx);
  const toChord = ([x, y]: [number, number]): [number, number] => {
    const dx = (x - fx) / chord;
    const dy = (y - fy) / chord;
    return [dx * Math.cos(rot) - dy * Math.sin(rot) - 0.5, dx * Math.sin(rot) + dy * Math.cos(rot)];
  };
  const main = raw.map(toChord);
  // Thinner towards both ends, with some variation along the way.
  const mainWidths = main.map((_, i) => {
    const t = i / (main.length - 1);
    return (0.45 + 0.55 * Math.sqrt(Math.sin(Math.PI * t))) * rng.uniform(0.8, 1.1);
  });
  const strokes = [{ points: main, widths: mainWidths }];
  if (rng.chance(0.35)) {
    const from = main[Math.floor(main.length * rng.uniform(0.3, 0.7))]!;
    const side = rng.chance(0.5) ? 1 : -1;
    const branchLength = rng.uniform(0.12, 0.28);
    const steps = rng.int(5, 9);
    const branch = walk(rng, steps, side * rng.uniform(0.5, 1.0), 0.3).map(
      ([x, y]): [number, number] => [from[0] + (x * branchLength) / steps, from[1] + (y * branchLength) / steps],
    );
    strokes.push({ points: branch, widths: branch.map((_, i) => 0.7 * (1 - (0.6 * i) / steps)) });
  }
  return strokes;
}

export function crackStrokes(pose: CrackPose): CrackStroke[] {
  const cos = Math.cos(pose.angle);
  const sin = Math.sin(pose.angle);
  return localStrokes(pose.seed).map((s) => ({
    points: s.points.map(([u, v]): [number, number] => [
      pose.cx + (u * cos - v * sin) * pose.length,
      pose.cy + (u * sin + v * cos) * pose.length,
    ]),
    widths: s.widths.map((w) => w * pose.width),
  }));
}

export function crackBox(pose: CrackPose): PixelBox {
  const strokes = crackStrokes(pose);
  return boundsOf(
    strokes.flatMap((s) => s.points),
    pose.width / 2,
  );
}

export function drawCrack(canvas: Canvas, pose: CrackPose): void {
  const strokes = crackStrokes(pose);
  const box = crackBox(pose);
  const r = clipRect(canvas, box.x1 - 2, box.y1 - 2, box.x2 + 2, box.y2 + 2);
  if (r.x1 < r.x0 || r.y1 < r.y0) return;
  const w = r.x1 - r.x0 + 1;
  // Coverage is the max over segments, so joints between segments are not darkened twice.
  const cover = new Float32Array(w * (r.y1 - r.y0 + 1));
  for (const stroke of strokes) {
    for (let i = 0; i + 1 < stroke.points.length; i++) {
      segmentCoverage(cover, r.x0, r.y0, w, r, stroke.points[i]!, stroke.points[i + 1]!, stroke.widths[i]!, stroke.widths[i + 1]!);
    }
  }
  const rng = createRng(pose.seed + 1);
  const factor: [number, number, number] = [1, 1, 1];
  for (let y = r.y0; y <= r.y1; y++) {
    for (let x = r.x0; x <= r.x1; x++) {
      const c = cover[(y - r.y0) * w + (x - r.x0)]!;
      if (c <= 0) continue;
      const f = 1 - c * (1 - pose.depth * rng.uniform(0.85, 1.15));
      factor[0] = factor[1] = factor[2] = f;
      shadePixel(canvas, x, y, factor);
    }
  }
}

function segmentCoverage(
  cover: Float32Array,
  ox: number,
  oy: number,
  stride: number,
  r: { x0: number; y0: number; x1: number; y1: number },
  p: readonly [number, number],
  q: readonly [number, number],
  wp: number,
  wq: number,
): void {
  const half = Math.max(wp, wq) / 2 + 1;
  const x0 = Math.max(r.x0, Math.floor(Math.min(p[0], q[0]) - half));
  const x1 = Math.min(r.x1, Math.ceil(Math.max(p[0], q[0]) + half));
  const y0 = Math.max(r.y0, Math.floor(Math.min(p[1], q[1]) - half));
  const y1 = Math.min(r.y1, Math.ceil(Math.max(p[1], q[1]) + half));
  const ex = q[0] - p[0];
  const ey = q[1] - p[1];
  const len2 = ex * ex + ey * ey || 1;
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      // Pixel centres at +0.5, so a line through integer coordinates covers pixels symmetrically.
      const px = x + 0.5 - p[0];
      const py = y + 0.5 - p[1];
      const t = Math.max(0, Math.min(1, (px * ex + py * ey) / len2));
      const d = Math.hypot(px - t * ex, py - t * ey);
      const width = wp + (wq - wp) * t;
      const c = Math.min(1, width / 2 + 0.5 - d);
      const i = (y - oy) * stride + (x - ox);
      if (c > cover[i]!) cover[i] = c;
    }
  }
}
