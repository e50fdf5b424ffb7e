import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import type { InferenceEngine, ModelInfo, RgbImage, RunOptions, Tensor } from "./engine.js";
import { resolveModelInfo, type Dim } from "./model-info.js";
import { parseOnnxMetadata } from "./model-metadata.js";
import { readOnnxMetadataProps } from "./onnx-metadata.js";
import { ResourcePool } from "./resource-pool.js";

export interface OnnxRuntimeEngineOptions {
  modelPath: string;
  /** Threads per run (ORT intraOpNumThreads); 0 or absent shares the cores among the runs in flight. */
  threads?: number;
  /** Runs kept in flight, one worker thread each (see DEFAULT_ORT_CONCURRENCY). */
  concurrency?: number;
}

/**
 * Runs in flight by default: two (one worker each, sharing the cores), fewer on a single core.
 * Measured on the 2-core dev box, pothole YOLOv8n INT8 at 640, whole pipeline: when idle, two
 * single-thread runs gave 30-50% more frames/s than one two-thread run for 25-30% more latency
 * per frame (this model's intra-op scaling is poor); under CPU contention from other processes
 * two single-thread runs were better on both counts (0.98 s vs 1.85 s per frame, 1.0 vs 0.64 fps),
 * because a two-thread run waits for its slowest thread at every operator.
 */
export const DEFAULT_ORT_CONCURRENCY = 2;

interface PortInfo {
  name: string;
  shape: Dim[];
}

type WorkerMessage =
  | { type: "ready"; input: PortInfo; output: PortInfo }
  | { type: "load-error"; message: string }
  | { type: "result"; id: number; data: Float32Array; dims: number[] }
  | { type: "run-error"; id: number; message: string };

const WORKER_URL = new URL("./ort-worker.mjs", import.meta.url);

function ownsPlainBuffer(a: Float32Array): a is Float32Array<ArrayBuffer> {
  return a.buffer instanceof ArrayBuffer;
}

/** Bytes that can be handed to a worker without copying: a whole, plain ArrayBuffer. */
function transferableBytes(a: Uint8Array): a is Uint8Array<ArrayBuffer> {
  return a.buffer instanceof ArrayBuffer && a.byteOffset === 0 && a.byteLength === a.buffer.byteLength;
}

/** One worker thread holding one ORT session; runs one inference at a time (the pool ensures it). */
class OrtWorker {
  readonly ready: Promise<{ input: PortInfo; output: PortInfo }>;
  #worker: Worker;
  #pending: { id: number; resolve: (t: Tensor) => void; reject: (e: Error) => void } | undefined;
  #nextId = 0;
  #stopped: Error | undefined;

  constructor(modelPath: string, threads: number) {
    this.#worker = new Worker(WORKER_URL, {
      workerData: {
        modelPath,
        sessionOptions: {
          intraOpNumThreads: threads,
          interOpNumThreads: 1,
          executionMode: "sequential",
          graphOptimizationLevel: "all",
          // Spinning intra-op threads fight sharp's decoder threads and the event loop for the same
          // cores: measured on the 2-core box under load, a run took ~25% less CPU with it off.
          extra: { session: { intra_op: { allow_spinning: "0" } } },
        },
      },
    });
    // Only a worker with a run in flight keeps the process alive.
    this.#worker.unref();
    this.ready = new Promise((resolve, reject) => {
      const onMessage = (m: WorkerMessage): void => {
        if (m.type === "ready") resolve({ input: m.input, output: m.output });
        else if (m.type === "load-error") reject(new Error(m.message));
        else this.#settle(m);
      };
      this.#worker.on("message", onMessage);
      this.#worker.on("error", (e) => this.#stop(e, reject));
      this.#worker.on("exit", (code) => this.#stop(new Error(`inference worker exited (code ${code})`), reject));
    });
    // The engine awaits `ready`; this only keeps an early crash from being an unhandled rejection.
    this.ready.catch(() => undefined);
  }

  get alive(): boolean {
    return this.#stopped === undefined;
  }

  run(input: Tensor, transfer: boolean): Promise<Tensor> {
    // Always transfer: structured clone serialises the 5 MB input twice (measured 50-120 ms round
    // trip on the dev box against 1-4 ms transferred). Without the caller's consent, transfer a copy.
    const data = transfer && ownsPlainBuffer(input.data) ? input.data : input.data.slice();
    return this.#post({ data, dims: [...input.dims] }, data.buffer);
  }

  /** The worker makes the float tensor (a quarter of the bytes to send, and off the event loop). */
  runImage(image: RgbImage, transfer: boolean): Promise<Tensor> {
    const rgb = transfer && transferableBytes(image.data) ? image.data : image.data.slice();
    return this.#post({ rgb, width: image.width, height: image.height }, rgb.buffer);
  }

  #post(message: object, transfer: ArrayBuffer): Promise<Tensor> {
    if (this.#stopped) return Promise.reject(this.#stopped);
    const id = this.#nextId++;
    return new Promise<Tensor>((resolve, reject) => {
      this.#pending = { id, resolve, reject };
      this.#worker.ref();
      this.#worker.postMessage({ id, ...message }, [transfer]);
    });
  }

  async terminate(): Promise<void> {
    this.#stopped ??= new Error("the inference engine is closed");
    await this.#worker.terminate();
  }

  #settle(m: Extract<WorkerMessage, { id: number }>): void {
    const p = this.#pending;
    if (!p || p.id !== m.id) return;
    this.#pending = undefined;
    this.#worker.unref();
    if (m.type === "result") p.resolve({ data: m.data, dims: m.dims });
    else p.reject(new Error(m.message));
  }

  #stop(e: Error, rejectReady: (e: Error) => void): void {
    // After terminate() the cause is "closed", not the exit that terminating causes.
    const cause = (this.#stopped ??= e);
    rejectReady(cause);
    this.#pending?.reject(cause);
    this.#pending = undefined;
  }
}

class OnnxRuntimeEngine implements InferenceEngine {
  readonly backend = "onnxruntime";
  readonly device = "cpu";

  constructor(
    readonly model: ModelInfo,
    readonly concurrency: number,
    private readonly slots: Array<{ worker: OrtWorker }>,
    private readonly pool: ResourcePool<{ worker: OrtWorker }>,
    private readonly respawn: () => OrtWorker,
  ) {}

  run(input: Tensor, options?: RunOptions): Promise<Tensor> {
    return this.#withWorker(options, (w, transfer) => w.run(input, transfer));
  }

  runImage(image: RgbImage, options?: RunOptions): Promise<Tensor> {
    return this.#withWorker(options, (w, transfer) => w.runImage(image, transfer));
  }

  #withWorker(options: RunOptions | undefined, fn: (worker: OrtWorker, transfer: boolean) => Promise<Tensor>): Promise<Tensor> {
    return this.pool.use(async (slot) => {
      // A crashed worker (native abort, OOM) is replaced instead of failing every later frame.
      if (!slot.worker.alive) {
        slot.worker = this.respawn();
        await slot.worker.ready;
      }
      options?.onStart?.();
      return fn(slot.worker, options?.transferInput === true);
    });
  }

  async close(): Promise<void> {
    await this.pool.close();
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}

export async function createOnnxRuntimeEngine(opts: OnnxRuntimeEngineOptions): Promise<InferenceEngine> {
  const concurrency = Math.max(1, Math.floor(opts.concurrency ?? Math.min(DEFAULT_ORT_CONCURRENCY, availableParallelism())));
  const threads =
    opts.threads !== undefined && opts.threads > 0
      ? Math.floor(opts.threads)
      : Math.max(1, Math.floor(availableParallelism() / concurrency));
  const metadata = parseOnnxMetadata(await readOnnxMetadataProps(opts.modelPath));
  const spawn = (): OrtWorker => new OrtWorker(opts.modelPath, threads);
  const slots = Array.from({ length: concurrency }, () => ({ worker: spawn() }));
  let ports: { input: PortInfo; output: PortInfo };
  try {
    [ports] = await Promise.all(slots.map((s) => s.worker.ready));
  } catch (e) {
    await Promise.all(slots.map((s) => s.worker.terminate()));
    throw e;
  }
  const model = resolveModelInfo({
    path: opts.modelPath,
    metadata,
    inputShape: ports.input.shape,
    outputShape: ports.output.shape,
  });
  return new OnnxRuntimeEngine(model, concurrency, slots, new ResourcePool(slots), spawn);
}
