import { constants } from "node:fs";
import { access, stat } from "node:fs/promises";
import { extname } from "node:path";
import type { InferenceEngine } from "./engine.js";
import { createOnnxRuntimeEngine } from "./onnxruntime-engine.js";
import { loadOpenVino, type OvAddon } from "./openvino-addon.js";
import { createOpenVinoEngine, type PerformanceHint } from "./openvino-engine.js";
import { firstLine } from "./error-text.js";

export type BackendChoice = "auto" | "openvino" | "onnxruntime";

export interface LoadEngineOptions {
  modelPath: string;
  backend: BackendChoice;
  /** Threads per run; absent or 0 lets the backend decide. */
  threads?: number;
  /** OpenVINO device (default "AUTO"). */
  device?: string;
  /** OpenVINO compiled-model cache directory. */
  cacheDir?: string;
  /** OpenVINO performance hint (default LATENCY). */
  performanceHint?: PerformanceHint;
  /** onnxruntime: runs in flight (worker threads). */
  concurrency?: number;
}

/** The model cannot be loaded; the message names only the given path and is fit for an operator. */
export class ModelLoadError extends Error {
  override name = "ModelLoadError";
}

/**
 * Picks the backend and loads the model. `auto` prefers OpenVINO when openvino-node and its runtime
 * load, else onnxruntime; `reason` says in one sentence which backend runs and why, for the log.
 */
export async function loadEngine(opts: LoadEngineOptions): Promise<{ engine: InferenceEngine; reason: string }> {
  const format = await checkModelFile(opts.modelPath);
  if (opts.backend === "onnxruntime") {
    if (format === "ir") throw new ModelLoadError(`${opts.modelPath} is an OpenVINO IR model: it needs the openvino backend`);
    return { engine: await withModelErrors(opts.modelPath, onnxruntime(opts)), reason: "onnxruntime was requested" };
  }
  const ov = await loadOpenVino();
  if ("reason" in ov) {
    if (opts.backend === "openvino") throw new ModelLoadError(`the openvino backend was requested but ${ov.reason}`);
    if (format === "ir") throw new ModelLoadError(`${opts.modelPath} is an OpenVINO IR model but ${ov.reason}`);
    return { engine: await withModelErrors(opts.modelPath, onnxruntime(opts)), reason: `${ov.reason}: using onnxruntime` };
  }
  const requested = opts.backend === "openvino" ? "the openvino backend was requested" : "openvino-node loaded";
  if (opts.backend === "openvino" || format === "ir") {
    return { engine: await withModelErrors(opts.modelPath, openvino(ov.addon, opts)), reason: requested };
  }
  try {
    return { engine: await openvino(ov.addon, opts), reason: `${requested}: using OpenVINO` };
  } catch (e) {
    // A device or plugin problem should not take the service down when ORT can run the same ONNX file.
    const engine = await withModelErrors(opts.modelPath, onnxruntime(opts));
    return { engine, reason: `OpenVINO could not load the model (${firstLine(e)}): using onnxruntime` };
  }
}

function onnxruntime(opts: LoadEngineOptions): Promise<InferenceEngine> {
  return createOnnxRuntimeEngine({ modelPath: opts.modelPath, threads: opts.threads, concurrency: opts.concurrency });
}

function openvino(addon: OvAddon, opts: LoadEngineOptions): Promise<InferenceEngine> {
  return createOpenVinoEngine(addon, {
    modelPath: opts.modelPath,
    device: opts.device,
    performanceHint: opts.performanceHint,
    cacheDir: opts.cacheDir,
    threads: opts.threads,
  });
}

async function checkModelFile(path: string): Promise<"onnx" | "ir"> {
  const ext = extname(path).toLowerCase();
  if (ext !== ".onnx" && ext !== ".xml") {
    throw new ModelLoadError(`${path} is not a model this service loads: expected an .onnx file or an OpenVINO IR .xml`);
  }
  await checkReadable(path, "model file");
  if (ext === ".xml") await checkReadable(`${path.slice(0, -ext.length)}.bin`, "OpenVINO IR weights file");
  return ext === ".onnx" ? "onnx" : "ir";
}

async function checkReadable(path: string, what: string): Promise<void> {
  try {
    const s = await stat(path);
    if (!s.isFile()) throw new ModelLoadError(`${what} ${path} is not a regular file`);
    await access(path, constants.R_OK);
  } catch (e) {
    if (e instanceof ModelLoadError) throw e;
    const code = typeof e === "object" && e !== null && "code" in e ? e.code : undefined;
    const why = code === "ENOENT" ? "does not exist" : code === "EACCES" ? "is not readable (permission denied)" : "cannot be read";
    throw new ModelLoadError(`${what} ${path} ${why}`);
  }
}

async function withModelErrors(path: string, loading: Promise<InferenceEngine>): Promise<InferenceEngine> {
  try {
    return await loading;
  } catch (e) {
    throw new ModelLoadError(`cannot load model ${path}: ${firstLine(e)}`, { cause: e });
  }
}
