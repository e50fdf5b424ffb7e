import { readFile } from "node:fs/promises";
import { dirname, extname, join } from "node:path";
import type { InferenceEngine, ModelInfo, RgbImage, RunOptions, Tensor } from "./engine.js";
import { resolveModelInfo, type Dim } from "./model-info.js";
import { parseMetadataYaml, parseOnnxMetadata, type UltralyticsMetadata } from "./model-metadata.js";
import { readOnnxMetadataProps } from "./onnx-metadata.js";
import type { OvAddon, OvCompiledModel, OvCore, OvInferRequest, OvModel, OvOutput, OvTensor } from "./openvino-addon.js";
import { PlanarConverter } from "./planar-converter.js";
import { ResourcePool } from "./resource-pool.js";

export type PerformanceHint = "LATENCY" | "THROUGHPUT";

export interface OpenVinoEngineOptions {
  /** An IR `.xml` (with its `.bin` and optional `metadata.yaml` beside it) or an `.onnx` file. */
  modelPath: string;
  /** OpenVINO device name, default "AUTO" (GPU/NPU when present, else CPU). */
  device?: string;
  performanceHint?: PerformanceHint;
  /** Where OpenVINO caches compiled blobs, so a restart skips compilation; absent disables it. */
  cacheDir?: string;
  /** INFERENCE_NUM_THREADS; absent lets OpenVINO decide. */
  threads?: number;
}

/** Input sizes compiled at once; each costs a compile and device memory. */
const MAX_SIZE_VARIANTS = 4;
const MAX_REQUESTS = 16;

interface Variant {
  compiled: OvCompiledModel;
  pool: ResourcePool<OvInferRequest>;
  requests: number;
}

function dims(port: OvOutput): Dim[] {
  return port.getPartialShape().getDimensions();
}

async function readMetadata(modelPath: string): Promise<UltralyticsMetadata> {
  if (extname(modelPath).toLowerCase() === ".onnx") return parseOnnxMetadata(await readOnnxMetadataProps(modelPath));
  let text: string;
  try {
    text = await readFile(join(dirname(modelPath), "metadata.yaml"), "utf8");
  } catch {
    return {}; // IR exported by other tools: fall back to the input shape and classN names.
  }
  return parseMetadataYaml(text);
}

class OpenVinoEngine implements InferenceEngine {
  readonly backend = "openvino";
  readonly #variants = new Map<string, Promise<Variant>>();
  /** Each infer request's input memory for runImage (a request always has the same input size). */
  readonly #planes = new WeakMap<OvInferRequest, Float32Array<ArrayBuffer>>();
  #converter: PlanarConverter | undefined;
  #closed = false;

  constructor(
    private readonly addon: OvAddon,
    private readonly core: OvCore,
    private readonly source: OvModel,
    private readonly config: Record<string, string>,
    private readonly requestedDevice: string,
    readonly model: ModelInfo,
    private readonly native: Variant,
    readonly device: string,
  ) {
    this.#variants.set(`${model.inputHeight}x${model.inputWidth}`, Promise.resolve(native));
  }

  get concurrency(): number {
    return this.native.requests;
  }

  async run(input: Tensor, options?: RunOptions): Promise<Tensor> {
    const [, , h, w] = input.dims;
    return this.#infer(h, w, options, async () => new this.addon.Tensor("f32", [...input.dims], input.data));
  }

  /**
   * openvino-node's preprocessing (PrePostProcessor) can take u8 NHWC and convert type and layout,
   * but has no scale step in JavaScript, so the model would see 0..255. The planar 0..1 tensor is
   * made on a worker thread instead, into memory each infer request keeps (no 5 MB per frame).
   */
  async runImage(image: RgbImage, options?: RunOptions): Promise<Tensor> {
    const { width: w, height: h } = image;
    return this.#infer(h, w, options, async (request) => {
      this.#converter ??= new PlanarConverter();
      const kept = this.#planes.get(request);
      // A failed conversion leaves the kept buffer detached (empty): start a new one then.
      const into = kept !== undefined && kept.length === 3 * w * h ? kept : new Float32Array(3 * w * h);
      const planar = await this.#converter.convert(image, into);
      this.#planes.set(request, planar);
      return new this.addon.Tensor("f32", [1, 3, h, w], planar);
    });
  }

  async #infer(h: number, w: number, options: RunOptions | undefined, input: (request: OvInferRequest) => Promise<OvTensor>): Promise<Tensor> {
    if (this.#closed) throw new Error("the inference engine is closed");
    const variant = await this.#variant(h, w);
    const inputName = variant.compiled.inputs[0].getAnyName();
    const outputName = variant.compiled.outputs[0].getAnyName();
    return variant.pool.use(async (request) => {
      options?.onStart?.();
      const result = await request.inferAsync({ [inputName]: await input(request) });
      const out = result[outputName] ?? Object.values(result)[0];
      if (out === undefined) throw new Error("OpenVINO returned no output");
      // A copy: the request's output memory is reused by the next run as soon as it is back in the pool.
      return { data: new Float32Array(out.getData()), dims: out.getShape() };
    });
  }

  /**
   * Dynamic models are compiled per input size with static shapes: every OpenVINO device runs
   * static shapes faster, and GPU/NPU plugins support dynamic ones only partly. The few sizes the
   * quality modes use are kept compiled; the oldest beyond MAX_SIZE_VARIANTS is dropped.
   */
  #variant(h: number, w: number): Promise<Variant> {
    const key = `${h}x${w}`;
    let v = this.#variants.get(key);
    if (v === undefined) {
      if (!this.model.dynamicInputSize) {
        const m = this.model;
        return Promise.reject(new Error(`the model takes ${m.inputWidth}×${m.inputHeight} input only, got ${w}×${h}`));
      }
      v = compileVariant(this.core, this.source, this.requestedDevice, this.config, [1, 3, h, w]);
      v.catch(() => this.#variants.delete(key));
      this.#variants.set(key, v);
      const nativeKey = `${this.model.inputHeight}x${this.model.inputWidth}`;
      const evictable = [...this.#variants.keys()].filter((k) => k !== nativeKey && k !== key);
      if (this.#variants.size > MAX_SIZE_VARIANTS && evictable.length > 0) this.#variants.delete(evictable[0]);
    }
    return v;
  }

  async close(): Promise<void> {
    this.#closed = true;
    const variants = await Promise.allSettled(this.#variants.values());
    await Promise.all(variants.map((v) => (v.status === "fulfilled" ? v.value.pool.close() : undefined)));
    this.#variants.clear();
    await this.#converter?.close();
  }
}

async function compileVariant(
  core: OvCore,
  source: OvModel,
  device: string,
  config: Record<string, string>,
  shape: readonly number[],
): Promise<Variant> {
  let model = source;
  if (source.isDynamic()) {
    try {
      const clone = source.clone();
      model = clone.reshape?.(`[${shape.join(",")}]`) ?? clone;
    } catch {
      model = source; // Not reshapable (or an old binding): run it dynamic with per-run shapes.
    }
  }
  let compiled: OvCompiledModel;
  try {
    // f16 halves memory traffic where the device computes it natively (GPU, NPU, recent Xeons);
    // plugins that refuse the hint get the same config without it.
    compiled = await core.compileModel(model, device, { ...config, INFERENCE_PRECISION_HINT: "f16" });
  } catch {
    compiled = await core.compileModel(model, device, config);
  }
  let requests = 1;
  try {
    const optimal = Number(compiled.getProperty("OPTIMAL_NUMBER_OF_INFER_REQUESTS"));
    if (Number.isInteger(optimal) && optimal > 0) requests = Math.min(optimal, MAX_REQUESTS);
  } catch {
    // Older plugins do not report it; one request is always valid.
  }
  const pool = new ResourcePool(Array.from({ length: requests }, () => compiled.createInferRequest()));
  return { compiled, pool, requests };
}

export async function createOpenVinoEngine(addon: OvAddon, opts: OpenVinoEngineOptions): Promise<InferenceEngine> {
  const requestedDevice = opts.device?.trim() || "AUTO";
  const metadata = await readMetadata(opts.modelPath);
  const core = new addon.Core();
  const source = await core.readModel(opts.modelPath);
  if (source.inputs.length !== 1) throw new Error(`the model has ${source.inputs.length} inputs; a YOLO detector has one`);
  const model = resolveModelInfo({
    path: opts.modelPath,
    metadata,
    inputShape: dims(source.inputs[0]),
    outputShape: dims(source.outputs[0]),
  });
  const config: Record<string, string> = { PERFORMANCE_HINT: opts.performanceHint ?? "LATENCY" };
  if (opts.cacheDir) config.CACHE_DIR = opts.cacheDir;
  if (opts.threads !== undefined && opts.threads > 0) config.INFERENCE_NUM_THREADS = String(Math.floor(opts.threads));
  const native = await compileVariant(core, source, requestedDevice, config, [1, 3, model.inputHeight, model.inputWidth]);
  let device = requestedDevice;
  try {
    const exec = native.compiled.getProperty("EXECUTION_DEVICES");
    if (String(exec) !== "" && String(exec) !== requestedDevice) device = `${requestedDevice} (${String(exec)})`;
  } catch {
    // Not every plugin reports where AUTO placed the model.
  }
  return new OpenVinoEngine(addon, core, source, config, requestedDevice, model, native, device);
}
