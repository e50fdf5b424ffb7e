import type { DoorName } from "./cli.js";
import { DOOR_TITLES } from "./doors/index.js";
import type { PointResult } from "./load.js";
import type { ModelResult } from "./model-run.js";
import type { MachineLoad } from "./proc.js";
import { ratioTableMarkdown, type RatioRow } from "./ratios.js";
import { round } from "./stats.js";
import type { TrackerBenchResult } from "./tracker.js";

export interface RunInfo {
  command: string;
  startedAt: string;
  machine: string;
  node: string;
  loadStart: MachineLoad;
  loadEnd: MachineLoad;
  options: Record<string, unknown>;
  skippedModels: string[];
}

const MB = 1024 * 1024;
const f = (v: number | null | undefined, d = 1) => (v === null || v === undefined || !Number.isFinite(v) ? "–" : String(round(v, d)));
const drops = (d: Record<string, number>) =>
  Object.entries(d)
    .map(([k, v]) => `${k.replace(/^DROP_REASON_/, "").toLowerCase()} ${v}`)
    .join(", ") || "0";

function pointRow(p: PointResult): string {
  // What is left of e2e after the server's own queue and processing: sockets, protocol, door, client.
  const rest = p.latency.p50 - (p.serverQueueP50Ms ?? 0) - p.serverProcessingP50Ms;
  return `| ${p.door} | ${p.sessions} | ${f(p.offeredFps)} | ${f(p.sentFps)} | ${f(p.deliveredFps, 2)} | ${f(p.perSessionFps.min, 2)} | ` +
    `${f(p.latency.p50)} | ${f(p.latency.p95)} | ${f(p.latency.p99)} | ${f(p.serverQueueP50Ms)} | ${f(p.serverProcessingP50Ms)} | ${f(rest)} | ` +
    `${drops(p.drops)} | ${p.skippedByClient} | ${p.errors + p.unanswered} | ${f(p.serverCpuMsPerFrame)} | ${f(p.serverMainThreadMsPerFrame)} | ` +
    `${f(p.clientCpuMsPerFrame)} | ${f(p.clientEventLoopP99Ms)} | ${f(p.serverRssPeakMB, 0)} | ${f(p.othersCores, 2)} | ${f(p.loadavg1, 2)} |`;
}

const POINT_HEADER =
  "| door | sessions | offered fps | sent fps | delivered fps | min/session | p50 ms | p95 ms | p99 ms | srv queue p50 | srv proc p50 | rest of e2e p50 | drops | client skipped | errors+unanswered | srv CPU ms/frame | srv main-thread ms/frame | client CPU ms/frame | client event-loop p99 ms | srv RSS peak MB | other procs (cores) | load1 |\n" +
  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |";

function modelSection(m: ModelResult, doors: readonly DoorName[]): string {
  const b = m.bare;
  const out: string[] = [];
  out.push(`### ${m.label} — \`${m.path.replace(/^.*?\/(models|testdata)\//, "$1/")}\``);
  out.push("");
  out.push(`Frames: ${m.frames.source}, ${f(m.frames.meanBytes / 1024)} KB on average. Engine: ${b.backend}, ${b.engineConcurrency} runs in flight, input ${b.input.join("×")}, classes ${b.classNames.join(", ")}.`);
  out.push("");
  out.push(`**Bare pipeline** (in process, no server): concurrency 1 p50 ${f(b.latency.p50)} ms, p95 ${f(b.latency.p95)} ms (n=${b.latency.n}); stages p50: preprocess ${f(b.stagesP50.preprocessMs)} ms, inference ${f(b.stagesP50.inferenceMs)} ms, postprocess ${f(b.stagesP50.postprocessMs, 2)} ms. Max throughput ${f(b.best.fps, 2)} fps at ${b.best.inflight} in flight.`);
  out.push("");
  out.push("| in flight | fps | p50 ms | p95 ms | CPU ms/frame (all threads) | main-thread ms/frame | longest event-loop stall ms |");
  out.push("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const t of b.throughput) {
    out.push(`| ${t.inflight} | ${f(t.fps, 2)} | ${f(t.latency.p50)} | ${f(t.latency.p95)} | ${f(t.cpuMsPerFrame)} | ${f(t.mainThreadMsPerFrame, 2)} | ${f(t.eventLoopMaxMs)} |`);
  }
  out.push("");
  out.push(`**Server**: started in ${f(m.server.startupMs / 1000)} s using ${f(m.server.startupCpuMs / 1000)} s CPU; idle RSS ${f(m.server.rssIdleMB, 0)} MB. 3× capacity = ${m.sessionsAt3x} sessions.`);
  if (m.idle) {
    const i = m.idle;
    out.push(`Idle sessions: ${i.sessions} created (${f(i.createMsEach, 2)} ms each); after a forced GC, RSS ${f(i.before.rss / MB)} → ${f(i.after.rss / MB)} MB = ${f(i.rssBytesPerSession / 1024)} KB per session; V8 heap + external ${f((i.before.heapUsed + i.before.external) / MB)} → ${f((i.after.heapUsed + i.after.external) / MB)} MB = ${f(i.heapBytesPerSession / 1024)} KB per session.`);
  }
  out.push("");
  out.push("**One session, one frame at a time**, in rounds alternating with the same number of bare runs (so both see the same machine load):");
  out.push("");
  out.push("| door | frames | e2e p50 | e2e p95 | bare p50 | bare p95 | e2e p50 − bare p50 | server processing p50 | e2e p50 − server processing p50 |");
  out.push("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const p of m.paired) {
    out.push(`| ${p.door} | ${p.e2e.n} | ${f(p.e2e.p50)} | ${f(p.e2e.p95)} | ${f(p.bare.p50)} | ${f(p.bare.p95)} | ${f(p.e2e.p50 - p.bare.p50)} | ${f(p.serverProcessingP50Ms)} | ${f(p.e2e.p50 - p.serverProcessingP50Ms)} |`);
  }
  out.push("");
  const local = Object.entries(m.localBare).map(([d, t]) => `${d} ${f(t?.fps, 2)}`);
  if (local.length > 0) out.push(`Bare throughput around each door's scaling points (mean of just before and just after) (fps at ${m.bare.best.inflight} in flight): ${local.join(", ")}.`, "");
  out.push("**End to end** (latency = client send → result received; frames sent in the window only; “rest of e2e” = e2e p50 − server queue p50 − server processing p50, i.e. sockets, protocol, door and client):");
  out.push("");
  out.push(POINT_HEADER);
  for (const door of doors) for (const p of m.points.filter((x) => x.door === door)) out.push(pointRow(p));
  if (m.tenByTen.length > 0) {
    out.push("");
    out.push("**10 sessions × 10 FPS**:");
    out.push("");
    out.push(POINT_HEADER);
    for (const p of m.tenByTen) out.push(pointRow(p));
  }
  if (m.ablations.length > 0) {
    out.push("");
    out.push("**A/B points** (the same point twice, back to back, one thing changed):");
    out.push("");
    out.push("| change | door | sessions | delivered fps | p50 ms | p95 ms | min allowed fps | srv CPU ms/frame | srv main-thread ms/frame | client CPU ms/frame |");
    out.push("| --- | --- | ---: | --- | --- | --- | --- | --- | --- | --- |");
    const ab = (a: number, b: number, d = 1) => `${f(a, d)} → ${f(b, d)}`;
    for (const { name, baseline: x, variant: y } of m.ablations) {
      out.push(
        `| ${name} | ${x.door} | ${x.sessions} | ${ab(x.deliveredFps, y.deliveredFps, 2)} | ${ab(x.latency.p50, y.latency.p50)} | ${ab(x.latency.p95, y.latency.p95)} | ` +
          `${ab(x.minAllowedFps, y.minAllowedFps)} | ${ab(x.serverCpuMsPerFrame, y.serverCpuMsPerFrame)} | ${ab(x.serverMainThreadMsPerFrame, y.serverMainThreadMsPerFrame)} | ${ab(x.clientCpuMsPerFrame, y.clientCpuMsPerFrame)} |`,
      );
    }
  }
  const errs = [...m.points, ...m.tenByTen].flatMap((p) => p.errorSamples.map((e) => `${p.door}×${p.sessions}: ${e}`));
  if (errs.length > 0) out.push("", "Error samples: " + [...new Set(errs)].slice(0, 6).map((e) => `\`${e}\``).join("; "));
  return out.join("\n");
}

export function markdownReport(
  info: RunInfo,
  models: readonly ModelResult[],
  rows: readonly RatioRow[],
  tracker: TrackerBenchResult,
  doors: readonly DoorName[],
  notes: string | undefined,
): string {
  const out: string[] = [];
  out.push("# hazard-stream benchmark results");
  out.push("");
  out.push(`Generated by \`${info.command}\` (bench/run.ts) at ${info.startedAt}.`);
  out.push("");
  out.push(`Machine: ${info.machine}; Node ${info.node}. **Machine load** at start: \`${info.loadStart.uptime}\`; at end: \`${info.loadEnd.uptime}\`. ` +
    "The box is shared (other engineers' tests and a model training run), so absolute numbers are noisy: compare the ratios, which come from one run. " +
    "The “other procs” column shows how many cores other processes used during each measured window.");
  if (info.skippedModels.length > 0) out.push("", `Skipped models: ${info.skippedModels.join("; ")}.`);
  out.push("");
  out.push("Doors: " + doors.map((d) => `**${d}** = ${DOOR_TITLES[d]}`).join("; ") + ".");
  out.push("");
  out.push("## Ratio table");
  out.push("");
  out.push(ratioTableMarkdown(rows));
  out.push("");
  out.push("![latency and delivered FPS vs sessions](results.svg)");
  out.push("");
  out.push("## Tracker micro-benchmark");
  out.push("");
  if (!tracker.present) out.push("bench/tracker-bench.ts is not present yet.");
  else {
    const figure = tracker.msPerUpdate === null ? "ms/update not found in its output" : `**${tracker.msPerUpdate} ms CPU/update** (10 detections, hazards apart)`;
    out.push(`bench/tracker-bench.ts: ${figure}; exit ${tracker.exitCode}${tracker.concurrent ? "; run beside model loading (--quick), so wall times are inflated" : ""}.`);
    if (tracker.rows.length > 0) {
      out.push("", "| detections | layout | wall ms/update | CPU ms/update |", "| ---: | --- | ---: | ---: |");
      for (const r of tracker.rows) out.push(`| ${r.detections} | ${r.layout} | ${r.wallMs} | ${r.cpuMs} |`);
    } else out.push("", "```", ...tracker.tail, "```");
  }
  out.push("");
  out.push("## Details per model");
  for (const m of models) out.push("", modelSection(m, doors));
  if (notes) out.push("", notes.trim());
  out.push("");
  return out.join("\n");
}
