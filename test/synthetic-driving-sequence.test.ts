import { describe, expect, it } from "vitest";
import { iou } from "../src/pipeline/nms.js";
import { createDrivingSequence, renderDrivingSequence, type DrivingSequence } from "../src/synthetic/driving-sequence.js";

/** Per hazard id, the frames (index, truth) in which it is annotated. */
function tracksOf(seq: DrivingSequence) {
  const tracks = new Map<number, Array<{ index: number; box: ReturnType<DrivingSequence["truth"]>[number] }>>();
  for (let i = 0; i < seq.frameCount; i++) {
    for (const box of seq.truth(i)) {
      const list = tracks.get(box.id) ?? [];
      list.push({ index: i, box });
      tracks.set(box.id, list);
    }
  }
  return tracks;
}

describe("createDrivingSequence", () => {
  it("is a pure function of its options, frame by frame", () => {
    const a = createDrivingSequence({ seed: 4, frames: 12 });
    const b = createDrivingSequence({ seed: 4, frames: 12 });
    const fa = a.render(7);
    expect(fa.rgb.equals(b.render(7).rgb)).toBe(true);
    expect(fa.rgb.length).toBe(640 * 480 * 3);
    expect(a.render(7).rgb.equals(fa.rgb)).toBe(true); // rendering again draws the same pixels
    expect(createDrivingSequence({ seed: 5, frames: 12 }).render(7).rgb.equals(fa.rgb)).toBe(false);
    expect(fa.truth).toEqual(a.truth(7));
  });

  it("stamps frames at the frame rate and renders lazily or all at once", () => {
    const { sequence, frames } = renderDrivingSequence({ seed: 2, frames: 3, width: 320, height: 240, fps: 15, startTimeMs: 1000 });
    expect(frames.map((f) => f.index)).toEqual([0, 1, 2]);
    expect(frames[2]!.timestampMs - frames[0]!.timestampMs).toBeCloseTo(2000 / 15);
    expect(frames[0]!.timestampMs).toBe(1000);
    expect([sequence.width, sequence.height, frames[1]!.rgb.length]).toEqual([320, 240, 320 * 240 * 3]);
    expect(() => sequence.render(3)).toThrow(RangeError);
  });

  it("moves hazards down the frame while they grow, and lets them leave at the bottom or a side", () => {
    let bottom = 0;
    let side = 0;
    for (let seed = 1; seed <= 6; seed++) {
      const seq = createDrivingSequence({ seed, frames: 60, hazards: 5 });
      for (const [, track] of tracksOf(seq)) {
        expect(track.length).toBeGreaterThanOrEqual(10);
        const unclipped = track.filter(({ box }) => box.x1 > 0 && box.x2 < 640 && box.y2 < 480);
        for (let k = 1; k < unclipped.length; k++) {
          const [p, q] = [unclipped[k - 1]!.box, unclipped[k]!.box];
          expect(q.y1 + q.y2).toBeGreaterThan(p.y1 + p.y2);
          expect(q.x2 - q.x1).toBeGreaterThan(p.x2 - p.x1 - 2); // the outline is redrawn at each scale
          expect(q.distanceM).toBeLessThan(p.distanceM);
        }
        const last = track.at(-1)!;
        expect(last.index).toBeLessThan(seq.frameCount - 1); // the whole pass fits in the sequence
        if (last.box.y2 >= 479) bottom++;
        else if (last.box.x1 <= 1 || last.box.x2 >= 639) side++;
      }
    }
    expect(bottom).toBeGreaterThan(0);
    expect(side).toBeGreaterThan(0);
  });

  it("washes hazards out for one or two frames at a time, and leaves them out of the drawn boxes then", () => {
    const runs: number[] = [];
    for (let seed = 1; seed <= 4; seed++) {
      const seq = createDrivingSequence({ seed, frames: 60, hazards: 5, occlusionProbability: 0.1 });
      // Potholes only: a far crack has visibility 0 too, until it is long enough to show.
      for (const [, track] of [...tracksOf(seq)].filter(([, t]) => t[0]!.box.className === "pothole")) {
        let run = 0;
        for (const { box } of track) {
          if (box.visibility === 0) run++;
          else if (run > 0) {
            runs.push(run);
            run = 0;
          }
        }
      }
    }
    expect(runs.length).toBeGreaterThan(5);
    expect(Math.max(...runs)).toBeLessThanOrEqual(2);
    const seq = createDrivingSequence({ seed: 1, frames: 60, hazards: 5, occlusionProbability: 0.2 });
    const i = [...Array(60).keys()].find((k) => seq.truth(k).some((t) => t.visibility === 0 && t.className === "pothole"))!;
    const frame = seq.render(i);
    expect(frame.boxes).toHaveLength(frame.truth.filter((t) => t.visibility > 0).length);
  });

  it("keeps hazards apart in every frame and places both classes", () => {
    const classes = new Set<string>();
    for (let seed = 1; seed <= 6; seed++) {
      const seq = createDrivingSequence({ seed, frames: 60, hazards: 5 });
      for (const h of seq.hazards) classes.add(h.className);
      for (let i = 0; i < seq.frameCount; i++) {
        const boxes = seq.truth(i);
        for (let a = 0; a < boxes.length; a++) for (let b = a + 1; b < boxes.length; b++) expect(iou(boxes[a]!, boxes[b]!)).toBe(0);
      }
    }
    expect(classes).toEqual(new Set(["crack", "pothole"]));
  });

  it("refuses impossible options", () => {
    expect(() => createDrivingSequence({ seed: 1, frames: 0 })).toThrow(RangeError);
    expect(() => createDrivingSequence({ seed: 1, speedKmh: 0 })).toThrow(RangeError);
    expect(() => createDrivingSequence({ seed: 1, occlusionProbability: 2 })).toThrow(RangeError);
  });
});
