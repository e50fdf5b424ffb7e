import type { BoxCorners, TrackerDetection } from "./types.js";
import { createRng } from "../synthetic/prng.js";

/**
 * Ground-truth driving sequences for tracker tests: hazards lying on a flat road seen by a forward
 * pinhole camera moving at constant speed. A point at distance Z projects to y = horizon + f·H/Z and
 * its width to f·W/Z, so hazards appear small near the horizon, move down while growing linearly
 * with (y - horizon), and accelerate near the bottom as real ones do, which a constant-velocity filter
 * must cope with. Boxes only; rendering them as images is the scene generator's job.
 */

export interface HazardClass {
  id: number;
  name: string;
  /** Width on the road in metres, [min, max). */
  widthM: readonly [number, number];
  /** Box height / width in the image, [min, max). */
  aspect: readonly [number, number];
}

export const DEFAULT_HAZARD_CLASSES: readonly HazardClass[] = [
  { id: 0, name: "crack", widthM: [0.8, 2.5], aspect: [0.15, 0.4] },
  { id: 1, name: "pothole", widthM: [0.4, 1.2], aspect: [0.35, 0.7] },
];

export interface SyntheticScene {
  width: number;
  height: number;
  horizonY: number;
  focalPx: number;
  cameraHeightM: number;
  speedMps: number;
}

export interface SyntheticHazard {
  id: number;
  classId: number;
  className: string;
  /** Seconds after the sequence start at which the hazard is `startDistanceM` ahead. */
  appearSec: number;
  startDistanceM: number;
  /** Lateral offset from the camera axis, metres (negative: left). */
  lateralM: number;
  widthM: number;
  aspect: number;
  /** Detector confidence for this hazard when it is large and close. */
  baseConfidence: number;
}

/** Unclipped centre/size in pixels; undefined before the hazard appears or once it is under the car. */
export function hazardPoseAt(
  scene: SyntheticScene,
  hazard: SyntheticHazard,
  tSec: number,
): { cx: number; cy: number; w: number; h: number; distanceM: number } | undefined {
  if (tSec < hazard.appearSec) return undefined;
  const z = hazard.startDistanceM - scene.speedMps * (tSec - hazard.appearSec);
  if (z <= 0.5) return undefined;
  const w = (scene.focalPx * hazard.widthM) / z;
  return {
    cx: scene.width / 2 + (scene.focalPx * hazard.lateralM) / z,
    cy: scene.horizonY + (scene.focalPx * scene.cameraHeightM) / z,
    w,
    h: w * hazard.aspect,
    distanceM: z,
  };
}

/** The box clipped to the image; undefined when less than a quarter of it is in view (nor annotated). */
export function visibleBox(scene: SyntheticScene, hazard: SyntheticHazard, tSec: number): BoxCorners | undefined {
  const p = hazardPoseAt(scene, hazard, tSec);
  if (!p) return undefined;
  const full = { x1: p.cx - p.w / 2, y1: p.cy - p.h / 2, x2: p.cx + p.w / 2, y2: p.cy + p.h / 2 };
  const clipped = clip(full, scene);
  const area = (b: BoxCorners): number => Math.max(0, b.x2 - b.x1) * Math.max(0, b.y2 - b.y1);
  return area(clipped) >= 0.25 * area(full) && clipped.x2 - clipped.x1 >= 2 && clipped.y2 - clipped.y1 >= 2
    ? clipped
    : undefined;
}

export interface SyntheticOptions {
  seed: number;
  durationSec: number;
  fps: number;
  hazards: number;
  classes: readonly HazardClass[];
  scene: SyntheticScene;
  startDistanceM: readonly [number, number];
  lateralM: readonly [number, number];
  /** Standard deviation of each box edge, as a fraction of the box size. */
  boxJitter: number;
  confidenceJitter: number;
  /** Per frame and hazard, chance that the detector starts missing it for 1–2 frames. */
  missProbability: number;
  /** Chance per frame that a false positive appears; it lives 1..falsePositiveMaxFrames frames. */
  falsePositiveRate: number;
  falsePositiveMaxFrames: number;
  /** Drop every k-th frame (as the FPS limiter or queue would); 0 keeps all. */
  dropEvery: number;
  /** Keep every pair of boxes (hazards and false positives) apart in every frame. */
  nonOverlapping: boolean;
  startTimeSec: number;
}

export type SyntheticDefaults = Omit<SyntheticOptions, "seed">;

export const DEFAULT_SYNTHETIC_OPTIONS: Readonly<SyntheticDefaults> = Object.freeze<SyntheticDefaults>({
  durationSec: 8,
  fps: 10,
  hazards: 8,
  classes: DEFAULT_HAZARD_CLASSES,
  scene: { width: 1280, height: 720, horizonY: 288, focalPx: 1000, cameraHeightM: 1.3, speedMps: 12 },
  startDistanceM: [25, 35],
  lateralM: [-4, 4],
  boxJitter: 0.03,
  confidenceJitter: 0.05,
  missProbability: 0.05,
  falsePositiveRate: 0,
  falsePositiveMaxFrames: 2,
  dropEvery: 0,
  nonOverlapping: false,
  startTimeSec: 1_700_000_000,
});

export interface SyntheticGtBox extends BoxCorners {
  id: number;
  classId: number;
  className: string;
}

export interface SyntheticDetection extends TrackerDetection {
  /** Ground-truth id the detection came from; null for a false positive. */
  sourceId: number | null;
}

export interface SyntheticFrame {
  /** Index in the undropped sequence. */
  index: number;
  frameId: string;
  timestampSec: number;
  gt: SyntheticGtBox[];
  detections: SyntheticDetection[];
}

export interface SyntheticSequence {
  options: SyntheticOptions;
  hazards: SyntheticHazard[];
  frames: SyntheticFrame[];
}

export function generateSequence(input: Partial<SyntheticOptions> & { seed: number }): SyntheticSequence {
  const o: SyntheticOptions = { ...DEFAULT_SYNTHETIC_OPTIONS, ...input };
  const rng = mulberry32(o.seed);
  const scene = o.scene;
  const frameCount = Math.round(o.durationSec * o.fps);
  const times = Array.from({ length: frameCount }, (_, i) => i / o.fps);
  const boxesOf = (h: SyntheticHazard): Array<BoxCorners | undefined> => times.map((t) => visibleBox(scene, h, t));

  const hazards: SyntheticHazard[] = [];
  const tracks: Array<Array<BoxCorners | undefined>> = [];
  for (let attempt = 0; hazards.length < o.hazards && attempt < 1000 * o.hazards; attempt++) {
    const cls = o.classes[Math.floor(rng() * o.classes.length)];
    const h: SyntheticHazard = {
      id: hazards.length + 1,
      classId: cls.id,
      className: cls.name,
      appearSec: 0,
      startDistanceM: uniform(rng, o.startDistanceM),
      lateralM: uniform(rng, o.lateralM),
      widthM: uniform(rng, cls.widthM),
      aspect: uniform(rng, cls.aspect),
      baseConfidence: uniform(rng, [0.45, 0.9]),
    };
    // Whole passes only, so every hazard can be confirmed and counted within the sequence.
    const passSec = h.startDistanceM / scene.speedMps;
    h.appearSec = Math.floor(rng() * Math.max(1, (o.durationSec - passSec) * o.fps)) / o.fps;
    const boxes = boxesOf(h);
    if (o.nonOverlapping && tracks.some((other) => boxes.some((b, i) => touches(b, other[i])))) continue;
    hazards.push(h);
    tracks.push(boxes);
  }
  if (hazards.length < o.hazards) throw new Error(`could only place ${hazards.length} of ${o.hazards} hazards`);

  const frames: SyntheticFrame[] = times.map((t, index) => ({
    index,
    frameId: `f${index}`,
    timestampSec: o.startTimeSec + t,
    gt: [],
    detections: [],
  }));
  hazards.forEach((h, k) => {
    let missLeft = 0;
    // A burst of misses is followed by at least one detection, so a gap never exceeds 2 frames.
    let detectedSinceMiss = true;
    tracks[k].forEach((box, i) => {
      if (!box) return;
      frames[i].gt.push({ id: h.id, classId: h.classId, className: h.className, ...box });
      if (missLeft === 0 && detectedSinceMiss && rng() < o.missProbability) missLeft = rng() < 0.5 ? 1 : 2;
      if (missLeft > 0) {
        missLeft--;
        detectedSinceMiss = false;
        return;
      }
      detectedSinceMiss = true;
      const w = box.x2 - box.x1;
      const size = Math.min(1, w / 60);
      const confidence = clamp(h.baseConfidence * (0.7 + 0.3 * size) + o.confidenceJitter * normal(rng), 0.01, 0.99);
      const noisy = jitter(rng, box, o.boxJitter, scene);
      frames[i].detections.push({ ...noisy, confidence, classId: h.classId, className: h.className, sourceId: h.id });
    });
  });
  addFalsePositives(rng, o, frames);
  const kept = o.dropEvery > 0 ? frames.filter((f) => f.index % o.dropEvery !== o.dropEvery - 1) : frames;
  return { options: o, hazards, frames: kept };
}

function addFalsePositives(rng: () => number, o: SyntheticOptions, frames: SyntheticFrame[]): void {
  const scene = o.scene;
  for (let i = 0; i < frames.length; i++) {
    if (rng() >= o.falsePositiveRate) continue;
    const cls = o.classes[Math.floor(rng() * o.classes.length)];
    const w = 20 + rng() * 120;
    const h = w * uniform(rng, cls.aspect);
    const x1 = rng() * (scene.width - w);
    const y1 = scene.horizonY + rng() * (scene.height - scene.horizonY - h);
    const box = { x1, y1, x2: x1 + w, y2: y1 + h };
    const life = 1 + Math.floor(rng() * o.falsePositiveMaxFrames);
    const span = frames.slice(i, i + life);
    if (o.nonOverlapping && span.some((f) => [...f.gt, ...f.detections].some((b) => touches(box, b)))) continue;
    for (const f of span) {
      const confidence = 0.25 + 0.25 * rng();
      const noisy = jitter(rng, box, o.boxJitter, scene);
      f.detections.push({ ...noisy, confidence, classId: cls.id, className: cls.name, sourceId: null });
    }
  }
}

function jitter(rng: () => number, b: BoxCorners, sigma: number, scene: SyntheticScene): BoxCorners {
  const w = b.x2 - b.x1;
  const h = b.y2 - b.y1;
  const x1 = b.x1 + sigma * w * normal(rng);
  const y1 = b.y1 + sigma * h * normal(rng);
  const x2 = Math.max(x1 + 1, b.x2 + sigma * w * normal(rng));
  const y2 = Math.max(y1 + 1, b.y2 + sigma * h * normal(rng));
  return clip({ x1, y1, x2, y2 }, scene);
}

function clip(b: BoxCorners, scene: SyntheticScene): BoxCorners {
  return {
    x1: clamp(b.x1, 0, scene.width),
    y1: clamp(b.y1, 0, scene.height),
    x2: clamp(b.x2, 0, scene.width),
    y2: clamp(b.y2, 0, scene.height),
  };
}

/** Boxes closer than a few pixels count as touching, so jittered detections stay apart too. */
function touches(a: BoxCorners | undefined, b: BoxCorners | undefined, margin = 8): boolean {
  if (!a || !b) return false;
  return a.x1 - margin < b.x2 && b.x1 - margin < a.x2 && a.y1 - margin < b.y2 && b.y1 - margin < a.y2;
}

const clamp = (v: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, v));
const uniform = (rng: () => number, [lo, hi]: readonly [number, number]): number => lo + (hi - lo) * rng();

/** Standard normal by Box–Muller; 1 - u keeps the log argument in (0, 1]. */
function normal(rng: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
}

/** The project's seeded PRNG (src/synthetic/prng.ts) as a bare function: same sequence on every platform. */
export function mulberry32(seed: number): () => number {
  return createRng(seed).next;
}
