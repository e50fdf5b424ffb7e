import { parse as parseYaml } from "yaml";
import type { LabelBox } from "./metrics.js";

/** One line of a YOLO label file: class and box centre/size, normalised to the image (0..1). */
export interface YoloLabel {
  classId: number;
  cx: number;
  cy: number;
  w: number;
  h: number;
}

/** Parses a YOLO `.txt` label file; `file` only names the source in error messages. */
export function parseYoloLabels(text: string, file = "labels"): YoloLabel[] {
  const labels: YoloLabel[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const fields = lines[i].trim().split(/\s+/);
    if (fields[0] === "") continue;
    const nums = fields.map(Number);
    // Segmentation labels carry polygons after the class; only boxes are meant here.
    if (nums.length !== 5 || nums.some((n) => !Number.isFinite(n)) || !Number.isInteger(nums[0]) || nums[0] < 0) {
      throw new Error(`${file}:${i + 1}: expected "class cx cy w h"`);
    }
    const [classId, cx, cy, w, h] = nums;
    labels.push({ classId, cx, cy, w, h });
  }
  return labels;
}

/** Converts normalised labels to corner boxes in pixels of an image of the given (EXIF-oriented) size. */
export function labelsToPixels(labels: readonly YoloLabel[], width: number, height: number): LabelBox[] {
  return labels.map((l) => ({
    x1: (l.cx - l.w / 2) * width,
    y1: (l.cy - l.h / 2) * height,
    x2: (l.cx + l.w / 2) * width,
    y2: (l.cy + l.h / 2) * height,
    classId: l.classId,
  }));
}

/** Class names of a YOLO dataset's `data.yaml` (`names:` as a list or an id → name mapping). */
export function parseDatasetNames(dataYaml: string): string[] {
  const doc: unknown = parseYaml(dataYaml, { maxAliasCount: 0 });
  const names = typeof doc === "object" && doc !== null && "names" in doc ? doc.names : undefined;
  if (Array.isArray(names)) return names.map(String);
  if (typeof names === "object" && names !== null) {
    const out: string[] = [];
    for (const [id, name] of Object.entries(names)) out[Number(id)] = String(name);
    return Array.from(out, (n, i) => n ?? `class${i}`);
  }
  throw new Error("data.yaml has no 'names' list or mapping");
}
