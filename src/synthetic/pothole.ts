import { boundsOf, type PixelBox } from "./box.js";
import { blendPixel, clipRect, shadePixel, type Canvas, type Rgb } from "./canvas.js";
import { valueNoise } from "./noise.js";
import { createRng, type Rng } from "./prng.js";

/**
 * Where and how big one pothole is. Its outline and texture come from `seed`, so the same pothole can
 * be redrawn at another position or scale (a future driving sequence moves and grows it).
 */
export interface PotholePose {
  readonly seed: number;
  readonly cx: number;
  readonly cy: number;
  /** Longest extent of the dark hole, px. */
  readonly size: number;
  /** Major / minor axis, >= 1. */
  readonly aspect: number;
  readonly angle: number;
  /** Brightness factor at the deepest point, e.g. 0.45. */
  readonly depth: number;
}

interface PotholeShape {
  readonly harmonics: readonly { k: number; amp: number; phase: number }[];
  /** Normalises the outline so its largest radius is 1. */
  readonly maxRadius: number;
  /** Light rim width as a fraction of the radius, and its strength. */
  readonly rimWidth: number;
  readonly rimStrength: number;
  readonly tint: Rgb;
}

/** Picks a pothole's look and size; the caller places it (cx, cy). */
export function randomPothole(rng: Rng, minSize: number, maxSize: number): Omit<PotholePose, "cx" | "cy"> {
  return {
    seed: rng.int(0, 2 ** 31),
    // Log-uniform: small potholes are as common as big ones in pixels-per-octave terms.
    size: Math.exp(rng.uniform(Math.log(minSize), Math.log(maxSize))),
    aspect: rng.uniform(1, 1.6),
    angle: rng.uniform(0, Math.PI),
    depth: rng.uniform(0.3, 0.55),
  };
}

function shapeOf(seed: number): PotholeShape {
  const rng = createRng(seed);
  const harmonics = [2, 3, 4, 5, 7].map((k) => ({
    k,
    amp: rng.uniform(0, 0.16 / Math.sqrt(k)),
    phase: rng.uniform(0, 2 * Math.PI),
  }));
  let maxRadius = 0;
  for (let i = 0; i < 360; i++) maxRadius = Math.max(maxRadius, radiusAt(harmonics, (i / 180) * Math.PI));
  const warm = rng.uniform(0, 0.06);
  return {
    harmonics,
    maxRadius,
    rimWidth: rng.uniform(0.1, 0.25),
    rimStrength: rng.uniform(0.15, 0.4),
    tint: [1 + warm, 1, 1 - warm],
  };
}

function radiusAt(harmonics: PotholeShape["harmonics"], phi: number): number {
  let r = 1;
  for (const h of harmonics) r += h.amp * Math.cos(h.k * phi + h.phase);
  return r;
}

/** The hole's outline in image pixels (the light rim lies outside it and is not part of the box). */
export function potholeOutline(pose: PotholePose, samples = 180): [number, number][] {
  const shape = shapeOf(pose.seed);
  const a = pose.size / 2;
  const b = a / pose.aspect;
  const cos = Math.cos(pose.angle);
  const sin = Math.sin(pose.angle);
  const points: [number, number][] = [];
  for (let i = 0; i < samples; i++) {
    const phi = (i / samples) * 2 * Math.PI;
    const r = radiusAt(shape.harmonics, phi) / shape.maxRadius;
    const u = r * Math.cos(phi) * a;
    const v = r * Math.sin(phi) * b;
    points.push([pose.cx + u * cos - v * sin, pose.cy + u * sin + v * cos]);
  }
  return points;
}

export function potholeBox(pose: PotholePose): PixelBox {
  return boundsOf(potholeOutline(pose, 720));
}

export function drawPothole(canvas: Canvas, pose: PotholePose, surface: Rgb): void {
  const shape = shapeOf(pose.seed);
  const gravel = valueNoise(pose.seed + 1, Math.max(2, pose.size / 24));
  const crumble = valueNoise(pose.seed + 2, 1);
  const a = pose.size / 2;
  const b = a / pose.aspect;
  const reach = a * (1 + shape.rimWidth) + 2;
  const r = clipRect(canvas, pose.cx - reach, pose.cy - reach, pose.cx + reach, pose.cy + reach);
  const cos = Math.cos(pose.angle);
  const sin = Math.sin(pose.angle);
  const rim: Rgb = [surface[0] * 1.35, surface[1] * 1.35, surface[2] * 1.35];
  // Light falls from one side: the wall facing it is lit, the opposite wall is in shadow.
  const light = createRng(pose.seed + 3).uniform(0, 2 * Math.PI);
  const factor: [number, number, number] = [1, 1, 1];
  for (let y = r.y0; y <= r.y1; y++) {
    for (let x = r.x0; x <= r.x1; x++) {
      const dx = x + 0.5 - pose.cx;
      const dy = y + 0.5 - pose.cy;
      const u = (dx * cos + dy * sin) / a;
      const v = (-dx * sin + dy * cos) / b;
      const phi = Math.atan2(v, u);
      const rho = (Math.hypot(u, v) * shape.maxRadius) / radiusAt(shape.harmonics, phi);
      // Antialiased edge about one pixel wide, whatever the pothole's size.
      const inside = Math.max(0, Math.min(1, (1 - rho) * b + 0.5));
      if (inside > 0) {
        const wall = 0.12 * Math.cos(phi - light) * Math.max(0, rho - 0.6) * 2.5;
        const f = (pose.depth + (1 - pose.depth) * 0.3 * rho * rho + wall) * (1 + 0.12 * gravel(x, y));
        for (let c = 0; c < 3; c++) factor[c] = 1 - inside * (1 - f * shape.tint[c]!);
        shadePixel(canvas, x, y, factor);
      }
      const rimT = (rho - 1) / shape.rimWidth;
      if (rimT > -0.05 && rimT < 1) {
        const rough = 0.6 + 0.4 * crumble(3 + 3 * Math.cos(phi), 3 + 3 * Math.sin(phi));
        blendPixel(canvas, x, y, rim, shape.rimStrength * rough * (1 - Math.max(0, rimT)) * (1 - inside));
      }
    }
  }
}
