import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import type { InferenceEngine } from "../src/inference/engine.js";
import { loadEngine } from "../src/inference/load-engine.js";
import { DEFAULT_DETECT_OPTIONS, Detector } from "../src/pipeline/detector.js";
import type { FrameSet } from "./frames.js";
import { round, summarize, type LatencySummary } from "./stats.js";

/**
 * The pipeline without a server: what every door's numbers are compared with. Same engine options
 * as the server (backend auto, default threads and runs in flight) and the server's default limits.
 * It stays loaded for the whole model run, so door measurements can be paired with bare ones taken
 * minutes apart at most (the machine's load drifts).
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

export class BarePipeline {
  private next = 0;

  private constructor(
    readonly engine: InferenceEngine,
    readonly detector: Detector,
    private readonly frames: FrameSet,
  ) {}

  static async open(modelPath: string, frames: FrameSet): Promise<BarePipeline> {
    const { engine } = await loadEngine({ modelPath, backend: "auto" });
    return new BarePipeline(engine, new Detector(engine, { maxImageBytes: 8 * 1024 * 1024, maxImagePixels: 40_000_000 }), frames);
  }

  /** One frame through the pipeline; returns its latency and stage timings. */
  async once(): Promise<{ ms: number; pre: number; inf: number; post: number }> {
    const f = this.frames.frames[this.next++ % this.frames.frames.length];
    const t0 = performance.now();
    const r = await this.detector.detect(f?.bytes ?? Buffer.alloc(0), DEFAULT_DETECT_OPTIONS);
    return { ms: performance.now() - t0, pre: r.timings.preprocessMs, inf: r.timings.inferenceMs, post: r.timings.postprocessMs };
  }

  /** Keeps `inflight` detect() calls running for `seconds`; frames finished in the window count. */
  async closedLoop(inflight: number, seconds: number): Promise<BareThroughput> {
    const lat: number[] = [];
    const eld = monitorEventLoopDelay({ resolution: 5 });
    const cpu0 = process.cpuUsage();
    const elu0 = performance.eventLoopUtilization();
    const t0 = performance.now();
    const end = t0 + seconds * 1000;
    eld.enable();
    const worker = async () => {
      while (performance.now() < end) {
        const { ms } = await this.once();
        if (performance.now() <= end) lat.push(ms);
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

  close(): Promise<void> {
    return this.engine.close();
  }
}

export async function measureBare(
  bare: BarePipeline,
  opts: { latencySamples: number; throughputSec: number; log: (s: string) => void },
): Promise<BareResult> {
  // Warm-up: first runs pay for lazy allocation in ORT and JIT in V8.
  for (let i = 0; i < 3; i++) await bare.once();
  const lat: number[] = [];
  const stages = { pre: [] as number[], inf: [] as number[], post: [] as number[] };
  for (let i = 0; i < opts.latencySamples; i++) {
    const r = await bare.once();
    lat.push(r.ms);
    stages.pre.push(r.pre);
    stages.inf.push(r.inf);
    stages.post.push(r.post);
  }
  const latency = summarize(lat);
  opts.log(`bare c=1: p50 ${round(latency.p50)} ms p95 ${round(latency.p95)} ms (n=${latency.n})`);
  const throughput: BareThroughput[] = [];
  for (const inflight of [1, 2, 3]) {
    const t = await bare.closedLoop(inflight, opts.throughputSec);
    throughput.push(t);
    opts.log(
      `bare in-flight ${inflight}: ${round(t.fps, 2)} fps, p50 ${round(t.latency.p50)} ms, cpu ${round(t.cpuMsPerFrame)} ms/frame, ` +
        `main thread ${round(t.mainThreadMsPerFrame, 2)} ms/frame, longest stall ${round(t.eventLoopMaxMs)} ms`,
    );
  }
  const top = throughput.reduce((a, b) => (b.fps > a.fps ? b : a));
  const m = bare.engine.model;
  return {
    backend: bare.engine.backend,
    engineConcurrency: bare.engine.concurrency,
    input: [m.inputWidth, m.inputHeight],
    classNames: [...m.classNames],
    latency,
    stagesP50: { preprocessMs: summarize(stages.pre).p50, inferenceMs: summarize(stages.inf).p50, postprocessMs: summarize(stages.post).p50 },
    throughput,
    best: { inflight: top.inflight, fps: top.fps },
  };
}
