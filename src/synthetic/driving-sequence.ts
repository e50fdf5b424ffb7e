import {
  hazardPoseAt,
  type HazardClass,
  type SyntheticHazard,
  type SyntheticScene,
} from "../tracking/synthetic-tracks.js";
import { addGrain, paintAsphalt, randomAsphaltStyle, type AsphaltStyle } from "./asphalt.js";
import { clipBox, type PixelBox } from "./box.js";
import { blendPixel, createCanvas, toRgb8, type Canvas, type Rgb } from "./canvas.js";
import { crackBox, drawCrack, randomCrack, type CrackPose } from "./crack.js";
import { drawPothole, potholeBox, randomPothole, type PotholePose } from "./pothole.js";
import { createRng, deriveSeed } from "./prng.js";
import { HAZARD_CLASSES, type GroundTruthBox, type HazardClassName, type RoadScene } from "./road-scene.js";

/**
 * Short driving videos rendered as images, with ground-truth identities per frame: the road seen by
 * a forward camera moving at constant speed, potholes and cracks lying on it that appear small near
 * the horizon, move down and grow as the car approaches (perspective), and leave the frame at the
 * bottom or a side. Some hazards are washed out (glare, spray) for a frame or two, so a detector
 * briefly misses them. Motion and placement come from the tracker's ground-truth generator
 * (src/tracking/synthetic-tracks.ts); the pixels from the road-scene painters, so the filter model
 * sees the same hazards it sees in still scenes.
 *
 *   const seq = createDrivingSequence({ seed: 1, frames: 60, fps: 10, speedKmh: 30 });
 *   for (const frame of seq) await encodeScene(frame, "jpeg");   // a frame is a RoadScene
 */

export interface DrivingSequenceOptions {
  seed: number;
  /** Number of frames; default 40. Every hazard passes completely within them (when they are enough). */
  frames?: number;
  /** Image size; default 640×480 (the filter model's native scale). */
  width?: number;
  height?: number;
  /** Frame rate the timestamps follow; default 10. */
  fps?: number;
  /** Vehicle speed; default 43.2 km/h (12 m/s, as the tracker's synthetic sequences). */
  speedKmh?: number;
  /** Hazards on the road, kept apart from each other in every frame; default 4. */
  hazards?: number;
  /** Per frame and hazard in view, chance that it is washed out for the next 1–2 frames; default 0.03. */
  occlusionProbability?: number;
  /** Capture time of frame 0, ms since the epoch; default 1_700_000_000_000. */
  startTimeMs?: number;
  /** Paint lane lines (a solid edge line and a dashed line that moves with the car); default true. */
  lanes?: boolean;
}

/** A hazard's identity and box in one frame. */
export interface DrivingTruth extends GroundTruthBox {
  /** Stable id of the physical hazard across the sequence, from 1. */
  readonly id: number;
  /**
   * How strongly the hazard is drawn, 0..1: 0 while it is washed out (in view but not drawn, so
   * nothing can detect it), below 1 for a crack too far away to show fully, 1 otherwise.
   */
  readonly visibility: number;
  /** Distance ahead of the camera, metres. */
  readonly distanceM: number;
}

/**
 * One rendered frame. It is a RoadScene (encodeScene works on it); `boxes` are the boxes of the
 * hazards drawn at all (visibility > 0), `truth` every annotated hazard with its id.
 */
export interface DrivingFrame extends RoadScene {
  readonly index: number;
  readonly timestampMs: number;
  readonly truth: readonly DrivingTruth[];
}

/** A hazard of the sequence, as placed on the road. */
export interface DrivingHazard {
  readonly id: number;
  readonly classId: number;
  readonly className: HazardClassName;
  /** Seconds after frame 0 at which the hazard is `startDistanceM` ahead. */
  readonly appearSec: number;
  readonly startDistanceM: number;
  /** Offset from the camera axis, metres (negative: left). */
  readonly lateralM: number;
  /** Width across the road, metres. */
  readonly widthM: number;
}

export interface DrivingSequence extends Iterable<DrivingFrame> {
  readonly width: number;
  readonly height: number;
  readonly fps: number;
  readonly frameCount: number;
  readonly speedMps: number;
  readonly hazards: readonly DrivingHazard[];
  /** Ground truth of frame `index` without rendering it (cheap). */
  truth(index: number): DrivingTruth[];
  /** Renders frame `index` (about 30 ms at 640×480); the same pixels on every call. */
  render(index: number): DrivingFrame;
}

export const DEFAULT_DRIVING_OPTIONS = Object.freeze({
  frames: 40,
  width: 640,
  height: 480,
  fps: 10,
  speedKmh: 43.2,
  hazards: 4,
  occlusionProbability: 0.03,
  startTimeMs: 1_700_000_000_000,
  lanes: true,
});

/**
 * Sizes on the road, chosen so that the filter model, models/road-hazard-filter.onnx (potholes
 * 20–190 px, cracks 60–420 px long in its 640-px input), sees each hazard over a good part of its
 * pass at 640×480.
 */
export const DRIVING_HAZARD_CLASSES: readonly HazardClass[] = [
  { id: 0, name: "crack", widthM: [1.2, 2.2], aspect: [0.18, 0.45] },
  { id: 1, name: "pothole", widthM: [0.6, 1.1], aspect: [0.45, 0.7] },
];

/** Hazards stay within this lateral band; lane lines lie outside it. */
const HAZARD_LATERAL_M: readonly [number, number] = [-2.6, 2.6];
const EDGE_LINE_M = 4.2;
const DASHED_LINE_M = -4.2;

interface HazardPlan {
  hazard: SyntheticHazard;
  crack?: Omit<CrackPose, "cx" | "cy" | "length" | "angle">;
  pothole?: Omit<PotholePose, "cx" | "cy" | "size" | "aspect">;
  /** +1 or -1: which way a crack slants. */
  slant: number;
  /** Frames in which the hazard is washed out. */
  hidden: Set<number>;
}

type HazardDrawing = ({ kind: "crack"; pose: CrackPose } | { kind: "pothole"; pose: PotholePose }) & { visibility: number };

export function createDrivingSequence(input: DrivingSequenceOptions): DrivingSequence {
  const o = { ...DEFAULT_DRIVING_OPTIONS, ...input };
  for (const key of ["frames", "width", "height", "hazards"] as const) {
    if (!Number.isInteger(o[key]) || o[key] < (key === "hazards" ? 0 : 1)) throw new RangeError(`${key} must be a positive integer`);
  }
  if (!(o.fps > 0)) throw new RangeError("fps must be > 0");
  if (!(o.speedKmh > 0)) throw new RangeError("speedKmh must be > 0");
  if (!(o.occlusionProbability >= 0 && o.occlusionProbability <= 1)) throw new RangeError("occlusionProbability must be in [0, 1]");

  const { width, height, fps } = o;
  const speedMps = o.speedKmh / 3.6;
  // The tracker sequences' camera (1280×720, f 1000 px, horizon at 40 %), scaled to this image.
  const scene: SyntheticScene = {
    width,
    height,
    horizonY: Math.round(0.4 * height),
    focalPx: (1000 / 1280) * width,
    cameraHeightM: 1.3,
    speedMps,
  };
  const placed = placeHazards(o, scene);

  const plans: HazardPlan[] = placed.map((hazard) => {
    const rng = createRng(deriveSeed(o.seed, 3, hazard.id));
    const plan: HazardPlan = { hazard, slant: rng.chance(0.5) ? 1 : -1, hidden: new Set() };
    if (hazard.className === "crack") {
      const { seed, width: lineWidth, depth } = randomCrack(rng, 1, 1);
      plan.crack = { seed, width: lineWidth, depth };
    } else {
      const { seed, depth } = randomPothole(rng, 1, 1);
      plan.pothole = { seed, depth, angle: rng.uniform(-0.15, 0.15) };
    }
    return plan;
  });
  const frameTime = (i: number): number => i / fps;

  // Washed-out runs: decided per hazard from its own stream, so adding a hazard changes no other.
  // A run is followed by at least one frame in which the hazard shows, so a gap never exceeds 2.
  for (const plan of plans) {
    const rng = createRng(deriveSeed(o.seed, 4, plan.hazard.id));
    let left = 0;
    for (let i = 0; i < o.frames; i++) {
      if (!drawingOf(scene, plan, frameTime(i))) continue;
      if (left === 0 && !plan.hidden.has(i - 1) && rng.chance(o.occlusionProbability)) left = rng.chance(0.5) ? 1 : 2;
      if (left > 0) {
        plan.hidden.add(i);
        left--;
      }
    }
  }

  const truth = (index: number): DrivingTruth[] => {
    checkIndex(index, o.frames);
    const out: DrivingTruth[] = [];
    for (const plan of plans) {
      const t = frameTime(index);
      const drawing = drawingOf(scene, plan, t);
      if (!drawing) continue;
      const box = annotatedBox(drawing, width, height);
      if (!box) continue;
      const h = plan.hazard;
      const classId = h.className === "crack" ? 0 : 1;
      out.push({
        ...box,
        id: h.id,
        classId,
        className: HAZARD_CLASSES[classId],
        visibility: plan.hidden.has(index) ? 0 : drawing.visibility,
        distanceM: h.startDistanceM - speedMps * (t - h.appearSec),
      });
    }
    return out;
  };

  let background: Float32Array | undefined;
  const asphalt = randomAsphaltStyle(createRng(deriveSeed(o.seed, 1)));

  const render = (index: number): DrivingFrame => {
    checkIndex(index, o.frames);
    background ??= paintBackground(scene, asphalt, o.lanes).data;
    const canvas = createCanvas(width, height);
    canvas.data.set(background);
    const t = frameTime(index);
    if (o.lanes) paintRoadLine(canvas, scene, { lateralM: DASHED_LINE_M, widthM: 0.15, dashM: 3, gapM: 6, travelledM: speedMps * t });
    for (const plan of plans) {
      if (plan.hidden.has(index)) continue;
      const d = drawingOf(scene, plan, t);
      if (d?.kind === "pothole") drawPothole(canvas, d.pose, asphalt.base);
    }
    for (const plan of plans) {
      if (plan.hidden.has(index)) continue;
      const d = drawingOf(scene, plan, t);
      if (d?.kind === "crack" && d.visibility > 0) drawCrack(canvas, d.pose);
    }
    applyHaze(canvas, scene, hazeOf(asphalt));
    // Fresh sensor grain every frame, as a camera has.
    addGrain(canvas, deriveSeed(o.seed, 6, index), 3.5);
    const frameTruth = truth(index);
    const boxes: GroundTruthBox[] = frameTruth
      .filter((b) => b.visibility > 0)
      .map(({ x1, y1, x2, y2, classId, className }) => ({ x1, y1, x2, y2, classId, className }));
    return {
      index,
      timestampMs: o.startTimeMs + (index * 1000) / fps,
      width,
      height,
      rgb: toRgb8(canvas),
      boxes,
      truth: frameTruth,
    };
  };

  return {
    width,
    height,
    fps,
    frameCount: o.frames,
    speedMps,
    hazards: plans.map(({ hazard: h }) => ({
      id: h.id,
      classId: h.className === "crack" ? 0 : 1,
      className: h.className === "crack" ? "crack" : "pothole",
      appearSec: h.appearSec,
      startDistanceM: h.startDistanceM,
      lateralM: h.lateralM,
      widthM: h.widthM,
    })),
    truth,
    render,
    *[Symbol.iterator]() {
      for (let i = 0; i < o.frames; i++) yield render(i);
    },
  };
}

/** Every frame of a sequence, rendered at once (about 1 MB of RGB per 640×480 frame). */
export function renderDrivingSequence(options: DrivingSequenceOptions): { sequence: DrivingSequence; frames: DrivingFrame[] } {
  const sequence = createDrivingSequence(options);
  return { sequence, frames: [...sequence] };
}

/**
 * Hazards at random distances, offsets and sizes, each appearing at a time that lets it pass
 * completely within the sequence. Every pair stays apart in every frame, sideways by their mean
 * width plus 100 px: the filter model (models/road-hazard-filter.onnx) reads dark shapes side by
 * side (two cracks, two small potholes near the horizon 50 px apart) as one crack, and ground
 * truth should stay unambiguous. Fewer hazards than
 * asked for are placed when the road is too crowded.
 */
function placeHazards(o: Required<DrivingSequenceOptions>, scene: SyntheticScene): SyntheticHazard[] {
  const rng = createRng(deriveSeed(o.seed, 2));
  const uniform = ([lo, hi]: readonly [number, number]): number => rng.uniform(lo, hi);
  // Hazards start 25–30 m ahead at 43 km/h (where the filter model first sees a 1-m pothole),
  // about 2.5 s before they pass under the car; nearer at low speed, so the wait stays short.
  const reach = Math.max(18, Math.min(30, 2.5 * scene.speedMps));
  const times = Array.from({ length: o.frames }, (_, i) => i / o.fps);
  const durationSec = o.frames / o.fps;
  const hazards: SyntheticHazard[] = [];
  const paths: Array<Array<PixelBox | undefined>> = [];
  for (let k = 0; k < o.hazards; k++) {
    // The class is drawn once per hazard, not per try, so crowding does not favour small potholes.
    const cls = DRIVING_HAZARD_CLASSES[rng.int(0, DRIVING_HAZARD_CLASSES.length - 1)]!;
    for (let attempt = 0; attempt < 300; attempt++) {
      const h: SyntheticHazard = {
        id: hazards.length + 1,
        classId: cls.id,
        className: cls.name,
        appearSec: 0,
        startDistanceM: uniform([0.85 * reach, reach]),
        lateralM: uniform(HAZARD_LATERAL_M),
        widthM: uniform(cls.widthM),
        aspect: uniform(cls.aspect),
        baseConfidence: 1,
      };
      const passSec = (h.startDistanceM - 1.5) / scene.speedMps;
      h.appearSec = Math.floor(rng.next() * Math.max(1, (durationSec - passSec) * o.fps)) / o.fps;
      const path = times.map((t) => spacedBox(scene, h, t));
      if (paths.some((other) => path.some((b, i) => b !== undefined && overlaps(b, other[i])))) continue;
      hazards.push(h);
      paths.push(path);
      break;
    }
  }
  return hazards;
}

/** The hazard's box while it is in view, grown by half its width + 50 px and a quarter of its height + 4 px on each side. */
function spacedBox(scene: SyntheticScene, h: SyntheticHazard, t: number): PixelBox | undefined {
  const p = hazardPoseAt(scene, h, t);
  if (!p) return undefined;
  const mx = p.w / 2 + 50;
  const my = p.h / 4 + 4;
  const box = { x1: p.cx - p.w / 2 - mx, y1: p.cy - p.h / 2 - my, x2: p.cx + p.w / 2 + mx, y2: p.cy + p.h / 2 + my };
  return box.x2 > 0 && box.x1 < scene.width && box.y1 < scene.height ? box : undefined;
}

function overlaps(a: PixelBox, b: PixelBox | undefined): boolean {
  return b !== undefined && a.x1 < b.x2 && b.x1 < a.x2 && a.y1 < b.y2 && b.y1 < a.y2;
}

function checkIndex(index: number, frames: number): void {
  if (!Number.isInteger(index) || index < 0 || index >= frames) throw new RangeError(`frame index ${index} out of range`);
}

/**
 * The hazard's drawing at time t: its box follows the ground-truth generator's pinhole projection.
 * A crack's line width grows with its size up to the painter's widest, and a crack shorter than
 * 50 px does not show at all, fading in up to 90 px: far cracks are thin and faint, as real ones
 * are, and the filter model boxes a crack shorter than its 60-px templates far too large.
 * Potholes keep their look at every scale.
 */
function drawingOf(scene: SyntheticScene, plan: HazardPlan, t: number): HazardDrawing | undefined {
  const p = hazardPoseAt(scene, plan.hazard, t);
  if (!p) return undefined;
  const aspect = plan.hazard.aspect;
  if (plan.crack) {
    const angle = plan.slant * Math.atan(aspect);
    const length = p.w / Math.cos(angle);
    const width = Math.max(1, plan.crack.width * Math.min(1, p.w / 60));
    const visibility = Math.min(1, Math.max(0, (length - 50) / 40));
    const depth = 1 - (1 - plan.crack.depth) * visibility;
    return { kind: "crack", pose: { ...plan.crack, cx: p.cx, cy: p.cy, length, angle, width, depth }, visibility };
  }
  if (plan.pothole) {
    return { kind: "pothole", pose: { ...plan.pothole, cx: p.cx, cy: p.cy, size: p.w, aspect: 1 / aspect }, visibility: 1 };
  }
  return undefined;
}

/** The drawn box clipped to the image; undefined when less than a quarter of it is in view. */
function annotatedBox(d: HazardDrawing, width: number, height: number): PixelBox | undefined {
  const full = d.kind === "crack" ? crackBox(d.pose) : potholeBox(d.pose);
  const clipped = clipBox(full, width, height);
  const area = (b: PixelBox): number => Math.max(0, b.x2 - b.x1) * Math.max(0, b.y2 - b.y1);
  if (clipped.x2 - clipped.x1 < 2 || clipped.y2 - clipped.y1 < 2) return undefined;
  return area(clipped) >= 0.25 * area(full) ? clipped : undefined;
}

/** Sky above the horizon, asphalt below, and the solid edge line (it does not move). */
function paintBackground(scene: SyntheticScene, asphalt: AsphaltStyle, lanes: boolean): Canvas {
  const canvas = createCanvas(scene.width, scene.height);
  paintAsphalt(canvas, asphalt);
  // The sky meets the road in a haze as bright as the asphalt: a bright sky over a dark road edge
  // and the lane lines converging on it would make thin dark wedges the crack filters fire on.
  const top: Rgb = [150, 178, 212];
  const low = hazeOf(asphalt);
  const d = canvas.data;
  for (let y = 0; y < scene.horizonY; y++) {
    const f = y / Math.max(1, scene.horizonY - 1);
    for (let x = 0; x < scene.width; x++) {
      const i = (y * scene.width + x) * 3;
      for (let c = 0; c < 3; c++) d[i + c] = top[c]! + (low[c]! - top[c]!) * f;
    }
  }
  if (lanes) paintRoadLine(canvas, scene, { lateralM: EDGE_LINE_M, widthM: 0.15, dashM: 0, gapM: 0, travelledM: 0 });
  return canvas;
}

interface RoadLine {
  lateralM: number;
  widthM: number;
  /** Dash and gap lengths along the road; gap 0 draws a solid line. */
  dashM: number;
  gapM: number;
  /** Distance driven so far: dashes move towards the camera by it. */
  travelledM: number;
}

/** A painted line on the road in perspective: each image row is one distance ahead. */
function paintRoadLine(canvas: Canvas, scene: SyntheticScene, line: RoadLine): void {
  const paint: Rgb = [228, 228, 220];
  const cx = scene.width / 2;
  const period = line.dashM + line.gapM;
  for (let y = Math.ceil(scene.horizonY); y < scene.height; y++) {
    const below = y + 0.5 - scene.horizonY;
    if (below <= 0) continue;
    const z = (scene.focalPx * scene.cameraHeightM) / below;
    if (line.gapM > 0) {
      const along = (((z + line.travelledM) % period) + period) % period;
      if (along >= line.dashM) continue;
    }
    const centre = cx + (scene.focalPx * line.lateralM) / z;
    const half = (scene.focalPx * line.widthM) / (2 * z);
    // A line thinner than a pixel is drawn one pixel wide and proportionally faint; far away
    // (over 30 m) the paint fades out, so lines do not converge into thin wedges at the horizon.
    const strength = Math.min(1, 2 * half) * Math.min(1, Math.max(0, (60 - z) / 30));
    if (strength <= 0) continue;
    const x0 = Math.max(0, Math.floor(centre - half - 1));
    const x1 = Math.min(scene.width - 1, Math.ceil(centre + half + 1));
    for (let x = x0; x <= x1; x++) {
      const cover = Math.min(1, Math.max(0.5, half) + 0.5 - Math.abs(x + 0.5 - centre));
      if (cover > 0) blendPixel(canvas, x, y, paint, cover * strength * 0.9);
    }
  }
}

function hazeOf(asphalt: AsphaltStyle): Rgb {
  const [r, g, b] = asphalt.base;
  return [r * 1.1 + 6, g * 1.1 + 8, b * 1.1 + 12];
}

/** Aerial perspective: the road (hazards included) fades into the haze with distance. */
function applyHaze(canvas: Canvas, scene: SyntheticScene, haze: Rgb): void {
  for (let y = Math.ceil(scene.horizonY); y < scene.height; y++) {
    const below = y + 0.5 - scene.horizonY;
    const z = (scene.focalPx * scene.cameraHeightM) / below;
    const alpha = Math.min(0.85, Math.max(0, (z - 25) / 60));
    if (alpha <= 0) break;
    for (let x = 0; x < scene.width; x++) blendPixel(canvas, x, y, haze, alpha);
  }
}
