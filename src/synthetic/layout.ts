import { randomAsphaltStyle, type AsphaltStyle, type DarkPatch, type LaneMarking } from "./asphalt.js";
import { boxesOverlap, type PixelBox } from "./box.js";
import { crackBox, randomCrack, type CrackPose } from "./crack.js";
import { potholeBox, randomPothole, type PotholePose } from "./pothole.js";
import { createRng, deriveSeed, type Rng } from "./prng.js";

/** Everything that is drawn in one scene, before any pixel is drawn. */
export interface SceneLayout {
  readonly width: number;
  readonly height: number;
  readonly asphalt: AsphaltStyle;
  readonly lanes: readonly LaneMarking[];
  /** Oil stains and damp patches: dark, but faint compared with a pothole. */
  readonly stains: readonly DarkPatch[];
  /** Large soft shadows drawn over everything, hazards included. */
  readonly shadows: readonly DarkPatch[];
  readonly potholes: readonly PotholePose[];
  readonly cracks: readonly CrackPose[];
  readonly grainSigma: number;
  readonly grainSeed: number;
}

export interface LayoutOptions {
  seed: number;
  width?: number;
  height?: number;
  /** How many potholes to try to place; default 1–3 from the seed. Fewer fit when the image is small. */
  potholes?: number;
  /** How many cracks to try to place; default 1–2 from the seed. */
  cracks?: number;
}

/** Hazards keep this far apart (and from lane paint), so every ground-truth box is unambiguous. */
const GAP = 16;
const PLACEMENT_TRIES = 200;

export function layoutRoadScene(opts: LayoutOptions): SceneLayout {
  const width = opts.width ?? 640;
  const height = opts.height ?? 480;
  // Separate streams per concern: changing the number of cracks leaves the background untouched.
  const bg = createRng(deriveSeed(opts.seed, 1));
  const haz = createRng(deriveSeed(opts.seed, 2));
  const asphalt = randomAsphaltStyle(bg);
  const lanes = randomLanes(bg, width, height);
  const stains = Array.from({ length: bg.int(0, 3) }, () => randomStain(bg, width, height));
  const shadows = Array.from({ length: bg.chance(0.5) ? bg.int(1, 2) : 0 }, () => randomShadow(bg, width, height));

  const taken: PixelBox[] = [];
  const potholes: PotholePose[] = [];
  const cracks: CrackPose[] = [];
  const scale = Math.min(width, height) / 480;
  const potholeCount = opts.potholes ?? haz.int(1, 3);
  const crackCount = opts.cracks ?? haz.int(1, 2);
  for (let i = 0; i < potholeCount; i++) {
    const look = randomPothole(haz, 20, Math.min(150, 150 * scale));
    const pose = place(haz, width, height, taken, lanes, (cx, cy) => ({ ...look, cx, cy }), potholeBox);
    if (pose) potholes.push(pose);
  }
  for (let i = 0; i < crackCount; i++) {
    const look = randomCrack(haz, 60 * scale, Math.min(360, 0.8 * Math.min(width, height)));
    const pose = place(haz, width, height, taken, lanes, (cx, cy) => ({ ...look, cx, cy }), crackBox);
    if (pose) cracks.push(pose);
  }
  return {
    width,
    height,
    asphalt,
    lanes,
    stains,
    shadows,
    potholes,
    cracks,
    grainSigma: bg.uniform(2.5, 6),
    grainSeed: bg.int(0, 2 ** 31),
  };
}

/** Rejection sampling: a random centre whose box lies inside the image, clear of other hazards and paint. */
function place<P>(
  rng: Rng,
  width: number,
  height: number,
  taken: PixelBox[],
  lanes: readonly LaneMarking[],
  at: (cx: number, cy: number) => P,
  boxOf: (pose: P) => PixelBox,
): P | undefined {
  for (let i = 0; i < PLACEMENT_TRIES; i++) {
    const pose = at(rng.uniform(0, width), rng.uniform(0, height));
    const box = boxOf(pose);
    if (box.x1 < 4 || box.y1 < 4 || box.x2 > width - 4 || box.y2 > height - 4) continue;
    if (taken.some((t) => boxesOverlap(t, box, GAP))) continue;
    if (lanes.some((lane) => laneTouches(lane, box))) continue;
    taken.push(box);
    return pose;
  }
  return undefined;
}

function laneTouches(lane: LaneMarking, box: PixelBox): boolean {
  const nx = -Math.sin(lane.angle);
  const ny = Math.cos(lane.angle);
  const corners = [
    [box.x1, box.y1],
    [box.x2, box.y1],
    [box.x1, box.y2],
    [box.x2, box.y2],
  ] as const;
  const sides = corners.map(([x, y]) => (x - lane.x) * nx + (y - lane.y) * ny);
  const reach = lane.width / 2 + GAP;
  return Math.min(...sides) < reach && Math.max(...sides) > -reach;
}

function randomLanes(rng: Rng, width: number, height: number): LaneMarking[] {
  const lanes: LaneMarking[] = [];
  const paint = (): readonly [number, number, number] =>
    rng.chance(0.7) ? [rng.uniform(205, 240), rng.uniform(205, 240), rng.uniform(200, 235)] : [225, 185, 70];
  if (rng.chance(0.7)) {
    lanes.push({
      seed: rng.int(0, 2 ** 31),
      x: rng.uniform(0.25, 0.75) * width,
      y: height / 2,
      angle: Math.PI / 2 + rng.uniform(-0.3, 0.3),
      width: rng.uniform(10, 20),
      color: paint(),
      dash: rng.uniform(80, 160),
      gap: rng.uniform(60, 140),
      phase: rng.uniform(0, 200),
      wear: rng.uniform(0, 0.6),
    });
  }
  if (rng.chance(0.3)) {
    const left = rng.chance(0.5);
    lanes.push({
      seed: rng.int(0, 2 ** 31),
      x: (left ? rng.uniform(0.02, 0.12) : rng.uniform(0.88, 0.98)) * width,
      y: height / 2,
      angle: Math.PI / 2 + rng.uniform(-0.1, 0.1),
      width: rng.uniform(8, 16),
      color: paint(),
      dash: 0,
      gap: 0,
      phase: 0,
      wear: rng.uniform(0, 0.5),
    });
  }
  return lanes;
}

function randomStain(rng: Rng, width: number, height: number): DarkPatch {
  const r = rng.uniform(15, 60);
  const f = rng.uniform(0.8, 0.92);
  return {
    seed: rng.int(0, 2 ** 31),
    cx: rng.uniform(0, width),
    cy: rng.uniform(0, height),
    rx: r,
    ry: r * rng.uniform(0.5, 1),
    angle: rng.uniform(0, Math.PI),
    factor: [f, f * 0.99, f * 0.97],
    softness: rng.uniform(3, 10),
    roughness: rng.uniform(0.15, 0.35),
  };
}

function randomShadow(rng: Rng, width: number, height: number): DarkPatch {
  const f = rng.uniform(0.62, 0.82);
  return {
    seed: rng.int(0, 2 ** 31),
    cx: rng.uniform(-0.1, 1.1) * width,
    cy: rng.uniform(-0.1, 1.1) * height,
    rx: rng.uniform(150, 350),
    ry: rng.uniform(70, 200),
    angle: rng.uniform(0, Math.PI),
    // Skylight makes shadows slightly blue.
    factor: [f * 0.95, f, f * 1.06],
    softness: rng.uniform(10, 40),
    roughness: rng.uniform(0.15, 0.35),
  };
}
