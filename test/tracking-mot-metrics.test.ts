import { describe, expect, it } from "vitest";
import { evaluateMot, type MotFrame, type MotObject } from "../src/tracking/mot-metrics.js";

const o = (id: number, x: number, y = 0, w = 10, h = 10, classId?: number): MotObject => ({
  id,
  x1: x,
  y1: y,
  x2: x + w,
  y2: y + h,
  ...(classId === undefined ? {} : { classId }),
});

describe("evaluateMot", () => {
  it("scores perfect tracking as MOTA 1, MOTP 1, IDF1 1", () => {
    const frames: MotFrame[] = [0, 1, 2, 3].map((t) => ({
      gt: [o(1, 10 * t), o(2, 100 + 10 * t)],
      pred: [o(7, 10 * t), o(8, 100 + 10 * t)],
    }));
    const m = evaluateMot(frames);
    expect(m).toMatchObject({ tp: 8, fp: 0, fn: 0, idsw: 0, frag: 0, mota: 1, motp: 1, idf1: 1, idtp: 8 });
    expect(m).toMatchObject({ gtIds: 2, predIds: 2, mostlyTracked: 2, mostlyLost: 0 });
  });

  it("counts one identity switch when a hazard's track id changes once", () => {
    const frames: MotFrame[] = [0, 1, 2, 3, 4, 5].map((t) => ({
      gt: [o(1, 10 * t)],
      pred: [o(t < 3 ? 1 : 2, 10 * t)],
    }));
    const m = evaluateMot(frames);
    expect(m.idsw).toBe(1);
    expect(m.mota).toBeCloseTo(5 / 6);
    // Global matching keeps only one of the two ids: 3 true, 3 false positive, 3 missed.
    expect(m).toMatchObject({ idtp: 3, idfp: 3, idfn: 3 });
    expect(m.idf1).toBeCloseTo(0.5);
  });

  it("counts two switches when two hazards exchange ids", () => {
    const frames: MotFrame[] = [0, 1, 2, 3].map((t) => {
      const [a, b] = t < 2 ? [1, 2] : [2, 1];
      return { gt: [o(1, 0), o(2, 100)], pred: [o(a, 0), o(b, 100)] };
    });
    const m = evaluateMot(frames);
    expect(m.idsw).toBe(2);
    expect(m.mota).toBeCloseTo((8 - 2) / 8);
    expect(m.idf1).toBeCloseTo(0.5);
  });

  it("counts every box of a never-tracked hazard as a miss", () => {
    const frames: MotFrame[] = [0, 1, 2, 3].map(() => ({ gt: [o(1, 0), o(2, 100)], pred: [o(5, 0)] }));
    const m = evaluateMot(frames);
    expect(m).toMatchObject({ tp: 4, fn: 4, fp: 0, idsw: 0, mostlyTracked: 1, mostlyLost: 1 });
    expect(m.mota).toBeCloseTo(0.5);
    expect(m).toMatchObject({ idtp: 4, idfn: 4, idfp: 0 });
    expect(m.idf1).toBeCloseTo(8 / 12);
  });

  it("counts unmatched predictions as false positives and lowers MOTA below zero if there are many", () => {
    const frames: MotFrame[] = [{ gt: [o(1, 0)], pred: [o(1, 0), o(2, 50), o(3, 80)] }];
    const m = evaluateMot(frames);
    expect(m).toMatchObject({ tp: 1, fp: 2, fn: 0 });
    expect(m.mota).toBeCloseTo(-1);
  });

  it("counts a fragmentation, not a switch, when the same id resumes after a gap", () => {
    const preds = [true, true, false, true, true];
    const frames: MotFrame[] = preds.map((p, t) => ({ gt: [o(1, 10 * t)], pred: p ? [o(4, 10 * t)] : [] }));
    const m = evaluateMot(frames);
    expect(m).toMatchObject({ frag: 1, idsw: 0, fn: 1, tp: 4 });
  });

  it("matches only at IoU >= threshold and only within a class", () => {
    // IoU of two 10×10 boxes offset by 4 px is 60/140 ≈ 0.43.
    const offset = evaluateMot([{ gt: [o(1, 0)], pred: [o(1, 4)] }]);
    expect(offset).toMatchObject({ tp: 0, fp: 1, fn: 1, idtp: 0 });
    const other = evaluateMot([{ gt: [o(1, 0, 0, 10, 10, 1)], pred: [o(1, 0, 0, 10, 10, 0)] }]);
    expect(other).toMatchObject({ tp: 0, fp: 1, fn: 1 });
    const exact = evaluateMot([{ gt: [o(1, 0)], pred: [o(1, 1)] }]); // IoU 90/110
    expect(exact.motp).toBeCloseTo(90 / 110);
  });

  it("keeps last frame's correspondence over a slightly better overlap", () => {
    // Frame 2: prediction 2 fits the hazard better, but 1 still overlaps it enough: no switch.
    const frames: MotFrame[] = [
      { gt: [o(1, 0)], pred: [o(1, 0)] },
      { gt: [o(1, 0)], pred: [o(1, 1), o(2, 0)] },
    ];
    const m = evaluateMot(frames);
    expect(m).toMatchObject({ idsw: 0, tp: 2, fp: 1 });
  });

  it("assigns identities globally for IDF1, not frame by frame", () => {
    // Id 1 covers the first frame only, id 2 the remaining three: the hazard belongs to id 2.
    const frames: MotFrame[] = [0, 1, 2, 3].map((t) => ({ gt: [o(1, 10 * t)], pred: [o(t === 0 ? 1 : 2, 10 * t)] }));
    const m = evaluateMot(frames);
    expect(m).toMatchObject({ idtp: 3, idfp: 1, idfn: 1 });
    expect(m.idf1).toBeCloseTo(0.75);
  });

  it("scores an empty sequence as zero, not NaN", () => {
    const m = evaluateMot([]);
    expect(m).toMatchObject({ frames: 0, mota: 0, motp: 0, idf1: 0 });
  });

  it("neither rewards nor penalises predictions on ignored ground truth, and never counts it missed", () => {
    const faint = { ...o(2, 100), ignore: true };
    const frames: MotFrame[] = [
      { gt: [o(1, 0), faint], pred: [o(7, 0), o(8, 100)] }, // tracked on the ignored one: dropped
      { gt: [o(1, 0), faint], pred: [o(7, 0)] }, // not tracked: no miss
      { gt: [o(1, 0), faint], pred: [o(7, 0), o(9, 300)] }, // elsewhere: still a false positive
    ];
    const m = evaluateMot(frames);
    expect(m).toMatchObject({ gtDetections: 3, predDetections: 4, tp: 3, fp: 1, fn: 0, idsw: 0, gtIds: 1, predIds: 2 });
    expect(m.idf1).toBeCloseTo(6 / 7);
  });
});
