// One onnxruntime-node session on its own thread. onnxruntime-node 1.30's `session.run` is a
// synchronous native call wrapped in setImmediate, so on the main thread it stalls every socket for
// the whole inference (measured: 3 timer ticks of 5 ms during four 230 ms runs). Here it only blocks
// this worker.
//
// Plain JavaScript on purpose: a worker thread does not inherit the parent's TypeScript loader
// (tsx, vitest), and this file must load the same way under all of them.
//
// Protocol (see onnxruntime-engine.ts):
//   -> parent  {type:"ready", input:{name, shape}, output:{name, shape}} | {type:"load-error", message}
//   <- parent  {id, data: Float32Array, dims: number[]}            a ready NCHW float tensor, or
//              {id, rgb: Uint8Array, width, height}                an RGB image made into one here
//   -> parent  {type:"result", id, data: Float32Array, dims: number[]} | {type:"run-error", id, message}
import { parentPort, workerData } from "node:worker_threads";
import ort from "onnxruntime-node";
import { hwcToChw } from "./chw.mjs";

const port = parentPort;
if (port === null) throw new Error("ort-worker.mjs must run as a worker thread");

const errorMessage = (e) => (e instanceof Error ? e.message : String(e));

// One planar float buffer per input size, reused by every run: this worker runs one frame at a
// time, and ORT reads the input only during the run. No 5 MB allocation (and its GC) per frame.
const MAX_SIZES = 4;
const planar = new Map();
function planarTensor(rgb, width, height) {
  const key = `${height}x${width}`;
  let buf = planar.get(key);
  if (buf === undefined) {
    buf = new Float32Array(3 * width * height);
    planar.set(key, buf);
    if (planar.size > MAX_SIZES) planar.delete(planar.keys().next().value);
  }
  return new ort.Tensor("float32", hwcToChw(rgb, buf, width, height), [1, 3, height, width]);
}

let session;
try {
  session = await ort.InferenceSession.create(workerData.modelPath, workerData.sessionOptions);
} catch (e) {
  port.postMessage({ type: "load-error", message: errorMessage(e) });
}

if (session !== undefined) {
  const describe = (meta) => ({ name: meta.name, shape: meta.isTensor ? [...meta.shape] : [] });
  const inputName = session.inputNames[0];
  const outputName = session.outputNames[0];
  port.postMessage({
    type: "ready",
    input: describe(session.inputMetadata[0]),
    output: describe(session.outputMetadata[0]),
  });

  port.on("message", async ({ id, data, dims, rgb, width, height }) => {
    try {
      const input = rgb !== undefined ? planarTensor(rgb, width, height) : new ort.Tensor("float32", data, dims);
      const outputs = await session.run({ [inputName]: input });
      const out = outputs[outputName];
      if (out.type !== "float32") throw new Error(`model output is ${out.type}, expected float32`);
      const result = { type: "result", id, data: out.data, dims: [...out.dims] };
      try {
        port.postMessage(result, [out.data.buffer]);
      } catch {
        port.postMessage(result); // a buffer the binding does not let go of: send a copy
      }
      input.dispose?.();
      out.dispose?.();
    } catch (e) {
      port.postMessage({ type: "run-error", id, message: errorMessage(e) });
    }
  });
}
