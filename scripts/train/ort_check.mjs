// Loads the exported model in onnxruntime-node (the service's ORT backend), compares its output with
// PyTorch's on the same input, checks a second input size (dynamic H/W) and times 1- and 2-thread runs.
// usage: node scripts/train/ort_check.mjs model.onnx in.bin expected.bin H W
import { readFileSync } from "node:fs";

const [model, inPath, expPath, hArg, wArg] = process.argv.slice(2);
const H = Number(hArg);
const W = Number(wArg);
const ort = await import("onnxruntime-node");

const toF32 = (buf) => new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
const input = toF32(readFileSync(inPath));
const expected = toF32(readFileSync(expPath));

function percentile(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
}

let failed = false;
for (const threads of [1, 2]) {
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: "all",
  });
  const feeds = { images: new ort.Tensor("float32", input, [1, 3, H, W]) };
  const out = (await session.run(feeds)).output0;
  if (threads === 1) {
    const meta = session.handler?.metadata ?? {};
    console.log(`inputs ${session.inputNames} outputs ${session.outputNames} dims [${out.dims}]`);
    let maxAbs = 0;
    let maxScoreAbs = 0;
    const n = out.dims[2];
    for (let i = 0; i < out.data.length; i++) {
      const d = Math.abs(out.data[i] - expected[i]);
      if (Math.floor(i / n) >= 4) maxScoreAbs = Math.max(maxScoreAbs, d);
      else maxAbs = Math.max(maxAbs, d);
    }
    console.log(`max |ORT - torch|: boxes ${maxAbs.toExponential(2)} px, scores ${maxScoreAbs.toExponential(2)}`);
    if (out.data.length !== expected.length || maxAbs > 1e-2 || maxScoreAbs > 1e-4) failed = true;
    // dynamic H/W: another multiple of 32 must run and give the matching anchor count
    const h2 = 384, w2 = 640;
    const big = await session.run({ images: new ort.Tensor("float32", new Float32Array(3 * h2 * w2).fill(0.45), [1, 3, h2, w2]) });
    const anchors = (h2 / 8) * (w2 / 8) + (h2 / 16) * (w2 / 16) + (h2 / 32) * (w2 / 32);
    console.log(`dynamic ${h2}x${w2}: output0 [${big.output0.dims}] (expect [1,${out.dims[1]},${anchors}])`);
    if (big.output0.dims[2] !== anchors) failed = true;
    void meta;
  }
  for (let i = 0; i < 10; i++) await session.run(feeds);
  const times = [];
  for (let i = 0; i < 100; i++) {
    const t = process.hrtime.bigint();
    await session.run(feeds);
    times.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  console.log(`ORT ${threads} thread(s) ${W}x${H}: median ${percentile(times, 0.5).toFixed(2)} ms, p90 ${percentile(times, 0.9).toFixed(2)} ms, min ${Math.min(...times).toFixed(2)} ms`);
  await session.release();
}
process.exit(failed ? 1 : 0);
