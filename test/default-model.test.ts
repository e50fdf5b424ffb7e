import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { InferenceEngine } from "../src/inference/engine.js";
import { loadEngine } from "../src/inference/load-engine.js";
import { DEFAULT_DETECT_OPTIONS, Detector } from "../src/pipeline/detector.js";
import { evaluateOnScenes, type SceneEvaluation } from "../scripts/default-model/evaluate.js";

const root = fileURLToPath(new URL("..", import.meta.url));
const committed = join(root, "models/road-hazard-filter.onnx");

describe("default model build", () => {
  it("writes the same bytes every time, and the committed model is a fresh build", async () => {
    const dir = await mkdtemp(join(tmpdir(), "hazard-model-"));
    try {
      const build = (out: string) =>
        promisify(execFile)(process.execPath, ["--import", "tsx", "scripts/build-default-model.ts", out], { cwd: root });
      await build(join(dir, "a.onnx"));
      await build(join(dir, "b.onnx"));
      const [a, b, inRepo] = await Promise.all([join(dir, "a.onnx"), join(dir, "b.onnx"), committed].map((p) => readFile(p)));
      expect(a.equals(b)).toBe(true);
      // If this fails after changing scripts/default-model/: run `npm run build:model` and commit the model.
      expect(inRepo.equals(a)).toBe(true);
      expect(a.length).toBeLessThan(1 << 20);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("default model through the detection pipeline", () => {
  let engine: InferenceEngine;
  let detector: Detector;

  beforeAll(async () => {
    ({ engine } = await loadEngine({ modelPath: committed, backend: "onnxruntime", threads: 1, concurrency: 1 }));
    detector = new Detector(engine, { maxImageBytes: 8 << 20, maxImagePixels: 16_000_000 });
  });
  afterAll(async () => {
    await engine?.close();
  });

  it("reads like an Ultralytics export: class names, native size, dynamic input", () => {
    expect(engine.model).toMatchObject({
      classNames: ["crack", "pothole"],
      inputWidth: 640,
      inputHeight: 640,
      dynamicInputSize: true,
      stride: 32,
    });
  });

  it("finds the potholes and cracks of 40 generated scenes at the default conf and NMS", async () => {
    const seeds = Array.from({ length: 40 }, (_, i) => 1000 + i);
    const result: SceneEvaluation = await evaluateOnScenes(detector, { seeds, width: 640, height: 480, quality: 90 }, DEFAULT_DETECT_OPTIONS);
    const [crack, pothole] = result.classes;
    console.info(
      result.classes.map((c) => `${c.className}: recall ${c.recall.toFixed(3)} precision ${c.precision.toFixed(3)} (TP ${c.tp} FP ${c.fp} FN ${c.fn})`).join("; "),
    );
    expect(pothole!.recall).toBeGreaterThanOrEqual(0.8);
    expect(crack!.recall).toBeGreaterThanOrEqual(0.6);
    expect(pothole!.precision).toBeGreaterThanOrEqual(0.7);
    expect(crack!.precision).toBeGreaterThanOrEqual(0.7);
  }, 120_000);

  it("finds nothing on plain asphalt-gray", async () => {
    const sharp = (await import("sharp")).default;
    const flat = await sharp({ create: { width: 640, height: 480, channels: 3, background: { r: 110, g: 110, b: 108 } } })
      .jpeg({ quality: 90 })
      .toBuffer();
    expect((await detector.detect(flat)).detections).toEqual([]);
  });
});
