import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadEngine, ModelLoadError } from "../src/inference/load-engine.js";
import { createOnnxRuntimeEngine } from "../src/inference/onnxruntime-engine.js";
import type { OvAddon, OvCompiledModel, OvDimension, OvModel, OvOutput, OvTensor } from "../src/inference/openvino-addon.js";
import { loadOpenVino } from "../src/inference/openvino-addon.js";
import { createOpenVinoEngine } from "../src/inference/openvino-engine.js";
import { chwTensor } from "../src/pipeline/letterbox.js";

const modelPath = fileURLToPath(new URL("../../shared/testdata/models/pothole-yolov8n-640-int8/best_dynamic_int8.onnx", import.meta.url));
const modelPresent = existsSync(modelPath);
const ov = await loadOpenVino();
const ovReason = "reason" in ov ? ov.reason : undefined;
if (ovReason) console.warn(`skipping real OpenVINO tests: ${ovReason}`);

describe.skipIf(ovReason !== undefined || !modelPresent)("OpenVINO engine on the real model (needs openvino-node)", () => {
  it("reads the metadata and agrees with onnxruntime", async () => {
    if (!("addon" in ov)) throw new Error("unreachable");
    const engine = await createOpenVinoEngine(ov.addon, { modelPath, device: "CPU" });
    const ort = await createOnnxRuntimeEngine({ modelPath });
    try {
      expect(engine.model).toEqual(ort.model);
      const input = { data: new Float32Array(3 * 640 * 640).fill(0.5), dims: [1, 3, 640, 640] };
      const [a, b] = await Promise.all([engine.run(input), ort.run(input)]);
      expect(a.dims).toEqual(b.dims);
      let maxDiff = 0;
      for (let i = 0; i < a.data.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a.data[i] - b.data[i]));
      expect(maxDiff).toBeLessThan(1);
    } finally {
      await Promise.all([engine.close(), ort.close()]);
    }
  }, 120_000);
});

describe("backend selection", () => {
  it.runIf(ovReason !== undefined && modelPresent)("auto falls back to onnxruntime and says why", async () => {
    const { engine, reason } = await loadEngine({ modelPath, backend: "auto" });
    await engine.close();
    expect(engine.backend).toBe("onnxruntime");
    expect(reason).toBe(`${ovReason}: using onnxruntime`);
  });

  it.runIf(ovReason !== undefined && modelPresent)("an explicit openvino request fails with the reason", async () => {
    const err = await loadEngine({ modelPath, backend: "openvino" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelLoadError);
    expect((err as Error).message).toBe(`the openvino backend was requested but ${ovReason}`);
  });
});

/**
 * A stand-in for the openvino-node addon with the documented API shape, so the engine's own logic
 * (metadata, reshaping per input size, request pool, f16 fallback) runs here. It proves nothing
 * about the real runtime; the describe above does that where openvino-node loads.
 */
function fakeAddon(opts: { inputDims: OvDimension[]; refuseF16?: boolean; optimalRequests?: number }) {
  const log = { compiled: [] as Array<{ shape: string; config: Record<string, string> }>, inflight: 0, maxInflight: 0, inputs: [] as Float32Array[] };
  const port = (name: string, dims: OvDimension[]): OvOutput => ({
    getAnyName: () => name,
    getPartialShape: () => ({ isDynamic: () => dims.some((d) => d === -1 || Array.isArray(d)), getDimensions: () => dims, toString: () => `[${dims.join(",")}]` }),
  });
  const model = (dims: OvDimension[]): OvModel => ({
    inputs: [port("images", dims)],
    outputs: [port("output0", [1, 6, -1])],
    isDynamic: () => dims.some((d) => d === -1),
    clone: () => model(dims),
    reshape: (shape: string) => model(shape.slice(1, -1).split(",").map(Number)),
  });
  class Tensor implements OvTensor {
    constructor(
      readonly type: "f32",
      readonly shape: number[],
      readonly data: Float32Array,
    ) {}
    getData = () => this.data;
    getShape = () => this.shape;
  }
  const addon: OvAddon = {
    Tensor,
    Core: class {
      readModel = async () => model(opts.inputDims);
      getAvailableDevices = () => ["CPU"];
      compileModel = async (m: OvModel, _device: string, config: Record<string, string> = {}): Promise<OvCompiledModel> => {
        if (opts.refuseF16 && config.INFERENCE_PRECISION_HINT) throw new Error("f16 is not supported on this CPU");
        log.compiled.push({ shape: m.inputs[0].getPartialShape().toString(), config });
        return {
          inputs: m.inputs,
          outputs: m.outputs,
          getProperty: (name) => (name === "OPTIMAL_NUMBER_OF_INFER_REQUESTS" ? (opts.optimalRequests ?? 1) : "CPU"),
          createInferRequest: () => ({
            async inferAsync(inputs) {
              log.inflight++;
              log.maxInflight = Math.max(log.maxInflight, log.inflight);
              await new Promise((r) => setTimeout(r, 10));
              log.inflight--;
              const shape = (inputs as Record<string, Tensor>).images.getShape();
              log.inputs.push((inputs as Record<string, Tensor>).images.getData().slice());
              return { output0: new Tensor("f32", [1, 6, shape[2]], new Float32Array(6 * shape[2])) };
            },
          }),
        };
      };
    },
  };
  return { addon, log };
}

describe("OpenVINO engine logic against a fake addon (API shape only)", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "hazard-ov-"));
    await writeFile(join(dir, "best.xml"), "<net/>");
    await writeFile(join(dir, "best.bin"), "");
    await writeFile(join(dir, "metadata.yaml"), "stride: 32\nimgsz:\n- 480\n- 640\nnames:\n  0: crack\n  1: pothole\n");
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("reads metadata.yaml, compiles static per size with the hints, and sizes the request pool", async () => {
    const { addon, log } = fakeAddon({ inputDims: [-1, 3, -1, -1], refuseF16: true, optimalRequests: 3 });
    const engine = await createOpenVinoEngine(addon, { modelPath: join(dir, "best.xml"), cacheDir: "/tmp/ov-cache", performanceHint: "THROUGHPUT" });
    expect(engine.model).toMatchObject({ classNames: ["crack", "pothole"], inputWidth: 640, inputHeight: 480, dynamicInputSize: true });
    expect(engine.concurrency).toBe(3);
    expect(log.compiled).toEqual([{ shape: "[1,3,480,640]", config: { PERFORMANCE_HINT: "THROUGHPUT", CACHE_DIR: "/tmp/ov-cache" } }]);

    const input = (h: number, w: number) => ({ data: new Float32Array(3 * h * w), dims: [1, 3, h, w] });
    const outs = await Promise.all(Array.from({ length: 7 }, () => engine.run(input(480, 640))));
    expect(outs[0].dims).toEqual([1, 6, 480]);
    expect(log.maxInflight).toBe(3);
    await engine.run(input(320, 320));
    expect(log.compiled.map((c) => c.shape)).toEqual(["[1,3,480,640]", "[1,3,320,320]"]);
    await engine.close();
    await expect(engine.run(input(480, 640))).rejects.toThrow(/closed/);
  });

  it("makes the planar float input from RGB bytes off the event loop, as run() would get it", async () => {
    const { addon, log } = fakeAddon({ inputDims: [-1, 3, -1, -1], optimalRequests: 2 });
    const engine = await createOpenVinoEngine(addon, { modelPath: join(dir, "best.xml") });
    try {
      const image = (seed: number) => ({ data: Uint8Array.from({ length: 480 * 640 * 3 }, (_, i) => (i + seed) % 256), width: 640, height: 480 });
      // More runs than requests: each request's buffer is reused, and every run still gets its own pixels.
      const outs = await Promise.all([1, 2, 3, 4, 5].map((seed) => engine.runImage?.(image(seed))));
      expect(outs.every((o) => o?.dims.join() === "1,6,480")).toBe(true);
      const expected = [1, 2, 3, 4, 5].map((seed) => chwTensor(image(seed)).data);
      expect(log.inputs).toHaveLength(5);
      for (const got of log.inputs) expect(expected.some((e) => e.every((v, i) => v === got[i]))).toBe(true);
      expect(new Set(log.inputs.map((d) => d[0]))).toEqual(new Set(expected.map((d) => d[0])));
      await expect(engine.runImage?.({ data: new Uint8Array(12), width: 640, height: 480 })).rejects.toThrow(/RGB bytes/);
      expect((await engine.runImage?.(image(6)))?.dims).toEqual([1, 6, 480]);
    } finally {
      await engine.close();
    }
  });

  it("passes the f16 hint where accepted and refuses other sizes on a static model", async () => {
    const { addon, log } = fakeAddon({ inputDims: [1, 3, 640, 640] });
    await writeFile(join(dir, "static.xml"), "<net/>");
    const engine = await createOpenVinoEngine(addon, { modelPath: join(dir, "static.xml"), device: "GPU" });
    expect(log.compiled[0].config).toEqual({ PERFORMANCE_HINT: "LATENCY", INFERENCE_PRECISION_HINT: "f16" });
    expect(engine.device).toBe("GPU (CPU)");
    await expect(engine.run({ data: new Float32Array(3 * 64 * 64), dims: [1, 3, 64, 64] })).rejects.toThrow(/640×640 input only/);
  });
});
