import { blendPixel, clipRect, shadePixel, type Canvas, type Rgb } from "./canvas.js";
import { fractalNoise, valueNoise } from "./noise.js";
import { createRng, type Rng } from "./prng.js";

/** Surface colour and texture of the road. */
export interface AsphaltStyle {
  readonly seed: number;
  readonly base: Rgb;
  /** Amplitude of the large-scale mottling, as a fraction of the base brightness. */
  readonly mottle: number;
  /** Chance per pixel of an aggregate stone (a bright or dark speck). */
  readonly speckle: number;
}

/** A painted line along an infinite straight centreline, optionally dashed. */
export interface LaneMarking {
  readonly seed: number;
  /** A point on the centreline and the line direction in radians (0 = along +x). */
  readonly x: number;
  readonly y: number;
  readonly angle: number;
  readonly width: number;
  readonly color: Rgb;
  /** Dash and gap lengths in px; gap 0 means a solid line. */
  readonly dash: number;
  readonly gap: number;
  readonly phase: number;
  /** 0..1: how much of the paint is worn away in patches. */
  readonly wear: number;
}

/** A soft darker area with a noisy outline: oil stains, damp patches, tree or vehicle shadows. */
export interface DarkPatch {
  readonly seed: number;
  readonly cx: number;
  readonly cy: number;
  readonly rx: number;
  readonly ry: number;
  readonly angle: number;
  /** Brightness factor at full cover, e.g. 0.85. */
  readonly factor: Rgb;
  /** Width of the soft edge in px. */
  readonly softness: number;
  /** Outline roughness as a fraction of the radius. */
  readonly roughness: number;
}

export function randomAsphaltStyle(rng: Rng): AsphaltStyle {
  const gray = rng.uniform(85, 135);
  const tint = rng.uniform(-4, 4);
  return {
    seed: rng.int(0, 2 ** 31),
    base: [gray + tint, gray, gray - tint],
    mottle: rng.uniform(0.04, 0.1),
    speckle: rng.uniform(0.01, 0.04),
  };
}

export function paintAsphalt(canvas: Canvas, style: AsphaltStyle): void {
  const mottle = coarseField(canvas.width, canvas.height, 4, fractalNoise(style.seed, 96, 4));
  const grit = valueNoise(style.seed + 1, 3);
  const rng = createRng(style.seed + 2);
  const { width, height, data } = canvas;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let f = 1 + style.mottle * mottle[y * width + x]! + 0.05 * grit(x, y);
      if (rng.chance(style.speckle)) f *= rng.chance(0.5) ? rng.uniform(1.15, 1.45) : rng.uniform(0.6, 0.85);
      const i = (y * width + x) * 3;
      data[i] = style.base[0] * f;
      data[i + 1] = style.base[1] * f;
      data[i + 2] = style.base[2] * f;
    }
  }
}

/**
 * A smooth noise field sampled every `step` px and bilinearly filled in: its finest octave spans
 * 12 px, so this is indistinguishable from sampling every pixel and 16× cheaper.
 */
function coarseField(width: number, height: number, step: number, noise: (x: number, y: number) => number): Float32Array {
  const gw = Math.ceil(width / step) + 1;
  const gh = Math.ceil(height / step) + 1;
  const grid = new Float32Array(gw * gh);
  for (let j = 0; j < gh; j++) for (let i = 0; i < gw; i++) grid[j * gw + i] = noise(i * step, j * step);
  const out = new Float32Array(width * height);
  for (let y = 0; y < height; y++) {
    const j = Math.floor(y / step);
    const ty = y / step - j;
    for (let x = 0; x < width; x++) {
      const i = Math.floor(x / step);
      const tx = x / step - i;
      const a = grid[j * gw + i]! + (grid[j * gw + i + 1]! - grid[j * gw + i]!) * tx;
      const b = grid[(j + 1) * gw + i]! + (grid[(j + 1) * gw + i + 1]! - grid[(j + 1) * gw + i]!) * tx;
      out[y * width + x] = a + (b - a) * ty;
    }
  }
  return out;
}

export function paintLane(canvas: Canvas, lane: LaneMarking): void {
  const wear = fractalNoise(lane.seed, 12, 3);
  const ux = Math.cos(lane.angle);
  const uy = Math.sin(lane.angle);
  const half = lane.width / 2;
  const period = lane.dash + lane.gap;
  for (let y = 0; y < canvas.height; y++) {
    for (let x = 0; x < canvas.width; x++) {
      const dx = x + 0.5 - lane.x;
      const dy = y + 0.5 - lane.y;
      const across = Math.abs(-dx * uy + dy * ux);
      if (across > half + 1) continue;
      const along = dx * ux + dy * uy + lane.phase;
      let cover = Math.min(1, half + 0.5 - across);
      if (lane.gap > 0) {
        const t = ((along % period) + period) % period;
        cover *= Math.min(1, Math.max(0, Math.min(t + 0.5, lane.dash + 0.5 - t)));
      }
      const worn = Math.max(0, Math.min(1, 1.2 - lane.wear * (1 + wear(x, y))));
      if (cover > 0) blendPixel(canvas, x, y, lane.color, cover * worn * 0.92);
    }
  }
}

/** Darkens the canvas under the patch, with a soft, noisy edge. */
export function applyDarkPatch(canvas: Canvas, patch: DarkPatch): void {
  const outline = valueNoise(patch.seed, 1);
  const reach = Math.max(patch.rx, patch.ry) * (1 + patch.roughness) + patch.softness;
  const r = clipRect(canvas, patch.cx - reach, patch.cy - reach, patch.cx + reach, patch.cy + reach);
  const cos = Math.cos(patch.angle);
  const sin = Math.sin(patch.angle);
  const factor: [number, number, number] = [1, 1, 1];
  for (let y = r.y0; y <= r.y1; y++) {
    for (let x = r.x0; x <= r.x1; x++) {
      const dx = x + 0.5 - patch.cx;
      const dy = y + 0.5 - patch.cy;
      const u = (dx * cos + dy * sin) / patch.rx;
      const v = (-dx * sin + dy * cos) / patch.ry;
      const rho = Math.hypot(u, v);
      // Outline noise sampled on a circle of angles, so the edge wobbles but stays closed.
      const phi = Math.atan2(v, u);
      const edge = 1 + patch.roughness * outline(3 + 2.5 * Math.cos(phi), 3 + 2.5 * Math.sin(phi));
      const meanRadius = (patch.rx + patch.ry) / 2;
      const inside = ((edge - rho) * meanRadius) / patch.softness + 0.5;
      const cover = inside <= 0 ? 0 : inside >= 1 ? 1 : inside;
      if (cover === 0) continue;
      for (let c = 0; c < 3; c++) factor[c] = 1 - cover * (1 - patch.factor[c]!);
      shadePixel(canvas, x, y, factor);
    }
  }
}

/** Per-pixel sensor grain, added last so it lies on top of hazards and shadows alike. */
export function addGrain(canvas: Canvas, seed: number, sigma: number): void {
  const rng = createRng(seed);
  const d = canvas.data;
  // Gaussian luma noise plus faint uniform chroma noise (same variance as a 0.3σ normal, far cheaper).
  const chroma = sigma * 0.3 * Math.sqrt(12);
  for (let i = 0; i < d.length; i += 3) {
    const luma = rng.normal() * sigma;
    d[i] = d[i]! + luma + (rng.next() - 0.5) * chroma;
    d[i + 1] = d[i + 1]! + luma + (rng.next() - 0.5) * chroma;
    d[i + 2] = d[i + 2]! + luma + (rng.next() - 0.5) * chroma;
  }
}
