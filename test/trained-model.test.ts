import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_MODEL_PATH, loadConfig } from "../src/config.js";
import { openYoloDataset, type YoloDataset } from "../src/eval/dataset.js";
import { evaluateDataset, formatReport, type ImageDetections } from "../src/eval/evaluate.js";
import { matchImage } from "../src/eval/metrics.js";
import { serviceDetector } from "../src/eval/service-detector.js";
import { labelsToPixels, parseYoloLabels } from "../src/eval/yolo-labels.js";
import { SHARED_DIR, skipMessage, startServer, type TestServer } from "./support/server.js";

// The MIT road-damage set beside the checkout (never copied here); its val split was never trained on.
const DATA = `${SHARED_DIR}testdata/train/road-damage-br`;
const present = existsSync(`${DATA}/val.txt`);
if (!present) console.warn(skipMessage("the road-damage-br data set"));

describe("the default model", () => {
  it("is our trained detector, not the filter model", () => {
    expect(loadConfig({}).modelPath).toBe(DEFAULT_MODEL_PATH);
    expect(DEFAULT_MODEL_PATH).toMatch(/models\/road-hazard-yolo\.onnx$/);
  });
});

describe.skipIf(!present)("trained road-hazard-yolo through the server (gRPC Detect)", () => {
  let server: TestServer;
  let val: YoloDataset;
  let detect: (image: Buffer, name: string, conf: number) => Promise<ImageDetections>;

  beforeAll(async () => {
    server = await startServer({ MODEL_PATH: DEFAULT_MODEL_PATH });
    val = await openYoloDataset(DATA, "val.txt");
    const byConf = new Map<number, ReturnType<typeof serviceDetector>>();
    detect = (image, name, conf) => {
      let d = byConf.get(conf);
      if (!d) byConf.set(conf, (d = serviceDetector(server.baseUrl, { confidence: conf, iou: 0.7, maxDetections: 300 })));
      return d(image, name);
    };
  }, 120_000);
  afterAll(() => server?.close());

  it("finds the labelled potholes on val photos at the default confidence (0.25)", async () => {
    const POTHOLE = val.names.indexOf("pothole");
    const withPotholes = [];
    for (const item of val.items) {
      if (!existsSync(item.labels)) continue;
      if (parseYoloLabels(await readFile(item.labels, "utf8")).some((l) => l.classId === POTHOLE)) withPotholes.push(item);
      if (withPotholes.length === 12) break;
    }
    expect(withPotholes).toHaveLength(12);
    let found = 0;
    let labelled = 0;
    let wrong = 0;
    for (const item of withPotholes) {
      const res = await detect(await readFile(item.image), item.image, 0.25);
      const labels = labelsToPixels(parseYoloLabels(await readFile(item.labels, "utf8")), res.width, res.height)
        .filter((l) => l.classId === POTHOLE);
      const potholes = res.detections.filter((d) => d.className === "pothole").map((d) => ({ ...d, classId: POTHOLE }));
      const m = matchImage(potholes, labels);
      found += m.tp;
      wrong += m.fp;
      labelled += labels.length;
    }
    console.log(`12 val photos with potholes: ${found}/${labelled} labelled potholes found (IoU >= 0.5), ${wrong} other pothole boxes`);
    // Measured 2026-11-26: most of them found; a chance detector finds none at IoU 0.5.
    expect(found / labelled).toBeGreaterThanOrEqual(0.6);
    expect(found).toBeGreaterThan(wrong);
  }, 120_000);

  it("reaches the issue's AP50 targets on the whole val split (pothole >= 0.50, crack >= 0.25)", async () => {
    const report = await evaluateDataset(val, { conf: 0.25, detect: (image, name) => detect(image, name, 0.001) });
    console.log(formatReport(report));
    const byName = Object.fromEntries(report.classes.map((c) => [c.name, c]));
    expect(byName.pothole.labels).toBe(91);
    expect(byName.crack.labels).toBe(367);
    expect(byName.pothole.ap50).toBeGreaterThanOrEqual(0.5);
    expect(byName.crack.ap50).toBeGreaterThanOrEqual(0.25);
  }, 300_000);
});
