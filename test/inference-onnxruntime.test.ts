import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { InferenceEngine } from "../src/inference/engine.js";
import { loadEngine, ModelLoadError } from "../src/inference/load-engine.js";
import { createOnnxRuntimeEngine } from "../src/inference/onnxruntime-engine.js";
import { Detector } from "../src/pipeline/detector.js";
import { chwTensor } from "../src/pipeline/letterbox.js";
import { sceneJpeg } from "./support/images.js";

const modelPath = fileURLToPath(new URL("../../shared/testdata/models/pothole-yolov8n-640-int8/best_dynamic_int8.onnx", import.meta.url));
const present = existsSync(modelPath);
if (!present) console.warn(`skipping onnxruntime engine tests on the real model: ${modelPath} is not there`);

describe.skipIf(!present)("onnxruntime engine on a real YOLOv8 export", () => {
  let engine: InferenceEngine;
  beforeAll(async () => {
    engine = await createOnnxRuntimeEngine({ modelPath, concurrency: 2, threads: 1 });
  });
  afterAll(() => engine?.close());

  it("reads class names, imgsz, stride and the dynamic dims from the model file", () => {
    expect(engine).toMatchObject({ backend: "onnxruntime", device: "cpu", concurrency: 2 });
    expect(engine.model).toEqual({
      path: modelPath,
      classNames: ["obstacle", "pothole"],
      inputWidth: 640,
      inputHeight: 640,
      dynamicInputSize: true,
      dynamicBatch: true,
      stride: 32,
      description: "Ultralytics best model trained on /content/road_anomaly_detection/test/data.yaml",
    });
  });

  it("runs other input sizes, several in flight, without stalling the event loop", async () => {
    const input = (side: number) => ({ data: new Float32Array(3 * side * side).fill(0.5), dims: [1, 3, side, side] });
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    const start = performance.now();
    const [a, b, c] = await Promise.all([engine.run(input(320)), engine.run(input(320)), engine.run(input(256))]);
    const elapsed = performance.now() - start;
    clearInterval(timer);
    // 320² has 40² + 20² + 10² anchors.
    expect(a.dims).toEqual([1, 6, 2100]);
    expect(b.data).toEqual(a.data);
    expect(c.dims).toEqual([1, 6, 1344]);
    // On the main thread ORT would block the loop for whole runs (a few ticks in total, measured);
    // a busy box delays timers too, so only ask for a fifth of the ideal count.
    expect(ticks).toBeGreaterThan(elapsed / 5 / 5);
  }, 30_000);

  it("copies the input unless the caller hands it over", async () => {
    const kept = { data: new Float32Array(3 * 64 * 64).fill(0.5), dims: [1, 3, 64, 64] };
    const given = { data: new Float32Array(3 * 64 * 64).fill(0.5), dims: [1, 3, 64, 64] };
    const [a, b] = await Promise.all([engine.run(kept), engine.run(given, { transferInput: true })]);
    expect(kept.data).toHaveLength(3 * 64 * 64);
    expect(given.data).toHaveLength(0); // detached: now owned by the worker
    expect(b.data).toEqual(a.data);
    expect(a.data).toBeInstanceOf(Float32Array);
  });

  it("reports a bad input as a rejected run and keeps serving", async () => {
    await expect(engine.run({ data: new Float32Array(10), dims: [1, 3, 64, 64] })).rejects.toThrow();
    const ok = await engine.run({ data: new Float32Array(3 * 64 * 64), dims: [1, 3, 64, 64] });
    expect(ok.dims).toEqual([1, 6, 84]);
  });
});

describe("the engine makes the float tensor from RGB bytes (runImage)", () => {
  const defaultModel = fileURLToPath(new URL("../models/road-hazard-filter.onnx", import.meta.url));
  let engine: InferenceEngine;
  beforeAll(async () => {
    engine = await createOnnxRuntimeEngine({ modelPath: defaultModel, concurrency: 1, threads: 1 });
  });
  afterAll(() => engine?.close());

  const rgbImage = (width: number, height: number, seed: number) => ({
    data: Uint8Array.from({ length: width * height * 3 }, (_, i) => (i * 7919 + seed * 104729) % 251),
    width,
    height,
  });

  it("gives exactly the output of run() on the tensor made on this thread, at every size, reusing its buffers", async () => {
    for (const [w, h, seed] of [[320, 224, 1], [320, 224, 2], [256, 256, 3], [320, 224, 4]] as const) {
      const image = rgbImage(w, h, seed);
      const here = await engine.run(chwTensor(image));
      const there = await engine.runImage?.({ ...image, data: image.data.slice() }, { transferInput: true });
      expect(there?.dims).toEqual(here.dims);
      expect(there?.data).toEqual(here.data);
    }
  });

  it("gives the same detections through the Detector as the tensor made on this thread", async () => {
    const limits = { maxImageBytes: 8 << 20, maxImagePixels: 16_000_000 };
    const onThisThread: InferenceEngine = {
      backend: engine.backend,
      device: engine.device,
      model: engine.model,
      concurrency: engine.concurrency,
      run: (input, options) => engine.run(input, options),
      close: async () => undefined,
    };
    for (const seed of [11, 12]) {
      const { bytes } = await sceneJpeg(seed);
      const viaWorker = await new Detector(engine, limits).detect(bytes);
      const viaMain = await new Detector(onThisThread, limits).detect(bytes);
      expect(viaWorker.detections.length).toBeGreaterThan(0);
      expect(viaWorker.detections).toEqual(viaMain.detections);
    }
  });

  it("refuses bytes that do not match the stated size and keeps serving", async () => {
    await expect(engine.runImage?.({ data: new Uint8Array(10), width: 64, height: 64 })).rejects.toThrow(/expected 12288 RGB bytes/);
    const ok = await engine.runImage?.(rgbImage(64, 64, 5));
    expect(ok?.dims[0]).toBe(1);
  });
});

describe.skipIf(!present)("onnxruntime engine shutdown", () => {
  it("lets the run in flight finish, refuses queued and later runs", async () => {
    // Terminating a worker inside a native run aborts the whole process (seen here), so close waits.
    const engine = await createOnnxRuntimeEngine({ modelPath, concurrency: 1 });
    const input = { data: new Float32Array(3 * 640 * 640), dims: [1, 3, 640, 640] };
    const settled = Promise.allSettled([engine.run(input), engine.run(input)]);
    await new Promise((r) => setTimeout(r, 50));
    await engine.close();
    const [inFlight, queued] = await settled;
    expect(inFlight.status).toBe("fulfilled");
    expect(queued).toMatchObject({ status: "rejected", reason: { message: expect.stringMatching(/closed/) } });
    await expect(engine.run(input)).rejects.toThrow(/closed/);
  });
});

describe("loadEngine", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "hazard-load-"));
    await mkdir(join(dir, "dir.onnx"));
    await writeFile(join(dir, "model.xml"), "<net/>");
    await writeFile(join(dir, "model.bin"), "");
    await writeFile(join(dir, "lonely.xml"), "<net/>");
    await writeFile(join(dir, "model.pt"), "x");
    await writeFile(join(dir, "garbage.onnx"), "this is not a model at all");
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const load = (path: string, backend: "auto" | "onnxruntime" | "openvino" = "onnxruntime") => loadEngine({ modelPath: path, backend });

  it.each([
    ["a missing file", "missing.onnx", /missing\.onnx does not exist/],
    ["a directory", "dir.onnx", /is not a regular file/],
    ["an unsupported extension", "model.pt", /expected an \.onnx file or an OpenVINO IR \.xml/],
    ["an IR on onnxruntime", "model.xml", /OpenVINO IR model: it needs the openvino backend/],
    ["an IR without its .bin", "lonely.xml", /weights file .*lonely\.bin does not exist/],
    ["a file that is not ONNX", "garbage.onnx", /cannot load model .*garbage\.onnx/],
  ])("refuses %s with a one-line ModelLoadError", async (_n, name, message) => {
    const err = await load(join(dir, name), name === "lonely.xml" ? "auto" : "onnxruntime").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelLoadError);
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message).not.toContain("\n");
  });

  it.skipIf(!present)("onnxruntime on request says so", async () => {
    const { engine, reason } = await load(modelPath);
    await engine.close();
    expect(engine.backend).toBe("onnxruntime");
    expect(reason).toBe("onnxruntime was requested");
  });
});
