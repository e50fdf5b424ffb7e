/**
 * Times models against each other in one run, interleaved round by round so that the load of a
 * shared machine falls on all of them alike:
 *  1. ONNX Runtime alone (onnxruntime-node, graph optimization "all", as the service's engine):
 *     median ms per frame at 1 and 2 intra-op threads, on a real letterboxed photo;
 *  2. the bare pipeline (decode + letterbox + engine + NMS, the service's defaults, bench/bare.ts):
 *     frames/s with 1, 2 and 3 detect() calls in flight;
 *  3. with --batch, ms per frame at batch sizes 1..B on models whose batch dimension is dynamic.
 *
 *   npx tsx scripts/quantize/compare-speed.ts models/road-hazard-yolo-fp32.onnx models/road-hazard-yolo.onnx
 *
 * Options: --rounds 5, --runs 20 (runs per model per round), --seconds 6 (per model per in-flight
 * count; the closed loops are split into --rounds parts), --batch 4, --threads 1,2, --no-pipeline,
 * --save-optimized DIR (ORT's optimized graphs, to see which int8 kernels it chose: ops.py counts them).
 */
import { readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { parseArgs } from "node:util";
import * as ort from "onnxruntime-node";
import sharp from "sharp";
import { BarePipeline } from "../../bench/bare.js";
import { SHARED_PHOTOS } from "../../bench/cli.js";
import { photoFrames } from "../../bench/frames.js";
import { parseOnnxMetadata } from "../../src/inference/model-metadata.js";
import { readOnnxMetadataProps } from "../../src/inference/onnx-metadata.js";
import { chwTensor, letterbox, letterboxRgb } from "../../src/pipeline/letterbox.js";

const { values: args, positionals: models } = parseArgs({
  allowPositionals: true,
  options: {
    rounds: { type: "string", default: "5" },
    runs: { type: "string", default: "20" },
    seconds: { type: "string", default: "6" },
    batch: { type: "string", default: "0" },
    threads: { type: "string", default: "1,2" },
    "no-pipeline": { type: "boolean", default: false },
    "save-optimized": { type: "string" },
  },
});

const optimizedDir = args["save-optimized"];
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? (s[(s.length - 1) / 2] as number) : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2;
};
const fmt = (v: number, d = 1): string => v.toFixed(d);
const name = (p: string): string => basename(p);

async function inputTensor(model: string): Promise<{ data: Float32Array; h: number; w: number }> {
  const imgsz = parseOnnxMetadata(await readOnnxMetadataProps(model)).imgsz ?? { width: 640, height: 640 };
  const photos = await photoFrames(SHARED_PHOTOS, 1);
  const bytes = photos?.frames[0]?.bytes;
  if (!bytes) throw new Error(`no photo in ${SHARED_PHOTOS}`);
  const img = sharp(bytes);
  const meta = await img.metadata();
  const box = letterbox(meta.width ?? 0, meta.height ?? 0, imgsz.width, imgsz.height);
  const t = chwTensor(await letterboxRgb(img, box, imgsz.width, imgsz.height));
  return { data: t.data, h: imgsz.height, w: imgsz.width };
}

/** Median wall ms per frame and process CPU ms per frame (less sensitive to other load on the box). */
async function engineOnly(rounds: number, runs: number, threads: number, batch: number): Promise<Map<string, { ms: number; cpu: number }>> {
  const sessions = new Map<string, { s: ort.InferenceSession; feeds: Record<string, ort.Tensor>; times: number[]; cpu: number }>();
  for (const m of models) {
    const s = await ort.InferenceSession.create(readFileSync(m), {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: "sequential",
      graphOptimizationLevel: "all",
      extra: { session: { intra_op: { allow_spinning: "0" } } }, // as the service's engine
      ...(optimizedDir ? { optimizedModelFilePath: join(optimizedDir, `${basename(m, ".onnx")}.t${threads}.b${batch}.opt.onnx`) } : {}),
    });
    const { data, h, w } = await inputTensor(m);
    const batched = new Float32Array(batch * data.length);
    for (let b = 0; b < batch; b++) batched.set(data, b * data.length);
    const feeds = { [s.inputNames[0] as string]: new ort.Tensor("float32", batched, [batch, 3, h, w]) };
    try {
      for (let i = 0; i < 3; i++) await s.run(feeds);
    } catch {
      await s.release(); // a fixed batch dimension: not measured at this size
      continue;
    }
    sessions.set(m, { s, feeds, times: [], cpu: 0 });
  }
  for (let r = 0; r < rounds; r++) {
    for (const v of sessions.values()) {
      const c0 = process.cpuUsage();
      for (let i = 0; i < runs; i++) {
        const t0 = performance.now();
        await v.s.run(v.feeds);
        v.times.push((performance.now() - t0) / batch);
      }
      const c = process.cpuUsage(c0);
      v.cpu += (c.user + c.system) / 1000;
    }
  }
  const out = new Map<string, { ms: number; cpu: number }>();
  for (const [m, v] of sessions) {
    out.set(m, { ms: median(v.times), cpu: v.cpu / (rounds * runs * batch) });
    await v.s.release();
  }
  return out;
}

async function pipeline(rounds: number, seconds: number): Promise<void> {
  const frames = await photoFrames(SHARED_PHOTOS, 16);
  if (!frames) throw new Error(`no photos in ${SHARED_PHOTOS}`);
  const bares = new Map<string, BarePipeline>();
  for (const m of models) bares.set(m, await BarePipeline.open(m, frames));
  for (const b of bares.values()) for (let i = 0; i < 3; i++) await b.once();
  console.log(`\nbare pipeline (${frames.source}; service engine defaults): frames/s, p50 latency, CPU ms/frame`);
  for (const inflight of [1, 2, 3]) {
    const acc = new Map<string, { frames: number; secs: number; p50: number[]; cpu: number[] }>();
    for (let r = 0; r < rounds; r++) {
      for (const [m, b] of bares) {
        const t = await b.closedLoop(inflight, seconds / rounds);
        const a = acc.get(m) ?? { frames: 0, secs: 0, p50: [], cpu: [] };
        a.frames += t.fps * (seconds / rounds);
        a.secs += seconds / rounds;
        a.p50.push(t.latency.p50);
        a.cpu.push(t.cpuMsPerFrame);
        acc.set(m, a);
      }
    }
    for (const [m, a] of acc) {
      console.log(`  ${inflight} in flight  ${name(m).padEnd(34)} ${fmt(a.frames / a.secs, 1)} fps  p50 ${fmt(median(a.p50))} ms  cpu ${fmt(median(a.cpu))} ms/frame`);
    }
  }
  for (const b of bares.values()) await b.close();
}

async function main(): Promise<void> {
  if (models.length === 0) throw new Error("usage: compare-speed.ts MODEL.onnx... [--rounds 5] [--runs 20] [--seconds 6] [--batch 4]");
  const rounds = Number(args.rounds);
  const runs = Number(args.runs);
  console.log(`onnxruntime-node ${ort.env.versions.common}; ${rounds} rounds × ${runs} runs per model, interleaved`);
  for (const threads of (args.threads ?? "1,2").split(",").map(Number)) {
    const ms = await engineOnly(rounds, runs, threads, 1);
    for (const [m, v] of ms) console.log(`engine ${threads} thread(s)  ${name(m).padEnd(34)} ${fmt(v.ms, 2)} ms/frame (median)  cpu ${fmt(v.cpu, 2)} ms/frame`);
  }
  if (!args["no-pipeline"]) await pipeline(rounds, Number(args.seconds));
  const maxBatch = Number(args.batch);
  if (maxBatch > 1) {
    console.log("\nbatch (models with a dynamic batch dimension), ms per frame, 1 thread");
    for (let b = 1; b <= maxBatch; b++) {
      const ms = await engineOnly(rounds, Math.max(2, Math.round(runs / b)), 1, b);
      for (const [m, v] of ms) console.log(`  batch ${b}  ${name(m).padEnd(34)} ${fmt(v.ms, 2)} ms/frame  cpu ${fmt(v.cpu, 2)} ms/frame`);
    }
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
