import { BarePipeline, measureBare, type BareResult, type BareThroughput } from "./bare.js";
import { SHARED_PHOTOS, type BenchOptions, type DoorName, type ModelChoice } from "./cli.js";
import { meanBytes, photoFrames, syntheticFrames, type FrameSet } from "./frames.js";
import { benchIdle, type IdleResult } from "./idle.js";
import { runPoint, type PointResult, type PointSpec } from "./load.js";
import { pairedLatency, type PairedLatency } from "./paired.js";
import { processRssBytes } from "./proc.js";
import { startServer, type ServerChild } from "./server-child.js";
import { round } from "./stats.js";
import { steadyRun, type SteadyResult } from "./steady.js";
import { warmServer } from "./warm.js";

export interface ModelResult {
  label: string;
  path: string;
  frames: { source: string; count: number; meanBytes: number };
  bare: BareResult;
  /** Sessions at which offered load is 3x the bare capacity (by rate and by frames in flight). */
  sessionsAt3x: number;
  server: { startupMs: number; startupCpuMs: number; rssIdleMB: number; warnings: string[] };
  idle: IdleResult | null;
  /** One session, one frame at a time, alternating with bare runs. */
  paired: PairedLatency[];
  /** Bare throughput at the best in-flight count, measured just before each door's scaling points. */
  localBare: Partial<Record<DoorName, BareThroughput>>;
  points: PointResult[];
  /** 10 sessions x 10 FPS (default model only). */
  tenByTen: PointResult[];
  ablations: Ablation[];
  /** A long run below capacity with memory sampled (default model only; --steady 0 skips it). */
  steady: SteadyResult | null;
}

/** The same point twice, back to back, with one thing changed. */
export interface Ablation {
  name: string;
  baseline: PointResult;
  variant: PointResult;
}

/**
 * Sessions for 3x capacity: 3x the frames per second, and also 3x the frames the engine holds at
 * capacity (Little: capacity x latency), since a session with K frames in flight cannot offer more
 * than K per round trip however high its FPS.
 */
export function sessionsFor3x(capacityFps: number, bareP50Ms: number, fps: number, inflight: number): number {
  const byRate = Math.ceil((3 * capacityFps) / fps);
  const byInflight = Math.ceil((3 * capacityFps * (bareP50Ms / 1000)) / inflight);
  return Math.max(2, byRate, byInflight);
}

function sessionList(opts: BenchOptions, n3x: number): number[] {
  if (opts.sessions) return [...new Set([...opts.sessions])].sort((a, b) => a - b);
  if (opts.quick) return [1, n3x];
  const list: number[] = [];
  for (let n = 1; n < n3x; n *= 2) list.push(n);
  return [...list, n3x];
}

async function framesFor(model: ModelChoice, opts: BenchOptions): Promise<FrameSet> {
  if (model.wantsPhotos) {
    const photos = await photoFrames(SHARED_PHOTOS, opts.quick ? 4 : 16);
    if (photos) return photos;
  }
  return syntheticFrames(opts.frameSize.width, opts.frameSize.height, opts.quick ? 4 : 8);
}

export async function benchModel(
  model: ModelChoice,
  opts: BenchOptions,
  log: (s: string) => void,
  /** Other work (the tracker bench) that must finish before anything is measured. */
  busy: Promise<unknown> = Promise.resolve(),
): Promise<ModelResult> {
  const frames = await framesFor(model, opts);
  log(`model ${model.label}: ${model.path}; frames: ${frames.source}`);
  // The server loads its model while the bare engine loads (loading is slow here: the default
  // model's ~3000-node graph takes seconds of CPU per ORT session); it then sits idle.
  const starting = startServer(model.path);
  const [bare, server] = await Promise.all([BarePipeline.open(model.path, frames), starting, busy]);
  try {
    return await measureModel(model, opts, log, frames, bare, server);
  } finally {
    await Promise.all([server.stop(), bare.close()]);
  }
}

async function measureModel(
  model: ModelChoice,
  opts: BenchOptions,
  log: (s: string) => void,
  frames: FrameSet,
  bare: BarePipeline,
  server: ServerChild,
): Promise<ModelResult> {
  log(`server pid ${server.pid} at ${server.baseUrl} (started in ${round(server.startupMs / 1000, 1)} s, ${round(server.startupCpuMs / 1000, 1)} s CPU)`);
  const bareResult = await measureBare(bare, { latencySamples: opts.quick ? 6 : 40, throughputSec: opts.quick ? 1 : Math.min(8, opts.durationSec), log });
  const cap = bareResult.best.fps;
  const n3x = sessionsFor3x(cap, bareResult.latency.p50, opts.fps, opts.inflight);
  const counts = sessionList(opts, n3x);
  log(`capacity ${round(cap, 2)} fps; 3x capacity = ${n3x} sessions at ${opts.fps} FPS; sessions: ${counts.join(",")}`);
  await warmServer(server, frames, opts.quick ? 6 : 24);
  const result: ModelResult = {
    label: model.label,
    path: model.path,
    frames: { source: frames.source, count: frames.frames.length, meanBytes: meanBytes(frames) },
    bare: bareResult,
    sessionsAt3x: n3x,
    server: { startupMs: server.startupMs, startupCpuMs: server.startupCpuMs, rssIdleMB: processRssBytes(server.pid) / 1024 / 1024, warnings: server.warnings },
    idle: null,
    paired: [],
    localBare: {},
    points: [],
    tenByTen: [],
    ablations: [],
    steady: null,
  };
  // Idle sessions first, on a server that has not yet grown its heap under load.
  result.idle = await benchIdle(server, opts.idleSessions);
  log(`idle: ${opts.idleSessions} sessions, RSS ${round(result.idle.rssBytesPerSession / 1024, 1)} KB each, heap+external ${round(result.idle.heapBytesPerSession / 1024, 1)} KB each`);
  // About 12 s per door whatever the model's speed: fewer, shorter rounds for a slow model.
  const perRound = bareResult.latency.p50 > 300 ? 2 : 4;
  const rounds = opts.quick ? 2 : Math.min(10, Math.max(3, Math.round(12_000 / (2 * perRound * bareResult.latency.p50))));
  // Let the idle probe's 500 deletions (and their log lines) settle first.
  await new Promise((r) => setTimeout(r, opts.quick ? 300 : 2000));
  result.paired = await pairedLatency(opts.doors, server, bare, frames, rounds, perRound);
  for (const p of result.paired) {
    log(`${p.door.padEnd(9)} 1 session, paired: e2e p50 ${round(p.e2e.p50)} ms vs bare p50 ${round(p.bare.p50)} ms (server processing p50 ${round(p.serverProcessingP50Ms)} ms)`);
  }
  const base = {
    fps: opts.fps,
    durationSec: opts.durationSec,
    warmupSec: opts.quick ? 0.4 : 2,
    inflight: opts.inflight,
    honorFlowControl: opts.honorFlowControl,
    wsDeflate: process.env.BENCH_WS_DEFLATE !== "0",
  };
  const point = async (spec: PointSpec): Promise<PointResult> => {
    // Long enough for every session's first frames to come back, so the window sees steady state.
    const warmupSec = Math.min(6, Math.max(spec.warmupSec, (1.5 * spec.sessions * spec.inflight) / cap));
    const p = await runPoint({ ...spec, warmupSec }, server, frames);
    log(
      `${spec.door.padEnd(9)} ${String(spec.sessions).padStart(3)}x${spec.fps}: delivered ${round(p.deliveredFps, 2)} fps, ` +
        `p50 ${round(p.latency.p50)} p95 ${round(p.latency.p95)} ms, drops ${JSON.stringify(p.drops)}, skipped ${p.skippedByClient}, ` +
        `errors ${p.errors}, min allowed ${p.minAllowedFps} fps, server ${round(p.serverCpuMsPerFrame)} ms CPU/frame ` +
        `(main ${round(p.serverMainThreadMsPerFrame)}), others ${round(p.othersCores, 2)} cores`,
    );
    return p;
  };
  // The capacity each door is judged against: bare throughput measured right before and right after
  // its points (the mean of the two), since the machine's load drifts between doors.
  const bareNow = async () => bare.closedLoop(bareResult.best.inflight, opts.quick ? 1 : Math.min(8, Math.max(5, 20 / cap)));
  let before = await bareNow();
  for (const door of opts.doors) {
    for (const sessions of counts) result.points.push(await point({ ...base, door, sessions }));
    const after = await bareNow();
    result.localBare[door] = { ...after, fps: (before.fps + after.fps) / 2, cpuMsPerFrame: (before.cpuMsPerFrame + after.cpuMsPerFrame) / 2 };
    log(`${door.padEnd(9)} bare before/after: ${round(before.fps, 2)} / ${round(after.fps, 2)} fps at ${after.inflight} in flight`);
    before = after;
  }
  if (model.label === "default") {
    const doors: DoorName[] = opts.quick ? opts.doors.filter((d) => d === "grpc") : opts.doors;
    for (const door of doors) result.tenByTen.push(await point({ ...base, door, sessions: 10, fps: 10 }));
  }
  if (model.label === "default" && opts.steadySec > 0 && opts.doors.includes("grpc")) {
    // Below capacity (about 60 % of it), so memory is judged at a steady state, not under overload.
    const sessions = Math.max(1, Math.floor((0.6 * cap) / opts.fps));
    log(`steady: ${sessions} sessions x ${opts.fps} FPS on grpc for ${opts.steadySec} s, server memory sampled`);
    result.steady = await steadyRun(
      { ...base, door: "grpc", sessions, durationSec: opts.steadySec },
      server,
      frames,
      Math.max(5, Math.min(30, opts.steadySec / 10)),
      log,
    );
  }
  if (opts.ablations) {
    const ab = async (name: string, door: DoorName, change: Partial<PointSpec>) => {
      if (!opts.doors.includes(door)) return;
      const spec = { ...base, door, sessions: n3x };
      const baseline = await point(spec);
      const variant = await point({ ...spec, ...change });
      result.ablations.push({ name, baseline, variant });
    };
    await ab("clients ignore the server's allowed_fps (flow control)", "grpc", { honorFlowControl: false });
    await ab("clients ignore the server's allowed_fps (flow control)", "ws-binary", { honorFlowControl: false });
    await ab("WebSocket permessage-deflate off (client does not offer it)", "ws-binary", { wsDeflate: false });
    await ab("WebSocket permessage-deflate off (client does not offer it)", "ws-json", { wsDeflate: false });
  }
  return result;
}
