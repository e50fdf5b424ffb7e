/**
 * Tracker cost per update: `npx tsx bench/tracker-bench.ts`. Steady state (every hazard already a
 * confirmed track) at 10, 50 and 200 detections per frame, in two layouts: hazards apart (the usual
 * road scene: every IoU component is 1×1) and one dense cluster (every box overlaps every other, so
 * the assignment is one big Hungarian problem, the worst case).
 */
import { HazardTracker } from "../src/tracking/hazard-tracker.js";
import { mulberry32 } from "../src/tracking/synthetic-tracks.js";
import type { TrackerDetection } from "../src/tracking/types.js";

type Layout = "apart" | "cluster";

function frameOf(n: number, layout: Layout, step: number, rng: () => number): TrackerDetection[] {
  const dets: TrackerDetection[] = [];
  const cols = Math.ceil(Math.sqrt(n));
  for (let i = 0; i < n; i++) {
    const w = 40;
    const h = 30;
    // Apart: a grid with 100 px pitch; cluster: boxes 2 px apart, all overlapping.
    const pitch = layout === "apart" ? 100 : 2;
    const cx = 50 + pitch * (i % cols) + 2 * step + (rng() - 0.5);
    const cy = 50 + pitch * Math.floor(i / cols) + 3 * step + (rng() - 0.5);
    dets.push({
      x1: cx - w / 2,
      y1: cy - h / 2,
      x2: cx + w / 2,
      y2: cy + h / 2,
      confidence: 0.5 + 0.4 * rng(),
      classId: i % 2,
      className: i % 2 === 0 ? "crack" : "pothole",
    });
  }
  return dets;
}

function bench(n: number, layout: Layout): { wallMs: number; cpuMs: number; reported: number } {
  const rng = mulberry32(n);
  // The cluster's boxes, 2 px apart, are what the tracker takes for duplicate boxes of one hazard;
  // duplicateIou 1 keeps every one a track, so the assignment stays one big Hungarian problem.
  const tracker = new HazardTracker(layout === "cluster" ? { duplicateIou: 1 } : {});
  const warmup = 200;
  const updates = Math.max(200, Math.round(20_000 / n));
  const frames = Array.from({ length: warmup + updates }, (_, step) => frameOf(n, layout, step, rng));
  let next = 0;
  const feed = (count: number): number => {
    let reported = 0;
    for (let i = 0; i < count; i++, next++) reported = tracker.update(frames[next], next * 0.1).tracked.length;
    return reported;
  };
  feed(warmup); // confirms every track and lets the JIT settle
  const start = process.hrtime.bigint();
  const cpuStart = process.cpuUsage();
  const reported = feed(updates);
  const cpu = process.cpuUsage(cpuStart);
  const wallMs = Number(process.hrtime.bigint() - start) / 1e6;
  return { wallMs: wallMs / updates, cpuMs: (cpu.user + cpu.system) / 1000 / updates, reported };
}

// CPU time is what the tracker costs; wall time also counts waiting for a core on a busy machine.
console.log("detections  layout    wall ms/update  cpu ms/update  reported tracks");
for (const layout of ["apart", "cluster"] as const) {
  for (const n of [10, 50, 200]) {
    const { wallMs, cpuMs, reported } = bench(n, layout);
    const wall = wallMs.toFixed(4).padStart(14);
    const cpu = cpuMs.toFixed(4).padStart(13);
    console.log(`${String(n).padStart(10)}  ${layout.padEnd(8)}  ${wall}  ${cpu}  ${reported}`);
  }
}
