import { describe, expect, it } from "vitest";
import { iou, nonMaxSuppression, type ScoredBox } from "../src/pipeline/nms.js";

const b = (x1: number, y1: number, x2: number, y2: number, score: number, classId = 0): ScoredBox => ({ x1, y1, x2, y2, score, classId });

describe("iou", () => {
  it.each<[string, ScoredBox, ScoredBox, number]>([
    ["identical", b(0, 0, 10, 10, 1), b(0, 0, 10, 10, 1), 1],
    ["disjoint", b(0, 0, 10, 10, 1), b(20, 20, 30, 30, 1), 0],
    ["touching edges", b(0, 0, 10, 10, 1), b(10, 0, 20, 10, 1), 0],
    ["half overlap", b(0, 0, 10, 10, 1), b(5, 0, 15, 10, 1), 50 / 150],
    ["contained", b(0, 0, 10, 10, 1), b(0, 0, 5, 5, 1), 25 / 100],
    ["both empty", b(5, 5, 5, 5, 1), b(5, 5, 5, 5, 1), 0],
  ])("%s", (_n, a, c, expected) => {
    expect(iou(a, c)).toBeCloseTo(expected, 12);
    expect(iou(c, a)).toBeCloseTo(expected, 12);
  });
});

describe("nonMaxSuppression (class-aware, greedy, like torchvision batched_nms)", () => {
  const cases: Array<[string, ScoredBox[], number, number, number[]]> = [
    // [name, boxes, iou threshold, max detections, expected kept indices in output order]
    ["empty input", [], 0.5, 300, []],
    ["lower-score overlap of the same class is dropped", [b(0, 0, 10, 10, 0.8), b(1, 0, 11, 10, 0.9)], 0.5, 300, [1]],
    ["same boxes of different classes both stay", [b(0, 0, 10, 10, 0.8, 0), b(0, 0, 10, 10, 0.9, 1)], 0.5, 300, [1, 0]],
    ["IoU equal to the threshold is kept (strict >)", [b(0, 0, 10, 10, 0.9), b(5, 0, 15, 10, 0.8)], 1 / 3, 300, [0, 1]],
    ["IoU just above the threshold is dropped", [b(0, 0, 10, 10, 0.9), b(5, 0, 15, 10, 0.8)], 0.33, 300, [0]],
    [
      "suppression is not transitive: C survives when only B (already dropped) overlapped it",
      [b(0, 0, 10, 10, 0.9), b(6, 0, 16, 10, 0.8), b(12, 0, 22, 10, 0.7)],
      0.2,
      300,
      [0, 2],
    ],
    ["max detections caps after NMS", [b(0, 0, 1, 1, 0.5), b(10, 10, 11, 11, 0.7), b(20, 20, 21, 21, 0.6)], 0.5, 2, [1, 2]],
    ["score ties keep input order", [b(0, 0, 1, 1, 0.5), b(10, 10, 11, 11, 0.5)], 0.5, 300, [0, 1]],
    ["threshold 1 keeps even identical boxes", [b(0, 0, 10, 10, 0.5), b(0, 0, 10, 10, 0.4)], 1, 300, [0, 1]],
  ];
  it.each(cases)("%s", (_n, boxes, thr, max, expected) => {
    const kept = nonMaxSuppression(boxes, thr, max);
    expect(kept.map((k) => boxes.indexOf(k))).toEqual(expected);
  });
});
