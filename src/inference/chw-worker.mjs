// Makes planar float tensors from RGB images off the event loop, for backends whose inference does
// not run on a thread of ours (OpenVINO: openvino-node's JS preprocessing has no scale step, so a u8
// tensor would reach the model as 0..255). The float buffer arrives with the request and goes back
// with the answer (both transferred), so its memory is reused, never copied. Plain JavaScript, like
// ort-worker.mjs, so it loads the same way under tsx, vitest and node.
//
//   <- parent  {id, rgb: Uint8Array, width, height, out: Float32Array}
//   -> parent  {id, out: Float32Array} | {id, error: string}
import { parentPort } from "node:worker_threads";
import { hwcToChw } from "./chw.mjs";

const port = parentPort;
if (port === null) throw new Error("chw-worker.mjs must run as a worker thread");

port.on("message", ({ id, rgb, width, height, out }) => {
  try {
    hwcToChw(rgb, out, width, height);
    port.postMessage({ id, out }, [out.buffer]);
  } catch (e) {
    port.postMessage({ id, error: e instanceof Error ? e.message : String(e) });
  }
});
