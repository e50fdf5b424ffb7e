// Interleaved 8-bit RGB (HWC) → planar float 0..1 (CHW), the input every YOLO export takes. Plain
// JavaScript so the ONNX Runtime worker (which cannot load TypeScript) and the main thread share it.

/** v / 255 as float32, by table: the same numbers whichever thread converts. */
const TO_UNIT = Float32Array.from({ length: 256 }, (_, v) => v / 255);

/**
 * Writes `rgb` (width × height × 3 bytes) into `out` (3 planes of width × height floats).
 * One pass over the source; the three plane writes stay sequential for the cache.
 */
export function hwcToChw(rgb, out, width, height) {
  const plane = width * height;
  if (rgb.length !== 3 * plane) throw new RangeError(`expected ${3 * plane} RGB bytes for ${width}×${height}, got ${rgb.length}`);
  if (out.length !== 3 * plane) throw new RangeError(`expected a ${3 * plane}-float tensor for ${width}×${height}, got ${out.length}`);
  for (let i = 0, p = 0; i < plane; i++, p += 3) {
    out[i] = TO_UNIT[rgb[p]];
    out[plane + i] = TO_UNIT[rgb[p + 1]];
    out[2 * plane + i] = TO_UNIT[rgb[p + 2]];
  }
  return out;
}
