/**
 * YUV4MPEG2 (".y4m") video from RGB frames: the format Chromium's fake camera plays
 * (`--use-file-for-fake-video-capture=file.y4m`), looping at the end. 4:2:0 chroma ("C420"), BT.601
 * limited range — what a browser assumes for untagged I420, so colours survive the round trip
 * through the camera, a canvas and JPEG closely enough for a detector tuned on the RGB scenes.
 */

export interface RgbFrame {
  readonly width: number;
  readonly height: number;
  /** Raw RGB8, row-major, no padding. */
  readonly rgb: Uint8Array;
}

export interface Y4mOptions {
  width: number;
  height: number;
  /** Frames per second written in the header; the fake camera delivers frames at this rate. */
  fps: number;
}

const clampByte = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : Math.round(v));

/** The file header; frames follow, each as `FRAME\n` plus its planes. */
export function y4mHeader(o: Y4mOptions): Uint8Array {
  if (o.width % 2 !== 0 || o.height % 2 !== 0) throw new RangeError(`4:2:0 needs even dimensions, got ${o.width}x${o.height}`);
  return new TextEncoder().encode(`YUV4MPEG2 W${o.width} H${o.height} F${Math.round(o.fps)}:1 Ip A1:1 C420\n`);
}

/** One frame: `FRAME\n`, the Y plane, then U and V averaged over 2×2 blocks. */
export function y4mFrame(f: RgbFrame): Uint8Array {
  const { width: w, height: h, rgb } = f;
  if (rgb.length !== w * h * 3) throw new RangeError(`expected ${w * h * 3} RGB bytes, got ${rgb.length}`);
  const tag = new TextEncoder().encode("FRAME\n");
  const cw = w / 2;
  const ch = h / 2;
  const out = new Uint8Array(tag.length + w * h + 2 * cw * ch);
  out.set(tag, 0);
  const yPlane = tag.length;
  const uPlane = yPlane + w * h;
  const vPlane = uPlane + cw * ch;
  for (let i = 0, p = 0; i < w * h; i++, p += 3) {
    const r = rgb[p] ?? 0;
    const g = rgb[p + 1] ?? 0;
    const b = rgb[p + 2] ?? 0;
    out[yPlane + i] = clampByte(16 + 0.257 * r + 0.504 * g + 0.098 * b);
  }
  for (let cy = 0; cy < ch; cy++) {
    for (let cx = 0; cx < cw; cx++) {
      let r = 0;
      let g = 0;
      let b = 0;
      for (const [dx, dy] of [[0, 0], [1, 0], [0, 1], [1, 1]] as const) {
        const p = ((2 * cy + dy) * w + 2 * cx + dx) * 3;
        r += rgb[p] ?? 0;
        g += rgb[p + 1] ?? 0;
        b += rgb[p + 2] ?? 0;
      }
      r /= 4;
      g /= 4;
      b /= 4;
      out[uPlane + cy * cw + cx] = clampByte(128 - 0.148 * r - 0.291 * g + 0.439 * b);
      out[vPlane + cy * cw + cx] = clampByte(128 + 0.439 * r - 0.368 * g - 0.071 * b);
    }
  }
  return out;
}

/** A whole file in memory (a few dozen VGA frames are a few MB). */
export function encodeY4m(frames: readonly RgbFrame[], fps: number): Uint8Array {
  const first = frames[0];
  if (!first) throw new RangeError("a y4m file needs at least one frame");
  const parts = [y4mHeader({ width: first.width, height: first.height, fps })];
  for (const f of frames) {
    if (f.width !== first.width || f.height !== first.height) throw new RangeError("every frame of a y4m file has the same size");
    parts.push(y4mFrame(f));
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
