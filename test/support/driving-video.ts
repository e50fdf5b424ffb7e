import { writeFile } from "node:fs/promises";
import { layoutRoadScene, paintRoadScene, type RoadScene, type SceneLayout } from "../../src/synthetic/road-scene.js";
import { encodeY4m } from "../../src/synthetic/y4m.js";

/**
 * A short looping "dashcam" clip for Chromium's fake camera, from one generated road scene: the
 * hazards, stains and lane paint sway up and down together over one sine period, so the camera's
 * loop has no jump and a tracker keeps its identities across the wrap. Still scenes are what the
 * default filter model reliably detects both classes in (src/synthetic/driving-sequence.ts moves
 * hazards in from the horizon, where its cracks are mostly too faint for that model).
 */
export interface SwayClipOptions {
  seed: number;
  frames: number;
  fps: number;
  width?: number;
  height?: number;
  /** Largest vertical displacement, px. */
  swayPx?: number;
}

function shifted(layout: SceneLayout, dy: number): SceneLayout {
  return {
    ...layout,
    potholes: layout.potholes.map((p) => ({ ...p, cy: p.cy + dy })),
    cracks: layout.cracks.map((c) => ({ ...c, cy: c.cy + dy })),
    stains: layout.stains.map((s) => ({ ...s, cy: s.cy + dy })),
    lanes: layout.lanes.map((l) => ({ ...l, y: l.y + dy })),
  };
}

export function swayClip(o: SwayClipOptions): RoadScene[] {
  const layout = layoutRoadScene({ seed: o.seed, width: o.width ?? 640, height: o.height ?? 480 });
  const sway = o.swayPx ?? 8;
  return Array.from({ length: o.frames }, (_, i) => paintRoadScene(shifted(layout, sway * Math.sin((2 * Math.PI * i) / o.frames))));
}

/** Writes the clip as a .y4m file; returns its frames (with ground truth). */
export async function writeSwayY4m(path: string, o: SwayClipOptions): Promise<RoadScene[]> {
  const frames = swayClip(o);
  await writeFile(path, encodeY4m(frames, o.fps));
  return frames;
}
