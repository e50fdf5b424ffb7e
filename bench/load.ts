import { monitorEventLoopDelay } from "node:perf_hooks";
import type { DoorName } from "./cli.js";
import { OPENERS } from "./doors/index.js";
import type { FrameSet } from "./frames.js";
import { diffGroups, machineBusyMs, machineLoad, processCpuMs, processRssBytes, threadCpuByGroup } from "./proc.js";
import { rssSampler, type ServerChild } from "./server-child.js";
import { SessionRunner } from "./session-runner.js";
import { summarize, type LatencySummary } from "./stats.js";

export interface PointSpec {
  door: DoorName;
  sessions: number;
  fps: number;
  durationSec: number;
  warmupSec: number;
  inflight: number;
  honorFlowControl: boolean;
  wsDeflate: boolean;
}

export interface PointResult {
  door: DoorName;
  sessions: number;
  fps: number;
  inflight: number;
  offeredFps: number;
  sentFps: number;
  deliveredFps: number;
  perSessionFps: { min: number; mean: number };
  /** Jain's index over per-session delivered FPS: 1 = perfectly even. */
  fairness: number;
  /** Sessions with no result in the second half of the window. */
  starvedSessions: number;
  latency: LatencySummary;
  /** Server-reported queue wait and processing (p50); the rest of e2e is transport, door and client. */
  serverQueueP50Ms: number | null;
  serverProcessingP50Ms: number;
  drops: Record<string, number>;
  skippedByClient: number;
  minAllowedFps: number;
  errors: number;
  errorSamples: string[];
  unanswered: number;
  serverCpuMsPerFrame: number;
  serverMainThreadMsPerFrame: number;
  serverCpuPct: number;
  serverRssMB: number;
  serverRssPeakMB: number;
  clientCpuMsPerFrame: number;
  /** The load generator's own event-loop delay p99: high values mean the client, not the server, added latency. */
  clientEventLoopP99Ms: number;
  /** CPU used by everything else on the machine during the window, in cores. */
  othersCores: number;
  loadavg1: number;
}

const MB = 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function openAll(spec: PointSpec, server: ServerChild, runners: SessionRunner[]): Promise<void> {
  // Connect in small batches: a real fleet does not open hundreds of connections in one tick.
  for (let i = 0; i < runners.length; i += 8) {
    await Promise.all(
      runners.slice(i, i + 8).map(async (r) => {
        r.door = await OPENERS[spec.door]({ baseUrl: server.baseUrl, fps: spec.fps, sink: r, wsDeflate: spec.wsDeflate });
      }),
    );
  }
}

/** N sessions of one door at F FPS: warm-up, a measured window, then every session closed. */
export async function runPoint(spec: PointSpec, server: ServerChild, frames: FrameSet): Promise<PointResult> {
  const runners = Array.from(
    { length: spec.sessions },
    (_, i) => new SessionRunner(spec.fps, spec.inflight, spec.honorFlowControl, frames.frames, i * 3),
  );
  await openAll(spec, server, runners);
  const start = performance.now();
  const windowStart = start + spec.warmupSec * 1000;
  const windowEnd = windowStart + spec.durationSec * 1000;
  for (const r of runners) {
    r.windowStart = windowStart;
    r.windowEnd = windowEnd;
  }
  const pacing = Promise.all(runners.map((r) => r.pace(start, windowEnd)));

  await sleep(windowStart - performance.now());
  const cpu0 = processCpuMs(server.pid);
  const threads0 = threadCpuByGroup(server.pid);
  const client0 = process.cpuUsage();
  const busy0 = machineBusyMs();
  const rss = rssSampler(server.pid);
  const eld = monitorEventLoopDelay({ resolution: 5 });
  eld.enable();
  await sleep(windowEnd - performance.now());
  const wall = (performance.now() - windowStart) / 1000;
  const cpuMs = processCpuMs(server.pid) - cpu0;
  const threads = diffGroups(threadCpuByGroup(server.pid), threads0);
  const clientCpu = process.cpuUsage(client0);
  const clientMs = (clientCpu.user + clientCpu.system) / 1000;
  const othersMs = machineBusyMs() - busy0 - cpuMs - clientMs;
  const rssPeak = rss.stop();
  eld.disable();
  const clientEventLoopP99Ms = eld.percentile(99) / 1e6;
  const rssNow = processRssBytes(server.pid);
  const load = machineLoad();
  await pacing;

  // Answers to frames sent in the window still count (their latency is the point of the bench).
  const grace = Math.min(30_000, Math.max(3000, 4 * spec.sessions * 1000));
  await Promise.all(runners.map((r) => r.settled(grace)));
  await Promise.all(runners.map((r) => r.door?.close().catch(() => undefined)));
  return summarizePoint(spec, runners, { wall, cpuMs, mainMs: threads.main ?? 0, clientMs, othersMs, rssNow, rssPeak, load1: load.loadavg[0], clientEventLoopP99Ms });
}

function summarizePoint(
  spec: PointSpec,
  runners: SessionRunner[],
  m: {
    wall: number;
    cpuMs: number;
    mainMs: number;
    clientMs: number;
    othersMs: number;
    rssNow: number;
    rssPeak: number;
    load1: number;
    clientEventLoopP99Ms: number;
  },
): PointResult {
  const all = runners.flatMap((r) => r.results);
  const delivered = all.length;
  const perSession = runners.map((r) => r.results.length / m.wall);
  const sumSq = perSession.reduce((a, v) => a + v * v, 0);
  const sum = perSession.reduce((a, v) => a + v, 0);
  const half = runners[0] ? runners[0].windowStart + (runners[0].windowEnd - runners[0].windowStart) / 2 : 0;
  const drops: Record<string, number> = {};
  for (const r of runners) for (const [k, v] of r.drops) drops[k] = (drops[k] ?? 0) + v;
  const errors = runners.flatMap((r) => r.errors);
  const queue = all.map((x) => x.server.queueMs).filter((q): q is number => q !== undefined);
  const perFrame = (ms: number) => (delivered > 0 ? ms / delivered : Number.NaN);
  return {
    door: spec.door,
    sessions: spec.sessions,
    fps: spec.fps,
    inflight: spec.inflight,
    offeredFps: spec.sessions * spec.fps,
    sentFps: runners.reduce((a, r) => a + r.sentInWindow, 0) / m.wall,
    deliveredFps: delivered / m.wall,
    perSessionFps: { min: Math.min(...perSession), mean: sum / Math.max(1, perSession.length) },
    fairness: sumSq > 0 ? (sum * sum) / (perSession.length * sumSq) : 0,
    starvedSessions: runners.filter((r) => !r.results.some((x) => x.atMs >= half)).length,
    latency: summarize(all.map((x) => x.latencyMs)),
    serverQueueP50Ms: queue.length > 0 ? summarize(queue).p50 : null,
    serverProcessingP50Ms: summarize(all.map((x) => x.server.processingMs)).p50,
    drops,
    skippedByClient: runners.reduce((a, r) => a + r.skippedByClient, 0),
    minAllowedFps: Math.min(...runners.map((r) => r.minAllowedFps)),
    errors: errors.length,
    errorSamples: [...new Set(errors)].slice(0, 3),
    unanswered: runners.reduce((a, r) => a + r.unanswered, 0),
    serverCpuMsPerFrame: perFrame(m.cpuMs),
    serverMainThreadMsPerFrame: perFrame(m.mainMs),
    serverCpuPct: (m.cpuMs / (m.wall * 1000)) * 100,
    serverRssMB: m.rssNow / MB,
    serverRssPeakMB: m.rssPeak / MB,
    clientCpuMsPerFrame: perFrame(m.clientMs),
    clientEventLoopP99Ms: m.clientEventLoopP99Ms,
    othersCores: Math.max(0, m.othersMs / (m.wall * 1000)),
    loadavg1: m.load1,
  };
}
