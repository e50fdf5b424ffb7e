import type { DoorName } from "./cli.js";
import type { FrameSet } from "./frames.js";
import { runPoint, type PointResult, type PointSpec } from "./load.js";
import type { ServerChild } from "./server-child.js";

export interface SteadySample {
  tSec: number;
  rssMB: number;
  heapMB: number;
}

export interface SteadyResult {
  door: DoorName;
  sessions: number;
  fps: number;
  durationSec: number;
  point: PointResult;
  /** Server memory after a forced GC, sampled while the load runs. */
  samples: SteadySample[];
  /** Least-squares slope of RSS over the samples after the first minute (warm-up: JIT, pools, heap sizing). */
  rssSlopeMBPerMin: number;
  heapSlopeMBPerMin: number;
}

function slope(points: ReadonlyArray<{ x: number; y: number }>): number {
  if (points.length < 2) return 0;
  const mx = points.reduce((s, p) => s + p.x, 0) / points.length;
  const my = points.reduce((s, p) => s + p.y, 0) / points.length;
  const sxx = points.reduce((s, p) => s + (p.x - mx) ** 2, 0);
  return sxx === 0 ? 0 : points.reduce((s, p) => s + (p.x - mx) * (p.y - my), 0) / sxx;
}

/**
 * A long run below capacity with the server's memory sampled every `sampleSec`: a leak shows as a
 * steady rise of RSS and heap after forced GCs, which a short point cannot see.
 */
export async function steadyRun(
  spec: PointSpec,
  server: ServerChild,
  frames: FrameSet,
  sampleSec: number,
  log: (s: string) => void,
): Promise<SteadyResult> {
  const samples: SteadySample[] = [];
  const t0 = performance.now();
  let sampling = Promise.resolve();
  const take = () => {
    sampling = sampling.then(async () => {
      const m = await server.memory();
      const s = { tSec: (performance.now() - t0) / 1000, rssMB: m.rss / 2 ** 20, heapMB: (m.heapUsed + m.external) / 2 ** 20 };
      samples.push(s);
      log(`steady t=${s.tSec.toFixed(0)} s: RSS ${s.rssMB.toFixed(1)} MB, heap+external ${s.heapMB.toFixed(1)} MB`);
    });
  };
  const timer = setInterval(take, sampleSec * 1000);
  let point: PointResult;
  try {
    point = await runPoint(spec, server, frames);
  } finally {
    clearInterval(timer);
  }
  take();
  await sampling;
  const late = samples.filter((s) => s.tSec >= 60 || samples.length < 4);
  return {
    door: spec.door,
    sessions: spec.sessions,
    fps: spec.fps,
    durationSec: spec.durationSec,
    point,
    samples,
    rssSlopeMBPerMin: slope(late.map((s) => ({ x: s.tSec / 60, y: s.rssMB }))),
    heapSlopeMBPerMin: slope(late.map((s) => ({ x: s.tSec / 60, y: s.heapMB }))),
  };
}
