import { firstLine } from "./error-text.js";

/**
 * The slice of the openvino-node API this service uses (openvino-node ≥ 2024.3, `lib/addon.ts`),
 * declared here because the package is an optional dependency that is often absent (it needs
 * Node ≥ 21 and downloads its runtime at install), so its own typings cannot be relied on.
 */
export type OvAny = string | number | boolean;

/** A dimension: fixed length, -1 when fully dynamic, or a [min, max] interval. */
export type OvDimension = number | [number, number];

export interface OvPartialShape {
  isDynamic(): boolean;
  getDimensions(): OvDimension[];
  toString(): string;
}

export interface OvOutput {
  getAnyName(): string;
  getPartialShape(): OvPartialShape;
}

export interface OvModel {
  readonly inputs: OvOutput[];
  readonly outputs: OvOutput[];
  isDynamic(): boolean;
  clone(): OvModel;
  /** Missing in older openvino-node versions. */
  reshape?(partialShape: string): OvModel;
}

export interface OvTensor {
  getData(): ArrayLike<number>;
  getShape(): number[];
}

export interface OvInferRequest {
  inferAsync(inputs: Record<string, OvTensor> | OvTensor[]): Promise<Record<string, OvTensor>>;
}

export interface OvCompiledModel {
  readonly inputs: OvOutput[];
  readonly outputs: OvOutput[];
  createInferRequest(): OvInferRequest;
  getProperty(name: string): OvAny;
}

export interface OvCore {
  readModel(modelPath: string, weightsPath?: string): Promise<OvModel>;
  // openvino-node converts config values as strings only in some versions: pass strings.
  compileModel(model: OvModel, deviceName: string, config?: Record<string, string>): Promise<OvCompiledModel>;
  getAvailableDevices(): string[];
}

export interface OvAddon {
  Core: new () => OvCore;
  Tensor: new (type: "f32", shape: number[], data: Float32Array) => OvTensor;
}

const isFunction = (v: unknown): boolean => typeof v === "function";

/**
 * Loads openvino-node if it is installed and its native runtime loads. Returns the reason it is not
 * usable otherwise, phrased for an operator's log.
 */
export async function loadOpenVino(): Promise<{ addon: OvAddon } | { reason: string }> {
  // A variable specifier keeps TypeScript from resolving a package that may not be installed.
  const specifier = "openvino-node";
  let mod: unknown;
  try {
    mod = await import(specifier);
  } catch (e) {
    const code = typeof e === "object" && e !== null && "code" in e ? e.code : undefined;
    if (code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND") {
      return { reason: "openvino-node is not installed (optional dependency; needs Node >= 21)" };
    }
    return { reason: `openvino-node is installed but its runtime does not load (${firstLine(e)})` };
  }
  // CommonJS package: `addon` is a named export when Node's lexer finds it, else on the default.
  const candidates = [pick(mod, "addon"), pick(pick(mod, "default"), "addon")];
  const addon = candidates.find((a) => isFunction(pick(a, "Core")) && isFunction(pick(a, "Tensor")));
  if (addon === undefined) return { reason: "openvino-node does not export the expected `addon` API" };
  const ov = addon as OvAddon;
  try {
    const devices = new ov.Core().getAvailableDevices();
    if (devices.length === 0) return { reason: "OpenVINO runtime loaded but reports no devices" };
  } catch (e) {
    return { reason: `openvino-node is installed but its runtime does not start (${firstLine(e)})` };
  }
  return { addon: ov };
}

function pick(obj: unknown, key: string): unknown {
  return typeof obj === "object" && obj !== null ? (obj as Record<string, unknown>)[key] : undefined;
}
