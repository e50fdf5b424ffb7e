import sharp from "sharp";
import { addGrain, applyDarkPatch, paintAsphalt, paintLane } from "./asphalt.js";
import { clipBox, type PixelBox } from "./box.js";
import { createCanvas, toRgb8 } from "./canvas.js";
import { crackBox, drawCrack } from "./crack.js";
import { layoutRoadScene, type LayoutOptions, type SceneLayout } from "./layout.js";
import { drawPothole, potholeBox } from "./pothole.js";

export { layoutRoadScene, type LayoutOptions, type SceneLayout } from "./layout.js";
export type { CrackPose } from "./crack.js";
export type { PotholePose } from "./pothole.js";

/** Class ids as in the default model's metadata `names`. */
export const HAZARD_CLASSES = ["crack", "pothole"] as const;
export type HazardClassName = (typeof HAZARD_CLASSES)[number];

export interface GroundTruthBox extends PixelBox {
  readonly classId: number;
  readonly className: HazardClassName;
}

export type RoadSceneOptions = LayoutOptions;

export interface RoadScene {
  readonly width: number;
  readonly height: number;
  /** Raw RGB8, row-major, no padding. */
  readonly rgb: Buffer;
  readonly boxes: readonly GroundTruthBox[];
}

export type SceneFormat = "jpeg" | "png" | "webp";

/** A random road scene with its ground truth, the same bytes for the same options on every run. */
export function renderRoadScene(opts: RoadSceneOptions): RoadScene {
  return paintRoadScene(layoutRoadScene(opts));
}

/** Draws a layout; separate from layoutRoadScene so callers can move hazards between frames. */
export function paintRoadScene(layout: SceneLayout): RoadScene {
  const { width, height } = layout;
  const canvas = createCanvas(width, height);
  paintAsphalt(canvas, layout.asphalt);
  for (const stain of layout.stains) applyDarkPatch(canvas, stain);
  for (const lane of layout.lanes) paintLane(canvas, lane);
  for (const pothole of layout.potholes) drawPothole(canvas, pothole, layout.asphalt.base);
  for (const crack of layout.cracks) drawCrack(canvas, crack);
  for (const shadow of layout.shadows) applyDarkPatch(canvas, shadow);
  addGrain(canvas, layout.grainSeed, layout.grainSigma);

  const boxes: GroundTruthBox[] = [
    ...layout.cracks.map((c) => labelled(crackBox(c), 0, width, height)),
    ...layout.potholes.map((p) => labelled(potholeBox(p), 1, width, height)),
  ];
  return { width, height, rgb: toRgb8(canvas), boxes };
}

function labelled(box: PixelBox, classId: 0 | 1, width: number, height: number): GroundTruthBox {
  return { ...clipBox(box, width, height), classId, className: HAZARD_CLASSES[classId] };
}

export async function encodeScene(scene: RoadScene, format: SceneFormat, quality = 90): Promise<Buffer> {
  const image = sharp(scene.rgb, { raw: { width: scene.width, height: scene.height, channels: 3 } });
  switch (format) {
    case "jpeg":
      return image.jpeg({ quality }).toBuffer();
    case "png":
      return image.png().toBuffer();
    case "webp":
      return image.webp({ quality }).toBuffer();
  }
}
