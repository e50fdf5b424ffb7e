import { describe, expect, it } from "vitest";
import { averagePrecision, matchImage, totals, type DetectionBox, type LabelBox } from "../src/eval/metrics.js";
import { labelsToPixels, parseDatasetNames, parseYoloLabels } from "../src/eval/yolo-labels.js";

const label = (x1: number, y1: number, x2: number, y2: number, classId = 1): LabelBox => ({ x1, y1, x2, y2, classId });
const det = (x1: number, y1: number, x2: number, y2: number, confidence: number, classId = 1): DetectionBox => ({ x1, y1, x2, y2, confidence, classId });

describe("matchImage (the team's counting rule)", () => {
  it.each<[string, DetectionBox[], LabelBox[], [number, number, number]]>([
    ["perfect hit", [det(0, 0, 10, 10, 0.9)], [label(0, 0, 10, 10)], [1, 0, 0]],
    ["no detections", [], [label(0, 0, 10, 10)], [0, 0, 1]],
    ["wrong class is a FP and the label a FN", [det(0, 0, 10, 10, 0.9, 0)], [label(0, 0, 10, 10)], [0, 1, 1]],
    ["IoU below 0.5 does not match", [det(0, 0, 10, 10, 0.9)], [label(6, 0, 16, 10)], [0, 1, 1]],
    ["duplicate detection of one label: second is FP", [det(0, 0, 10, 10, 0.9), det(1, 0, 11, 10, 0.8)], [label(0, 0, 10, 10)], [1, 1, 0]],
    [
      "higher confidence picks first, and takes the label with the highest IoU",
      [det(0, 0, 10, 10, 0.6), det(2, 0, 12, 10, 0.9)],
      [label(0, 0, 10, 10), label(3, 0, 13, 10)],
      [2, 0, 0],
    ],
  ])("%s", (_n, dets, labels, [tp, fp, fn]) => {
    expect(matchImage(dets, labels)).toMatchObject({ tp, fp, fn });
  });

  it("highest-IoU choice: the 0.9 detection takes the label it overlaps most", () => {
    const m = matchImage([det(2, 0, 12, 10, 0.9)], [label(0, 0, 10, 10), label(3, 0, 13, 10)]);
    expect(m.outcomes).toEqual([{ confidence: 0.9, classId: 1, truePositive: true }]);
    expect(m.fn).toBe(1);
  });
});

describe("totals and AP", () => {
  it("sums over images and computes precision/recall", () => {
    const t = totals([matchImage([det(0, 0, 10, 10, 0.9)], [label(0, 0, 10, 10)]), matchImage([det(0, 0, 1, 1, 0.4)], [label(5, 5, 9, 9)])]);
    expect(t).toEqual({ tp: 1, fp: 1, fn: 1, precision: 0.5, recall: 0.5 });
  });

  it("AP follows Ultralytics' 101-point rule (0.995 at best), lower when a FP outranks a TP", () => {
    const perfect = [matchImage([det(0, 0, 10, 10, 0.9), det(20, 20, 30, 30, 0.8)], [label(0, 0, 10, 10), label(20, 20, 30, 30)])];
    // The sentinel (recall 1, precision 0) makes the last sample 0, as in Ultralytics' compute_ap.
    expect(averagePrecision(perfect, 1)).toBeCloseTo(0.995, 9);
    const fpFirst = [matchImage([det(50, 50, 60, 60, 0.95), det(0, 0, 10, 10, 0.9)], [label(0, 0, 10, 10)])];
    // Precision envelope 0.5 up to recall 1, then the sentinel: 0.5 * 0.99 + 0.0025.
    expect(averagePrecision(fpFirst, 1)).toBeCloseTo(0.4975, 9);
    expect(averagePrecision(fpFirst, 0)).toBe(0);
  });
});

describe("YOLO labels", () => {
  it("parses label files and converts them to pixel corners", () => {
    const labels = parseYoloLabels("0 0.5 0.5 0.2 0.4\n\n1 0.1 0.2 0.2 0.2\n");
    expect(labels).toHaveLength(2);
    expect(labelsToPixels(labels, 100, 50)[0]).toEqual({ x1: 40, y1: 15, x2: 60, y2: 35, classId: 0 });
  });

  it.each(["0 0.5 0.5", "x 0.5 0.5 0.1 0.1", "0 0.1 0.2 0.3 0.4 0.5 0.6", "-1 0.5 0.5 0.1 0.1"])("refuses %j", (line) => {
    expect(() => parseYoloLabels(line, "a.txt")).toThrow(/a\.txt:1/);
  });

  it("reads data.yaml names as a list or a mapping", () => {
    expect(parseDatasetNames("nc: 1\nnames: ['pothole']\n")).toEqual(["pothole"]);
    expect(parseDatasetNames("names:\n  0: crack\n  1: pothole\n")).toEqual(["crack", "pothole"]);
    expect(() => parseDatasetNames("nc: 1\n")).toThrow(/names/);
  });
});
