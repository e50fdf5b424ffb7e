/**
 * Scores a detector on generated road scenes, counting as the team does (src/eval/metrics.ts:
 * greedy matching by confidence) but per class, with each class's own IoU threshold: a crack box is
 * a loose thing (the annotator's box around a zigzag), so cracks count from IoU 0.3, potholes 0.5.
 */
import { matchImage, totals, type DetectionBox, type LabelBox, type Totals } from "../../src/eval/metrics.js";
import type { Detector } from "../../src/pipeline/detector.js";
import type { DetectOptions } from "../../src/pipeline/types.js";
import { encodeScene, HAZARD_CLASSES, renderRoadScene } from "../../src/synthetic/road-scene.js";

export const IOU_THRESHOLDS: Readonly<Record<(typeof HAZARD_CLASSES)[number], number>> = { crack: 0.3, pothole: 0.5 };

export interface SceneSet {
  readonly seeds: readonly number[];
  readonly width: number;
  readonly height: number;
  /** JPEG quality the scenes are sent at. */
  readonly quality: number;
}

export interface ClassScore extends Totals {
  readonly className: string;
  readonly iouThreshold: number;
}

export interface SceneEvaluation {
  readonly classes: readonly ClassScore[];
  /** Mean of the Detector's own inference timing over the scenes. */
  readonly meanInferenceMs: number;
}

export async function evaluateOnScenes(detector: Detector, set: SceneSet, options?: DetectOptions): Promise<SceneEvaluation> {
  const perClass = HAZARD_CLASSES.map(() => [] as ReturnType<typeof matchImage>[]);
  let inferenceMs = 0;
  for (const seed of set.seeds) {
    const scene = renderRoadScene({ seed, width: set.width, height: set.height });
    const result = await detector.detect(await encodeScene(scene, "jpeg", set.quality), options);
    inferenceMs += result.timings.inferenceMs;
    HAZARD_CLASSES.forEach((name, classId) => {
      // Class ids are matched by name, so a model with other class numbering is scored fairly.
      const detections: DetectionBox[] = result.detections
        .filter((d) => d.className === name)
        .map((d) => ({ x1: d.x1, y1: d.y1, x2: d.x2, y2: d.y2, classId, confidence: d.confidence }));
      const labels: LabelBox[] = scene.boxes.filter((b) => b.classId === classId);
      perClass[classId]!.push(matchImage(detections, labels, IOU_THRESHOLDS[name]));
    });
  }
  return {
    classes: HAZARD_CLASSES.map((className, i) => ({ className, iouThreshold: IOU_THRESHOLDS[className], ...totals(perClass[i]!) })),
    meanInferenceMs: inferenceMs / set.seeds.length,
  };
}
