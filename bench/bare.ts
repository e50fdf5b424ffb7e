import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { loadEngine } from "../src/inference/load-engine.js";
import { DEFAULT_DETECT_OPTIONS, Detector } from "../src/pipeline/detector.js";
import type { FrameSet } from "./frames.js";
import { round, summarize, type LatencySummary } from "./stats.js";

/**
 * The pipeline without a server: what every door's numbers are compared with. Same engine options
 * as the server (backend auto, default threads and runs in flight) and the server's default limits.
 */

export interface BareThroughput {
  /** detect() calls kept in flight. */
  inflight: number;
  fps: number;
  latency: LatencySummary;
  /** Whole-process CPU (all threads) per frame, ms. */
  cpuMsPerFrame: number;
  /** Event-loop (main thread) busy time per frame, ms: JS work that delays every socket. */
  mainThreadMsPerFrame: number;
  /** Longest event-loop stall seen, ms. */
  eventLoopMaxMs: number;
}

export interface BareResult {
  backend: string;
  engineConcurrency: number;
  input: [number, number];
  classNames: string[];
  latency: LatencySummary;
  /** Medians of the pipeline's own timings at concurrency 1. */
  stagesP50: { preprocessMs: number; inferenceMs: number; postprocessMs: number };
  throughput: BareThroughput[];
  best: { inflight: number; fps: number };
}

const median = (xs: number[]) => summarize(xs).p50;

export async function benchBare(
  modelPath: string,
  frames: FrameSet,
  opts: {
    latencySamples: number;
    throughputSec: number;
    log: (s: string) => void;
    /** Awaited after the engine loads and before measuring (the server child starting meanwhile). */
    beforeMeasure?: Promise<unknown>;
  },
): Promise<BareResult> {
  const { engine } = await loadEngine({ modelPath, backend: "auto" });
  await opts.beforeMeasure?.catch(() => undefined);
  const detector = new Detector(engine, { maxImageBytes: 8 * 1024 * 1024, maxImagePixels: 40_000_000 });
  const frame = (i: number) => frames.frames[i % frames.frames.length]?.bytes ?? Buffer.alloc(0);
  try {
    // Warm-up: first runs pay for lazy allocation in ORT and JIT in V8.
    for (let i = 0; i < 3; i++) await detector.detect(frame(i), DEFAULT_DETECT_OPTIONS);

    const lat: number[] = [];
    const stages = { pre: [] as number[], inf: [] as number[], post: [] as number[] };
    for (let i = 0; i < opts.latencySamples; i++) {
      const t0 = performance.now();
      const r = await detector.detect(frame(i), DEFAULT_DETECT_OPTIONS);
      lat.push(performance.now() - t0);
      stages.pre.push(r.timings.preprocessMs);
      stages.inf.push(r.timings.inferenceMs);
      stages.post.push(r.timings.postprocessMs);
    }
    const latency = summarize(lat);
    opts.log(`bare c=1: p50 ${round(latency.p50)} ms p95 ${round(latency.p95)} ms (n=${latency.n})`);

    const throughput: BareThroughput[] = [];
    for (const inflight of [1, 2, 3]) {
      const t = await closedLoop(detector, frame, inflight, opts.throughputSec);
      throughput.push(t);
      opts.log(`bare in-flight ${inflight}: ${round(t.fps, 2)} fps, p50 ${round(t.latency.p50)} ms, cpu ${round(t.cpuMsPerFrame)} ms/frame, main thread ${round(t.mainThreadMsPerFrame, 2)} ms/frame`);
    }
    const top = throughput.reduce((a, b) => (b.fps > a.fps ? b : a));
    return {
      backend: engine.backend,
      engineConcurrency: engine.concurrency,
      input: [engine.model.inputWidth, engine.model.inputHeight],
      classNames: [...engine.model.classNames],
      latency,
      stagesP50: { preprocessMs: median(stages.pre), inferenceMs: median(stages.inf), postprocessMs: median(stages.post) },
      throughput,
      best: { inflight: top.inflight, fps: top.fps },
    };
  } finally {
    await engine.close();
  }
}

/** Keeps `inflight` detect() calls running for `seconds`; frames finished in the window count. */
async function closedLoop(
  detector: Detector,
  frame: (i: number) => Buffer,
  inflight: number,
  seconds: number,
): Promise<BareThroughput> {
  const lat: number[] = [];
  const eld = monitorEventLoopDelay({ resolution: 5 });
  const cpu0 = process.cpuUsage();
  const elu0 = performance.eventLoopUtilization();
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  let next = 0;
  eld.enable();
  const worker = async () => {
    while (performance.now() < end) {
      const s = performance.now();
      await detector.detect(frame(next++), DEFAULT_DETECT_OPTIONS);
      if (performance.now() <= end) lat.push(performance.now() - s);
    }
  };
  await Promise.all(Array.from({ length: inflight }, worker));
  eld.disable();
  const elapsed = (Math.min(performance.now(), end) - t0) / 1000;
  const elu = performance.eventLoopUtilization(elu0);
  const cpu = process.cpuUsage(cpu0);
  const n = Math.max(1, lat.length);
  return {
    inflight,
    fps: lat.length / elapsed,
    latency: summarize(lat),
    cpuMsPerFrame: (cpu.user + cpu.system) / 1000 / n,
    mainThreadMsPerFrame: elu.active / n,
    eventLoopMaxMs: eld.max / 1e6,
  };
}
