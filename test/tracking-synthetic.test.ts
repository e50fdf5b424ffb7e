import { describe, expect, it } from "vitest";
import { iou } from "../src/pipeline/nms.js";
import {
  DEFAULT_SYNTHETIC_OPTIONS,
  generateSequence,
  hazardPoseAt,
  type SyntheticSequence,
} from "../src/tracking/synthetic-tracks.js";

const scene = DEFAULT_SYNTHETIC_OPTIONS.scene;

/** Runs of consecutive frames in which hazard `id` is annotated but not detected. */
function missRuns(seq: SyntheticSequence, id: number): number[] {
  const runs: number[] = [];
  let run = 0;
  for (const f of seq.frames) {
    if (!f.gt.some((g) => g.id === id)) continue;
    if (f.detections.some((d) => d.sourceId === id)) {
      if (run > 0) runs.push(run);
      run = 0;
    } else run++;
  }
  if (run > 0) runs.push(run);
  return runs;
}

describe("generateSequence", () => {
  it("is reproducible from its seed", () => {
    expect(generateSequence({ seed: 5 })).toEqual(generateSequence({ seed: 5 }));
    expect(generateSequence({ seed: 5 }).frames).not.toEqual(generateSequence({ seed: 6 }).frames);
  });

  it("stamps frames at the frame rate and drops every k-th frame when asked", () => {
    const all = generateSequence({ seed: 1, fps: 10, durationSec: 3 });
    expect(all.frames).toHaveLength(30);
    expect(all.frames[4].timestampSec - all.frames[0].timestampSec).toBeCloseTo(0.4);
    expect(all.frames[4].frameId).toBe("f4");
    const dropped = generateSequence({ seed: 1, fps: 10, durationSec: 3, dropEvery: 3 });
    expect(dropped.frames.map((f) => f.index).slice(0, 5)).toEqual([0, 1, 3, 4, 6]);
    expect(dropped.frames).toHaveLength(20);
    // Dropping frames removes them and nothing else.
    expect(dropped.frames[2]).toEqual(all.frames[3]);
  });

  it("moves hazards down the frame, growing in proportion to their distance below the horizon", () => {
    const { hazards } = generateSequence({ seed: 2 });
    for (const h of hazards) {
      const a = hazardPoseAt(scene, h, h.appearSec + 0.2)!;
      const b = hazardPoseAt(scene, h, h.appearSec + 1.2)!;
      expect(b.cy).toBeGreaterThan(a.cy);
      expect(b.w).toBeGreaterThan(a.w);
      expect(a.w / (a.cy - scene.horizonY)).toBeCloseTo(b.w / (b.cy - scene.horizonY), 9);
      expect(hazardPoseAt(scene, h, h.appearSec - 0.1)).toBeUndefined();
    }
  });

  it("lets every hazard pass completely, some leaving at the bottom and some at a side", () => {
    let bottom = 0;
    let side = 0;
    for (let seed = 1; seed <= 5; seed++) {
      const seq = generateSequence({ seed });
      for (const h of seq.hazards) {
        const seen = seq.frames.filter((f) => f.gt.some((g) => g.id === h.id));
        expect(seen.length).toBeGreaterThanOrEqual(10);
        expect(seen.at(-1)!.index).toBeLessThan(seq.frames.length - 1);
        const last = seen.at(-1)!.gt.find((g) => g.id === h.id)!;
        if (last.y2 >= scene.height) bottom++;
        else if (last.x1 <= 0 || last.x2 >= scene.width) side++;
      }
    }
    expect(bottom).toBeGreaterThan(0);
    expect(side).toBeGreaterThan(0);
  });

  it("misses hazards for one or two frames at a time", () => {
    const lengths = [1, 2, 3, 4].flatMap((seed) => {
      const seq = generateSequence({ seed, missProbability: 0.1 });
      return seq.hazards.flatMap((h) => missRuns(seq, h.id));
    });
    expect(lengths.length).toBeGreaterThan(10);
    expect(Math.max(...lengths)).toBeLessThanOrEqual(2);
  });

  it("keeps hazards and false positives apart when asked to", () => {
    for (let seed = 1; seed <= 5; seed++) {
      const seq = generateSequence({ seed, nonOverlapping: true, falsePositiveRate: 0.3 });
      for (const f of seq.frames) {
        const boxes = [...f.gt, ...f.detections.filter((d) => d.sourceId === null)];
        for (let i = 0; i < boxes.length; i++) {
          for (let j = i + 1; j < boxes.length; j++) expect(iou(boxes[i], boxes[j])).toBe(0);
        }
      }
    }
  });

  it("adds short-lived false positives only when asked to", () => {
    const fps = (rate: number) =>
      generateSequence({ seed: 3, falsePositiveRate: rate }).frames.flatMap((f) =>
        f.detections.filter((d) => d.sourceId === null),
      );
    expect(fps(0)).toHaveLength(0);
    expect(fps(0.3).length).toBeGreaterThan(5);
  });

  it("jitters detections by a few percent around the annotated box", () => {
    const seq = generateSequence({ seed: 4, missProbability: 0 });
    const overlaps = seq.frames.flatMap((f) =>
      f.detections.map((d) => iou(d, f.gt.find((g) => g.id === d.sourceId)!)),
    );
    const mean = overlaps.reduce((a, b) => a + b, 0) / overlaps.length;
    expect(mean).toBeGreaterThan(0.8);
    expect(mean).toBeLessThan(0.98);
  });
});
