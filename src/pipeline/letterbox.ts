import type { Sharp } from "sharp";
import type { Tensor } from "../inference/engine.js";

/** Where the source image lands inside the model input. */
export interface Letterbox {
  /** Source pixels × scale = input pixels. */
  scale: number;
  /** Resized source size inside the input. */
  width: number;
  height: number;
  /** Gray padding on each side; left/top are also the offset of the image in the input. */
  top: number;
  bottom: number;
  left: number;
  right: number;
}

/** Ultralytics pads with this gray; the models were trained on it. */
export const PAD_VALUE = 114;

/** Python's round(): halves go to the even neighbour (and never -0, which would show up in padding sizes). */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return (Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r) + 0;
}

/**
 * The geometry of Ultralytics `LetterBox(auto=False, scale_fill=False, scaleup=True, center=True)`,
 * reproduced to the pixel — including Python's banker's rounding and the ±0.1 split of odd padding —
 * because a one-pixel shift already moves boxes the model was validated with.
 */
export function letterbox(srcWidth: number, srcHeight: number, dstWidth: number, dstHeight: number): Letterbox {
  const scale = Math.min(dstHeight / srcHeight, dstWidth / srcWidth);
  // At least one pixel: Ultralytics would hand cv2 a zero size for a 20000×1 strip and fail.
  const width = Math.max(1, roundHalfEven(srcWidth * scale));
  const height = Math.max(1, roundHalfEven(srcHeight * scale));
  const dw = (dstWidth - width) / 2;
  const dh = (dstHeight - height) / 2;
  return {
    scale,
    width,
    height,
    top: roundHalfEven(dh - 0.1),
    bottom: roundHalfEven(dh + 0.1),
    left: roundHalfEven(dw - 0.1),
    right: roundHalfEven(dw + 0.1),
  };
}

const TO_UNIT = Float32Array.from({ length: 256 }, (_, v) => v / 255);

/**
 * Decodes, resizes and pads in one libvips pipeline to interleaved RGB bytes, then makes the planar
 * float tensor in a single pass: one decoded buffer and one tensor, no intermediate images.
 * Bilinear like Ultralytics' cv2.INTER_LINEAR; alpha is dropped and gray/CMYK become sRGB, as
 * cv2.imread(IMREAD_COLOR) does.
 */
export async function letterboxTensor(
  image: Sharp,
  box: Letterbox,
  dstWidth: number,
  dstHeight: number,
): Promise<Tensor> {
  const { data, info } = await image
    .resize(box.width, box.height, { fit: "fill", kernel: "linear" })
    .extend({
      top: box.top,
      bottom: box.bottom,
      left: box.left,
      right: box.right,
      background: { r: PAD_VALUE, g: PAD_VALUE, b: PAD_VALUE },
    })
    .removeAlpha()
    .toColourspace("srgb")
    .raw({ depth: "uchar" })
    .toBuffer({ resolveWithObject: true });
  if (info.width !== dstWidth || info.height !== dstHeight || info.channels !== 3) {
    throw new Error(`letterbox produced ${info.width}×${info.height}×${info.channels}, expected ${dstWidth}×${dstHeight}×3`);
  }
  const plane = dstWidth * dstHeight;
  const out = new Float32Array(3 * plane);
  for (let i = 0, p = 0; i < plane; i++, p += 3) {
    out[i] = TO_UNIT[data[p]];
    out[plane + i] = TO_UNIT[data[p + 1]];
    out[2 * plane + i] = TO_UNIT[data[p + 2]];
  }
  return { data: out, dims: [1, 3, dstHeight, dstWidth] };
}
