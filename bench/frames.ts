import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import sharp from "sharp";
import { encodeScene, renderRoadScene } from "../src/synthetic/road-scene.js";

/** One encoded frame, with its base64 precomputed so JSON doors do not spend bench CPU per send. */
export interface BenchFrame {
  bytes: Buffer;
  base64: string;
  width: number;
  height: number;
}

export interface FrameSet {
  source: string;
  frames: BenchFrame[];
}

function benchFrame(bytes: Buffer, width: number, height: number): BenchFrame {
  return { bytes, base64: bytes.toString("base64"), width, height };
}

/** Seeded road scenes: the same bytes every run, several frames so tracking sees motion-like change. */
export async function syntheticFrames(width: number, height: number, count: number): Promise<FrameSet> {
  const frames: BenchFrame[] = [];
  for (let seed = 1; seed <= count; seed++) {
    const scene = renderRoadScene({ seed, width, height });
    frames.push(benchFrame(await encodeScene(scene, "jpeg", 90), width, height));
  }
  return { source: `synthetic road scenes ${width}x${height} JPEG q90 (renderRoadScene seeds 1-${count})`, frames };
}

/** Real road photos (as the trained model expects), first `count` in name order. */
export async function photoFrames(dir: string, count: number): Promise<FrameSet | undefined> {
  if (!existsSync(dir)) return undefined;
  const names = readdirSync(dir)
    .filter((n) => /\.(jpe?g)$/i.test(n))
    .sort()
    .slice(0, count);
  if (names.length === 0) return undefined;
  const frames: BenchFrame[] = [];
  for (const name of names) {
    const bytes = readFileSync(join(dir, name));
    const meta = await sharp(bytes).metadata();
    frames.push(benchFrame(bytes, meta.width ?? 0, meta.height ?? 0));
  }
  const sizes = [...new Set(frames.map((f) => `${f.width}x${f.height}`))].join(", ");
  return { source: `${frames.length} photos from ${dir} (${sizes})`, frames };
}

export function meanBytes(set: FrameSet): number {
  return set.frames.reduce((a, f) => a + f.bytes.length, 0) / Math.max(1, set.frames.length);
}
