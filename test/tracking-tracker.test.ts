import type { JsonObject } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { iou } from "../src/pipeline/nms.js";
import { SessionTracking } from "../src/streaming/session-tracking.js";
import { HazardTracker } from "../src/tracking/hazard-tracker.js";
import type { TrackerDetection } from "../src/tracking/types.js";

const POTHOLE = { classId: 1, className: "pothole" };
const CRACK = { classId: 0, className: "crack" };

function det(cx: number, cy: number, w = 40, h = 30, confidence = 0.9, cls = POTHOLE): TrackerDetection {
  return { x1: cx - w / 2, y1: cy - h / 2, x2: cx + w / 2, y2: cy + h / 2, confidence, ...cls };
}

/** Feeds `frames` detections at 10 FPS from t0 and returns every update's result. */
function run(tracker: HazardTracker, frames: TrackerDetection[][], t0 = 1000, fps = 10) {
  return frames.map((dets, i) => tracker.update(dets, t0 + i / fps, { frameId: `f${i}` }));
}

describe("HazardTracker life cycle", () => {
  it("reports a track with its id from the first frame, tentative until confirmed, isNew on confirmation", () => {
    const tracker = new HazardTracker({ minHits: 3 });
    const out = run(tracker, [0, 1, 2, 3, 4].map((i) => [det(100 + 5 * i, 300)]));
    expect(out[0].tracked).toMatchObject([{ trackId: 1, isNew: false, confirmed: false }]);
    expect(out[1].tracked).toMatchObject([{ trackId: 1, isNew: false, confirmed: false }]);
    expect(out[2].tracked).toMatchObject([{ trackId: 1, isNew: true, confirmed: true }]);
    expect(out[3].tracked).toMatchObject([{ trackId: 1, isNew: false, confirmed: true }]);
    expect(out[4].tracked).toMatchObject([{ trackId: 1, isNew: false, confirmed: true }]);
    expect(tracker.uniqueCounts()).toEqual(new Map([["pothole", 1]]));
  });

  it("drops a tentative track that misses more than tentativeMisses frames, so a flicker never becomes a hazard", () => {
    const tracker = new HazardTracker({ minHits: 3, tentativeMisses: 1 });
    const out = run(tracker, [[det(100, 300)], [det(100, 300)], [], [], [det(100, 300)], [det(100, 300)]]);
    expect(out.flatMap((o) => o.tracked).map((d) => [d.trackId, d.confirmed])).toEqual([
      [1, false],
      [1, false],
      [2, false],
      [2, false],
    ]);
    expect(out.flatMap((o) => o.ended)).toEqual([]);
    expect(tracker.uniqueCounts().size).toBe(0);
    expect(tracker.flush()).toEqual([]);
  });

  it("keeps a tentative track through one missed frame by default and confirms it on its minHits-th detection", () => {
    const tracker = new HazardTracker({ minHits: 3 });
    const out = run(tracker, [[det(100, 300)], [], [det(100, 300)], [det(100, 300)]]);
    expect(out[2].tracked).toMatchObject([{ trackId: 1, confirmed: false }]);
    expect(out[3].tracked).toMatchObject([{ trackId: 1, isNew: true, confirmed: true }]);
    const strict = run(new HazardTracker({ minHits: 3, tentativeMisses: 0 }), [[det(100, 300)], [], [det(100, 300)], [det(100, 300)]]);
    expect(strict[3].tracked).toMatchObject([{ trackId: 2, confirmed: false }]);
  });

  it("passes extra detection fields through and keeps input order", () => {
    const tracker = new HazardTracker({ minHits: 1 });
    const dets = [
      { ...det(500, 300), index: 0 },
      { ...det(100, 300), index: 1 },
    ];
    const { tracked } = tracker.update(dets, 0);
    expect(tracked.map((t) => t.index)).toEqual([0, 1]);
    expect(tracked.map((t) => t.trackId)).toEqual([1, 2]);
  });

  it("keeps the id when a lost track is found again, and ends nothing meanwhile", () => {
    const tracker = new HazardTracker({ minHits: 2, maxLostSec: 1 });
    const frames = [0, 1, 2, 3].map((i) => [det(100 + 10 * i, 300)]);
    frames.push([], [], []); // lost for 0.3 s
    frames.push([det(170, 300)]); // where constant velocity puts it
    const out = run(tracker, frames);
    expect(out[7].tracked).toMatchObject([{ trackId: 1, isNew: false }]);
    expect(out.flatMap((o) => o.ended)).toEqual([]);
  });

  it("ends a confirmed track once, after maxLostSec without detections, with its peak frame", () => {
    const tracker = new HazardTracker<JsonObject>({ minHits: 2, maxLostSec: 0.5 });
    const confidences = [0.5, 0.6, 0.95, 0.7];
    confidences.forEach((c, i) =>
      tracker.update([det(100 + 4 * i, 300 + 2 * i, 40, 30, c)], 10 + i / 10, {
        frameId: `f${i}`,
        metadata: { gps: [48.1, 11.5 + i] },
      }),
    );
    const ended = [0.4, 0.5, 0.8, 0.85, 0.9].flatMap((t) => tracker.update([], 10.3 + t).ended);
    expect(ended).toHaveLength(1);
    expect(ended[0]).toEqual({
      trackId: 1,
      classId: 1,
      className: "pothole",
      firstSeen: 10,
      lastSeen: 10.3,
      framesSeen: 4,
      peakConfidence: 0.95,
      peakBox: { x1: 88, y1: 289, x2: 128, y2: 319 },
      peakFrameId: "f2",
      peakMetadata: { gps: [48.1, 13.5] },
    });
    expect(tracker.flush()).toEqual([]);
  });

  it("never reuses ids, across removal, flush and reset", () => {
    const tracker = new HazardTracker({ minHits: 1, maxLostSec: 0.2 });
    expect(tracker.update([det(100, 300)], 0).tracked[0].trackId).toBe(1);
    expect(tracker.update([], 1).ended.map((s) => s.trackId)).toEqual([1]);
    expect(tracker.update([det(100, 300)], 1.1).tracked[0].trackId).toBe(2);
    expect(tracker.flush().map((s) => s.trackId)).toEqual([2]);
    expect(tracker.update([det(100, 300)], 2).tracked[0].trackId).toBe(3);
    tracker.reset();
    expect(tracker.uniqueCounts().size).toBe(0);
    expect(tracker.update([det(100, 300)], 3).tracked[0]).toMatchObject({ trackId: 4, isNew: true });
  });

  it("hands out ids at a track's first detection: a dropped flicker leaves a gap in the confirmed ids", () => {
    const tracker = new HazardTracker({ minHits: 3 });
    // A two-frame false positive first, then a real hazard.
    const frames = [[det(600, 300, 30, 20, 0.4, CRACK)], [det(600, 300, 30, 20, 0.4, CRACK)], [], [], [det(100, 300)]];
    frames.push([det(102, 300)], [det(104, 300)]);
    const out = run(tracker, frames);
    expect(out[0].tracked).toMatchObject([{ trackId: 1, confirmed: false }]);
    expect(out[4].tracked).toMatchObject([{ trackId: 2, confirmed: false }]);
    expect(out[6].tracked).toMatchObject([{ trackId: 2, isNew: true, confirmed: true }]);
    expect(tracker.uniqueCounts()).toEqual(new Map([["pothole", 1]]));
  });

  it("recovers a track from its last box when the prediction missed (coarse detector box sizes)", () => {
    // The detector's box jumps between size steps: 32×20, then 26×16 (the filter's size velocity
    // turns negative), then 46×32 two frames later, while the hazard keeps growing in place.
    const boxes = [
      { x1: 288, y1: 238, x2: 320, y2: 258 },
      { x1: 288, y1: 238, x2: 320, y2: 258 },
      { x1: 289, y1: 246, x2: 315, y2: 262 },
      { x1: 271, y1: 256, x2: 317, y2: 288 },
    ];
    const frames = boxes.map((b) => [{ ...b, confidence: 0.9, ...POTHOLE }]);
    const times = [0, 0.1, 0.2, 0.4];
    const tracker = new HazardTracker({ minHits: 2 });
    const out = frames.map((dets, i) => tracker.update(dets, times[i]));
    expect(out.map((o) => o.tracked[0]?.trackId)).toEqual([1, 1, 1, 1]);
    expect(tracker.uniqueCounts()).toEqual(new Map([["pothole", 1]]));
  });

  it("starts no track from a second box of a hazard already taken in the frame", () => {
    // NMS at IoU 0.7 keeps two thin crack boxes 8 px apart (IoU 0.27); buffered they overlap 0.47.
    const thin = (y: number, c = 0.7) => ({ x1: 359, y1: y, x2: 449, y2: y + 14, confidence: c, ...CRACK });
    const tracker = new HazardTracker({ minHits: 3 });
    const out = run(tracker, [[thin(221), thin(229)], [thin(228), thin(236)], [thin(236, 0.8)], [thin(243), thin(251)]]);
    expect(out.map((o) => o.tracked.map((d) => d.trackId))).toEqual([[1], [1], [1], [1]]);
    // A hazard of another size beside it is no duplicate.
    const other = new HazardTracker({ minHits: 1 });
    expect(other.update([thin(221), { ...thin(229), x2: 560 }], 0).tracked.map((d) => d.trackId)).toEqual([1, 2]);
    expect(tracker.uniqueCounts()).toEqual(new Map([["crack", 1]]));
  });

  it("never continues a track with another class", () => {
    const tracker = new HazardTracker({ minHits: 2 });
    const frames = [[det(100, 300)], [det(100, 300)], [det(100, 300, 40, 30, 0.9, CRACK)]];
    frames.push([det(100, 300, 40, 30, 0.9, CRACK)]);
    const out = run(tracker, frames);
    expect(out[1].tracked).toMatchObject([{ trackId: 1, className: "pothole", confirmed: true }]);
    expect(out[2].tracked).toMatchObject([{ trackId: 2, className: "crack", confirmed: false }]);
    expect(out[3].tracked).toMatchObject([{ trackId: 2, className: "crack", isNew: true }]);
    expect(tracker.uniqueCounts()).toEqual(
      new Map([
        ["pothole", 1],
        ["crack", 1],
      ]),
    );
  });

  it("predicts across dropped frames by elapsed capture time", () => {
    // 100 px/s with 40 px boxes, then 5 frames dropped: in the 0.6 s gap the box moves 1.5 widths, so
    // only a prediction over the whole gap (not one frame interval) still overlaps it.
    const tracker = new HazardTracker({ minHits: 2, matchBuffer: 0 });
    const at = (t: number) => [det(100 + 100 * t, 300)];
    const before = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => tracker.update(at(i / 10), i / 10));
    const after = tracker.update(at(1.3), 1.3);
    expect(before[7].tracked).toMatchObject([{ trackId: 1 }]);
    expect(after.tracked).toMatchObject([{ trackId: 1, isNew: false }]);

    // The same gap predicted as a single frame interval would not overlap at all.
    const oneInterval = det(100 + 100 * 0.8, 300);
    expect(iou(oneInterval, at(1.3)[0])).toBe(0);
  });

  it("extends a tracked hazard with a low-confidence box but does not start or revive one with it", () => {
    const tracker = new HazardTracker({ minHits: 2, highThreshold: 0.5, lowThreshold: 0.1 });
    const out = run(tracker, [
      [det(100, 300), det(500, 300, 40, 30, 0.3)],
      [det(100, 300), det(500, 300, 40, 30, 0.3)],
      [det(100, 300, 40, 30, 0.2)],
      [],
      [det(100, 300, 40, 30, 0.2)],
      [det(100, 300, 40, 30, 0.9)],
    ]);
    expect(out[1].tracked).toMatchObject([{ trackId: 1, confidence: 0.9 }]);
    expect(out[2].tracked).toMatchObject([{ trackId: 1, confidence: 0.2 }]);
    expect(out[4].tracked).toEqual([]); // lost: a faint box does not revive it
    expect(out[5].tracked).toMatchObject([{ trackId: 1, isNew: false }]);
    expect(tracker.uniqueCounts()).toEqual(new Map([["pothole", 1]]));
  });

  it("ends stale tracks before matching after a long pause", () => {
    const tracker = new HazardTracker({ minHits: 1, maxLostSec: 1 });
    tracker.update([det(100, 300)], 0);
    const later = tracker.update([det(100, 300)], 5);
    expect(later.ended.map((s) => s.trackId)).toEqual([1]);
    expect(later.tracked).toMatchObject([{ trackId: 2, isNew: true }]);
  });

  it("flush ends confirmed tracks with summaries and forgets tentative ones", () => {
    const tracker = new HazardTracker({ minHits: 2 });
    run(tracker, [[det(100, 300)], [det(100, 300), det(600, 300)]]);
    expect(tracker.size).toBe(2);
    expect(tracker.flush().map((s) => s.trackId)).toEqual([1]);
    expect(tracker.size).toBe(0);
  });

  it("tolerates a timestamp going backwards and rejects a non-finite one", () => {
    const tracker = new HazardTracker({ minHits: 1 });
    tracker.update([det(100, 300)], 10);
    expect(tracker.update([det(100, 300)], 9.9).tracked).toMatchObject([{ trackId: 1 }]);
    expect(() => tracker.update([], Number.NaN)).toThrow(RangeError);
  });

  it("refuses inconsistent options", () => {
    expect(() => new HazardTracker({ lowThreshold: 0.6, highThreshold: 0.5 })).toThrow(RangeError);
    expect(() => new HazardTracker({ minHits: 0 })).toThrow(RangeError);
    expect(() => new HazardTracker({ tentativeMisses: 0.5 })).toThrow(RangeError);
    expect(() => new HazardTracker({ matchIou: 1.5 })).toThrow(RangeError);
    expect(() => new HazardTracker({ maxLostSec: -1 })).toThrow(RangeError);
  });
});

describe("SessionTracking reports (what a session's results carry)", () => {
  it("with tracking on every reported detection carries a track_id: a duplicate box and an untracked weak box are left out", async () => {
    const tracking = new SessionTracking();
    await tracking.reserveIds(10, async () => 1);
    // The duplicate rule above: two thin crack boxes 8 px apart, the second at 0.27 (over the
    // session's 0.25 threshold), plus a weak box (0.2, the session asks for 0.15) far from any track.
    const thin = (y: number, c: number) => ({ x1: 359, y1: y, x2: 449, y2: y + 14, confidence: c, ...CRACK });
    const weak = { ...det(100, 300, 40, 30, 0.2) };
    const frames = [
      [thin(221, 0.7), thin(229, 0.27)],
      [thin(228, 0.7), thin(236, 0.27), weak],
    ];
    const reports = frames.map((dets, i) => tracking.update(true, dets, i === 0 ? 0.25 : 0.15, { timestampSec: i / 10, frameId: `f${i}` }).detections);
    for (const r of reports) expect(r.every((d) => d.trackId !== undefined && d.trackId > 0)).toBe(true);
    expect(reports.map((r) => r.map((d) => d.confidence))).toEqual([[0.7], [0.7]]);
    // Tracking off: no tracks, every box over the threshold is reported.
    expect(tracking.update(false, frames[1], 0.15, { timestampSec: 0.2, frameId: "f2" }).detections).toHaveLength(3);
  });
});
