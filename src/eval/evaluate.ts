import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { averagePrecision, matchImage, type DetectionBox, type ImageMatch } from "./metrics.js";
import type { YoloDataset } from "./dataset.js";
import { labelsToPixels, parseYoloLabels } from "./yolo-labels.js";

/** What a detector returned for one image: boxes in source pixels, classes by name. */
export interface ImageDetections {
  width: number;
  height: number;
  detections: Array<Omit<DetectionBox, "classId"> & { className: string }>;
}

export interface ClassReport {
  name: string;
  labels: number;
  tp: number;
  fp: number;
  fn: number;
  precision: number;
  recall: number;
  ap50: number;
}

export interface EvalReport {
  images: number;
  /** Confidence at which TP/FP/FN, precision and recall are counted. */
  conf: number;
  classes: ClassReport[];
  map50: number;
  /** Detections of classes the data set does not label (counted nowhere else). */
  otherClassDetections: number;
}

export interface EvaluateOptions {
  /** Runs one image through the detector under test (e.g. the service over gRPC). */
  detect: (image: Buffer, name: string) => Promise<ImageDetections>;
  /** P/R are counted at this confidence; AP uses every detection returned (ask for a low threshold). */
  conf: number;
  /** Images in flight at once. */
  concurrency?: number;
  onProgress?: (done: number, total: number) => void;
}

/**
 * Scores a detector on a YOLO data set with the team's counting rule (src/eval/metrics.ts): AP50 per
 * class over all returned detections, and TP/FP/FN per class at `conf`. Classes match by name, so a
 * model whose class order differs from data.yaml is scored correctly.
 */
export async function evaluateDataset(ds: YoloDataset, opts: EvaluateOptions): Promise<EvalReport> {
  const all: ImageMatch[] = [];
  const atConf: ImageMatch[] = [];
  let other = 0;
  let next = 0;
  let done = 0;
  const worker = async () => {
    for (let i = next++; i < ds.items.length; i = next++) {
      const item = ds.items[i];
      const result = await opts.detect(await readFile(item.image), item.image);
      const text = existsSync(item.labels) ? await readFile(item.labels, "utf8") : "";
      const labels = labelsToPixels(parseYoloLabels(text, item.labels), result.width, result.height);
      const dets = result.detections.map((d) => ({ ...d, classId: ds.names.indexOf(d.className) }));
      other += dets.filter((d) => d.classId < 0 && d.confidence >= opts.conf).length;
      const known = dets.filter((d) => d.classId >= 0);
      all[i] = matchImage(known, labels);
      atConf[i] = matchImage(known.filter((d) => d.confidence >= opts.conf), labels);
      opts.onProgress?.(++done, ds.items.length);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, opts.concurrency ?? 2) }, worker));
  const classes = ds.names.map((name, classId) => {
    const labels = all.reduce((s, m) => s + (m.labelsPerClass.get(classId) ?? 0), 0);
    const outs = atConf.flatMap((m) => m.outcomes.filter((o) => o.classId === classId));
    const tp = outs.filter((o) => o.truePositive).length;
    const fp = outs.length - tp;
    return {
      name, labels, tp, fp, fn: labels - tp,
      precision: outs.length ? tp / outs.length : 0,
      recall: labels ? tp / labels : 0,
      ap50: averagePrecision(all, classId),
    };
  });
  const labelled = classes.filter((c) => c.labels > 0);
  const map50 = labelled.length ? labelled.reduce((s, c) => s + c.ap50, 0) / labelled.length : 0;
  return { images: ds.items.length, conf: opts.conf, classes, map50, otherClassDetections: other };
}

/** The report as a markdown table. */
export function formatReport(r: EvalReport): string {
  const f = (x: number) => x.toFixed(3);
  const rows = r.classes.map((c) => `| ${c.name} | ${c.labels} | ${c.tp} | ${c.fp} | ${c.fn} | ${f(c.precision)} | ${f(c.recall)} | ${f(c.ap50)} |`);
  return [
    `${r.images} images; P/R at conf ${r.conf}; AP50 over all detections (IoU 0.5, 101-point interpolation)`,
    "",
    "| class | labels | TP | FP | FN | P | R | AP50 |",
    "|---|---|---|---|---|---|---|---|",
    ...rows,
    `| **mAP50** | | | | | | | ${f(r.map50)} |`,
    ...(r.otherClassDetections ? ["", `${r.otherClassDetections} detections of classes the data set does not label`] : []),
  ].join("\n");
}
