import type { DoorName } from "./cli.js";
import type { PointResult } from "./load.js";
import type { ModelResult } from "./model-run.js";
import { round } from "./stats.js";

export interface RatioRow {
  model: string;
  metric: string;
  door: DoorName | "-";
  value: string;
  target: string;
  /** null: informational (no target for this door or model), or not measured. */
  pass: boolean | null;
  detail: string;
}

/** Saturation targets: the binary doors should add almost nothing, the JSON/base64 ones a little. */
const SATURATION_TARGET: Partial<Record<DoorName, number>> = { grpc: 0.9, "ws-binary": 0.9, "ws-json": 0.8, "rest-sse": 0.8 };

const MB = 1024 * 1024;
const fmt = (v: number, d = 2) => (Number.isFinite(v) ? String(round(v, d)) : "n/a");

/** Bare p50 pooled over every pairing: the largest bare sample taken beside the server runs. */
export function pairedBareP50(m: ModelResult): number {
  const all = m.paired.flatMap((p) => (p.bare.n > 0 ? [p.bare.p50] : []));
  return all.length > 0 ? all.reduce((a, b) => a + b, 0) / all.length : m.bare.latency.p50;
}

export function ratioRows(m: ModelResult, doors: readonly DoorName[]): RatioRow[] {
  const rows: RatioRow[] = [];
  const bareP50 = pairedBareP50(m);
  const of = (door: DoorName) => m.points.filter((p) => p.door === door);
  // The brief gives the service's default model an absolute allowance (bare + 3 ms) and other
  // models a ratio.
  const isDefault = m.label === "default";

  for (const p of m.paired) {
    const ratio = p.e2e.p50 / p.bare.p50;
    const delta = p.e2e.p50 - p.bare.p50;
    const targeted = p.door === "grpc";
    rows.push({
      model: m.label,
      metric: "1 session below capacity (one frame at a time, alternating with bare): e2e p50 / bare p50",
      door: p.door,
      value: `${fmt(ratio)} (${fmt(p.e2e.p50, 1)} vs ${fmt(p.bare.p50, 1)} ms, ${delta >= 0 ? "+" : ""}${fmt(delta, 1)} ms)`,
      target: !targeted ? "—" : isDefault ? "≤ bare + 3 ms" : "≤ 1.10",
      pass: !targeted ? null : isDefault ? delta <= 3 : ratio <= 1.1,
      detail: `n=${p.e2e.n}; server processing p50 ${fmt(p.serverProcessingP50Ms, 1)} ms; e2e p95 ${fmt(p.e2e.p95, 1)} vs bare p95 ${fmt(p.bare.p95, 1)} ms`,
    });
  }
  for (const door of doors) {
    const pts = of(door);
    if (pts.length === 0) continue;
    const best = pts.reduce((a, b) => (b.deliveredFps > a.deliveredFps ? b : a));
    const local = m.localBare[door];
    const cap = local?.fps ?? m.bare.best.fps;
    const target = SATURATION_TARGET[door];
    const ratio = best.deliveredFps / cap;
    rows.push({
      model: m.label,
      metric: "saturation: delivered total FPS / bare max throughput (bare measured just before and after)",
      door,
      value: `${fmt(ratio)} (${fmt(best.deliveredFps)} / ${fmt(cap)} fps at ${best.sessions} sessions)`,
      target: target === undefined ? "—" : `≥ ${target}`,
      pass: target === undefined ? null : ratio >= target,
      detail: `server ${fmt(best.serverCpuMsPerFrame, 1)} ms CPU/frame vs bare ${fmt(local?.cpuMsPerFrame ?? Number.NaN, 1)}; min allowed_fps ${fmt(best.minAllowedFps, 1)}`,
    });
  }
  for (const door of doors) {
    const p = of(door).find((x) => x.sessions >= m.sessionsAt3x);
    if (!p) continue;
    const ratio = p.latency.p95 / bareP50;
    const kept = p.starvedSessions === 0 && p.latency.n > 0;
    rows.push({
      model: m.label,
      metric: `3x capacity (${p.sessions} sessions x ${p.fps} FPS): p95 / bare p50; every session kept getting results`,
      door,
      value: `${fmt(ratio)} (p95 ${fmt(p.latency.p95, 0)} ms); ${kept ? "yes" : `no (${p.starvedSessions} starved)`}`,
      target: "≤ 3; yes",
      pass: ratio <= 3 && kept,
      detail: `min session ${fmt(p.perSessionFps.min)} fps, fairness ${fmt(p.fairness)}, drops ${JSON.stringify(p.drops)}, skipped by client ${p.skippedByClient}`,
    });
  }
  if (m.idle) {
    const kb = m.idle.rssBytesPerSession / 1024;
    rows.push({
      model: m.label,
      metric: `idle session memory (${m.idle.sessions} sessions, RSS delta / N after forced GC)`,
      door: "-",
      value: `${fmt(kb, 1)} KB`,
      target: "≤ 100 KB",
      pass: kb <= 100,
      detail: `RSS ${fmt(m.idle.before.rss / MB, 1)} → ${fmt(m.idle.after.rss / MB, 1)} MB; V8 heap + external ${fmt(m.idle.heapBytesPerSession / 1024, 1)} KB/session`,
    });
  }
  for (const p of m.tenByTen) rows.push(tenByTenRow(m.label, p));
  if (m.steady) {
    const st = m.steady;
    const first = st.samples[0];
    const last = st.samples[st.samples.length - 1];
    // "No growth": what is left of a leak after warm-up must stay within noise, under 1 MB/min
    // (a session's frames are ~100 KB each, so a leaked frame per second would show as 6 MB/min).
    const grows = st.rssSlopeMBPerMin >= 1 || st.heapSlopeMBPerMin >= 1;
    rows.push({
      model: m.label,
      metric: `memory over a ${fmt(st.durationSec / 60, 1)}-minute steady run (${st.sessions} sessions x ${st.fps} FPS): slope after the first minute`,
      door: st.door,
      value: `RSS ${st.rssSlopeMBPerMin >= 0 ? "+" : ""}${fmt(st.rssSlopeMBPerMin, 2)} MB/min, heap ${st.heapSlopeMBPerMin >= 0 ? "+" : ""}${fmt(st.heapSlopeMBPerMin, 2)} MB/min`,
      target: "no growth (< 1 MB/min)",
      pass: st.samples.length >= 3 ? !grows : null,
      detail: `${st.samples.length} samples after forced GC; RSS ${fmt(first?.rssMB ?? 0, 1)} → ${fmt(last?.rssMB ?? 0, 1)} MB, heap+external ${fmt(first?.heapMB ?? 0, 1)} → ${fmt(last?.heapMB ?? 0, 1)} MB; delivered ${fmt(st.point.deliveredFps, 1)} fps, p95 ${fmt(st.point.latency.p95, 0)} ms`,
    });
  }
  return rows;
}

function tenByTenRow(model: string, p: PointResult): RatioRow {
  return {
    model,
    metric: "10 sessions x 10 FPS: e2e p95",
    door: p.door,
    value: `${fmt(p.latency.p95, 0)} ms (delivered ${fmt(p.deliveredFps, 1)} of 100 fps)`,
    target: "< 100 ms",
    pass: p.latency.n > 0 && p.latency.p95 < 100,
    detail: `p50 ${fmt(p.latency.p50, 0)} ms, drops ${JSON.stringify(p.drops)}, skipped by client ${p.skippedByClient}, min allowed ${fmt(p.minAllowedFps, 1)} fps`,
  };
}

export function ratioTableMarkdown(rows: readonly RatioRow[]): string {
  const mark = (p: boolean | null) => (p === null ? "" : p ? "✅" : "❌");
  const lines = ["| model | metric | door | value | target | ok | detail |", "| --- | --- | --- | --- | --- | --- | --- |"];
  for (const r of rows) lines.push(`| ${r.model} | ${r.metric} | ${r.door} | ${r.value} | ${r.target} | ${mark(r.pass)} | ${r.detail} |`);
  return lines.join("\n");
}

/** Plain text for the terminal. */
export function ratioTableText(rows: readonly RatioRow[]): string {
  const cells = rows.map((r) => [r.model, r.door, r.metric, r.value, r.target, r.pass === null ? "" : r.pass ? "ok" : "MISS"]);
  const widths = [0, 1, 2, 3, 4].map((i) => Math.max(...cells.map((c) => (c[i] ?? "").length)));
  return cells.map((c) => c.map((v, i) => (i < 5 ? v.padEnd(widths[i] ?? 0) : v)).join("  ")).join("\n");
}
