import sharp, { type Metadata, type Sharp, type SharpOptions } from "sharp";
import { PipelineError } from "./types.js";

export interface ImageLimits {
  /** Largest encoded frame accepted, in bytes. */
  maxImageBytes: number;
  /** Largest decoded frame accepted, width × height. */
  maxImagePixels: number;
}

/** A frame whose header has been checked; pixels are decoded only when `image` is consumed. */
export interface OpenedImage {
  /** Pipeline that yields the pixels with EXIF orientation applied. */
  image: Sharp;
  /** Size after EXIF orientation. */
  width: number;
  height: number;
  format: "jpeg" | "png" | "webp";
}

type Format = OpenedImage["format"];

/**
 * Identifies the container by its magic bytes before libvips sees it, so formats the service never
 * accepts (SVG through librsvg, TIFF, GIF, HEIF...) are refused without running their decoders.
 */
export function sniffFormat(bytes: Uint8Array): Format | undefined {
  const b = (i: number): number => bytes[i] ?? -1;
  if (b(0) === 0xff && b(1) === 0xd8 && b(2) === 0xff) return "jpeg";
  if ([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a].every((v, i) => b(i) === v)) return "png";
  const ascii = (from: number, text: string): boolean => [...text].every((c, i) => b(from + i) === c.charCodeAt(0));
  if (ascii(0, "RIFF") && ascii(8, "WEBP")) return "webp";
  return undefined;
}

/**
 * Checks a frame's bytes and header against the limits and prepares its decode. Only the header is
 * parsed here: an oversized image (say a 20000×20000 PNG of a few hundred bytes) is refused before
 * a single pixel is allocated.
 */
export async function openImage(bytes: Uint8Array, limits: ImageLimits): Promise<OpenedImage> {
  if (bytes.length === 0) throw new PipelineError("invalid_image", "the image is empty");
  if (bytes.length > limits.maxImageBytes) {
    throw new PipelineError("image_too_large", `the image is ${bytes.length} bytes; the limit is ${limits.maxImageBytes}`);
  }
  const sniffed = sniffFormat(bytes);
  if (sniffed === undefined) throw new PipelineError("invalid_image", "the image is not a JPEG, PNG or WebP file");

  const options: SharpOptions = {
    // libvips' "error" level stops on truncated or corrupt pixel data but tolerates the harmless
    // warnings many phone and dashcam JPEGs trigger (e.g. extraneous bytes before a marker).
    failOn: "error",
    limitInputPixels: limits.maxImagePixels,
    sequentialRead: true,
  };
  let meta: Metadata;
  try {
    // Header only, so no pixel limit here: an oversized image is reported as too large below rather
    // than as an unreadable header.
    meta = await sharp(bytes, { ...options, limitInputPixels: false }).metadata();
  } catch (e) {
    throw new PipelineError("invalid_image", "the image header cannot be read", { cause: e });
  }
  if (meta.format !== sniffed) throw new PipelineError("invalid_image", "the image is not a JPEG, PNG or WebP file");
  const { width, height } = meta.autoOrient;
  if (!(width > 0 && height > 0)) throw new PipelineError("invalid_image", "the image has no pixels");
  if (width * height > limits.maxImagePixels) {
    throw new PipelineError(
      "image_too_large",
      `the image is ${width}×${height} pixels; the limit is ${limits.maxImagePixels} pixels`,
    );
  }
  return { image: sharp(bytes, { ...options, autoOrient: true }), width, height, format: sniffed };
}
