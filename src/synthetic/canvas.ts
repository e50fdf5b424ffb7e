/**
 * A float RGB image (0..255 per channel) that the painters composite into; quantised to RGB8 once at
 * the end so that layered shading does not accumulate rounding.
 */
export interface Canvas {
  readonly width: number;
  readonly height: number;
  readonly data: Float32Array;
}

export type Rgb = readonly [number, number, number];

export function createCanvas(width: number, height: number): Canvas {
  return { width, height, data: new Float32Array(width * height * 3) };
}

/** Multiplies one pixel by a per-channel factor (shadows, dark hazards). */
export function shadePixel(canvas: Canvas, x: number, y: number, factor: Rgb): void {
  const i = (y * canvas.width + x) * 3;
  const d = canvas.data;
  d[i] = d[i]! * factor[0];
  d[i + 1] = d[i + 1]! * factor[1];
  d[i + 2] = d[i + 2]! * factor[2];
}

/** Blends one pixel towards a colour with opacity alpha in 0..1. */
export function blendPixel(canvas: Canvas, x: number, y: number, color: Rgb, alpha: number): void {
  const i = (y * canvas.width + x) * 3;
  const d = canvas.data;
  d[i] = d[i]! + (color[0] - d[i]!) * alpha;
  d[i + 1] = d[i + 1]! + (color[1] - d[i + 1]!) * alpha;
  d[i + 2] = d[i + 2]! + (color[2] - d[i + 2]!) * alpha;
}

/** Integer pixel bounds of a float rectangle, clipped to the canvas; empty when max < min. */
export function clipRect(
  canvas: Canvas,
  x1: number,
  y1: number,
  x2: number,
  y2: number,
): { x0: number; y0: number; x1: number; y1: number } {
  return {
    x0: Math.max(0, Math.floor(x1)),
    y0: Math.max(0, Math.floor(y1)),
    x1: Math.min(canvas.width - 1, Math.ceil(x2)),
    y1: Math.min(canvas.height - 1, Math.ceil(y2)),
  };
}

export function toRgb8(canvas: Canvas): Buffer {
  const out = Buffer.alloc(canvas.data.length);
  for (let i = 0; i < out.length; i++) {
    const v = Math.round(canvas.data[i]!);
    out[i] = v < 0 ? 0 : v > 255 ? 255 : v;
  }
  return out;
}
