/**
 * Writes the calibration set for scripts/quantize/quantize.py: a fixed, seeded sample of TRAINING
 * images (each data set's train.txt; never val, never potholes-67), decoded and letterboxed by the
 * service's own code (src/pipeline: EXIF orientation, bilinear resize, gray 114 padding) to the
 * model's input size, so the activations calibrated on are the ones the service will feed it.
 *
 *   npx tsx scripts/quantize/calibration-images.ts --model models/road-hazard-yolo-fp32.onnx \
 *     --out .cache/quantize/calib --per-source 64 --seed 0 \
 *     ../shared/testdata/train/road-damage-br ../shared/testdata/train/rdd2022-china-motorbike \
 *     ../shared/testdata/train/chitholian-potholes
 *
 * --exclude OTHER.json leaves out the images of another sample (a held-out set for sensitivity.py).
 *
 * Output: OUT.rgb (N × H × W × 3 bytes, interleaved RGB as the engine receives it) and OUT.json
 * (width, height, count, seed and the images used, in order).
 */
import { readFile, writeFile, mkdir } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { readOnnxMetadataProps } from "../../src/inference/onnx-metadata.js";
import { parseOnnxMetadata } from "../../src/inference/model-metadata.js";
import { openImage } from "../../src/pipeline/decode-image.js";
import { letterbox, letterboxRgb } from "../../src/pipeline/letterbox.js";

const { values: args, positionals: sources } = parseArgs({
  allowPositionals: true,
  options: {
    model: { type: "string" },
    out: { type: "string" },
    "per-source": { type: "string", default: "64" },
    seed: { type: "string", default: "0" },
    split: { type: "string", default: "train.txt" },
    // A manifest (OUT.json) whose images are left out: a held-out set for sensitivity.py.
    exclude: { type: "string" },
  },
});

/** mulberry32: a tiny seeded PRNG, so the sample is the same on every machine and Node version. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function sample<T>(items: readonly T[], n: number, random: () => number): T[] {
  const a = [...items];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [a[i], a[j]] = [a[j] as T, a[i] as T];
  }
  return a.slice(0, n);
}

async function main(): Promise<void> {
  if (!args.model || !args.out || sources.length === 0) {
    throw new Error("usage: calibration-images.ts --model M.onnx --out PREFIX [--per-source 64] [--seed 0] DATASET_DIR...");
  }
  const imgsz = parseOnnxMetadata(await readOnnxMetadataProps(resolve(args.model))).imgsz;
  if (!imgsz) throw new Error("the model has no imgsz metadata; cannot tell the input size");
  const { width, height } = imgsz;
  const perSource = Number(args["per-source"]);
  const seed = Number(args.seed);
  const random = rng(seed);
  const excluded = new Set<string>(args.exclude ? (JSON.parse(await readFile(args.exclude, "utf8")) as { images: string[] }).images : []);
  const picked: string[] = [];
  for (const dir of sources) {
    const lines = (await readFile(join(dir, args.split ?? "train.txt"), "utf8"))
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l && !excluded.has(join(dir, l)));
    // Sorted first: the sample must not depend on the order of the split file.
    picked.push(...sample(lines.sort(), perSource, random).map((rel) => join(dir, rel)));
  }
  const frame = width * height * 3;
  const out = Buffer.alloc(picked.length * frame);
  const limits = { maxImageBytes: 64 << 20, maxImagePixels: 100_000_000 };
  for (const [i, path] of picked.entries()) {
    const opened = await openImage(await readFile(path), limits);
    const box = letterbox(opened.width, opened.height, width, height);
    const rgb = await letterboxRgb(opened.image, box, width, height);
    Buffer.from(rgb.data.buffer, rgb.data.byteOffset, rgb.data.byteLength).copy(out, i * frame);
  }
  await mkdir(dirname(resolve(args.out)), { recursive: true });
  await writeFile(`${args.out}.rgb`, out);
  await writeFile(`${args.out}.json`, JSON.stringify({ width, height, count: picked.length, seed, perSource, images: picked }, null, 2) + "\n");
  console.log(`${picked.length} training images letterboxed to ${width}x${height} -> ${args.out}.rgb`);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
