import type { Sharp } from "sharp";
import { hwcToChw } from "../inference/chw.mjs";
import type { RgbImage, Tensor } from "../inference/engine.js";

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

/**
 * Decodes, resizes and pads in one libvips pipeline to interleaved RGB bytes: one decoded buffer,
 * no intermediate images. Bilinear like Ultralytics' cv2.INTER_LINEAR; alpha is dropped and
 * gray/CMYK become sRGB, as cv2.imread(IMREAD_COLOR) does. The engine makes the float tensor
 * (`InferenceEngine.runImage`), off the event loop.
 */
export async function letterboxRgb(image: Sharp, box: Letterbox, dstWidth: number, dstHeight: number): Promise<RgbImage> {
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
  return { data, width: dstWidth, height: dstHeight };
}

/** The planar float 0..1 tensor of an RGB image, made on this thread (engines without runImage). */
export function chwTensor(image: RgbImage): Tensor {
  const { width, height } = image;
  return { data: hwcToChw(image.data, new Float32Array(3 * width * height), width, height), dims: [1, 3, height, width] };
}

/** letterboxRgb then chwTensor: the model input as a float tensor, made on this thread. */
export async function letterboxTensor(image: Sharp, box: Letterbox, dstWidth: number, dstHeight: number): Promise<Tensor> {
  return chwTensor(await letterboxRgb(image, box, dstWidth, dstHeight));
}
