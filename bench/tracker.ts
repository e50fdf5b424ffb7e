import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { REPO_ROOT } from "./cli.js";

export interface TrackerRow {
  detections: number;
  layout: string;
  wallMs: number;
  cpuMs: number;
}

export interface TrackerBenchResult {
  present: boolean;
  /** CPU ms per update in the usual case (10 detections, hazards apart), or the first figure found. */
  msPerUpdate: number | null;
  rows: TrackerRow[];
  /** Ran beside other work (--quick): CPU figures hold, wall figures are inflated. */
  concurrent: boolean;
  exitCode: number | null;
  /** The last lines it printed, for the summary when the figure cannot be parsed. */
  tail: string[];
}

const SCRIPT = resolve(REPO_ROOT, "bench/tracker-bench.ts");

/**
 * The tracker micro-benchmark is another engineer's script: run it as it is (BENCH_QUICK=1 tells it
 * to be short) and read its table ("detections layout wall-ms/update cpu-ms/update tracks" rows),
 * or else "<n> ms/update" / a JSON ms_per_update from its output.
 */
export async function runTrackerBench(quick: boolean, timeoutMs: number, concurrent: boolean): Promise<TrackerBenchResult> {
  if (!existsSync(SCRIPT)) return { present: false, msPerUpdate: null, rows: [], concurrent: false, exitCode: null, tail: [] };
  const child = spawn(process.execPath, ["--import", "tsx", SCRIPT], {
    cwd: REPO_ROOT,
    env: { ...process.env, BENCH_QUICK: quick ? "1" : "" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const exitCode = await new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  clearTimeout(timer);
  const rows: TrackerRow[] = [];
  for (const m of out.matchAll(/^\s*(\d+)\s+([a-z]+)\s+([\d.]+)\s+([\d.]+)\s+\d+\s*$/gim)) {
    rows.push({ detections: Number(m[1]), layout: m[2] ?? "", wallMs: Number(m[3]), cpuMs: Number(m[4]) });
  }
  const usual = rows.find((r) => r.detections === 10 && r.layout === "apart") ?? rows[0];
  const matches = [
    ...out.matchAll(/([\d.]+)\s*ms\s*\/\s*update/gi),
    ...out.matchAll(/"?ms_?per_?update"?\s*[:=]\s*([\d.]+)/gi),
  ];
  const last = matches.at(-1)?.[1];
  return {
    present: true,
    msPerUpdate: usual ? usual.cpuMs : last === undefined ? null : Number(last),
    rows,
    concurrent,
    exitCode,
    tail: out.trim().split("\n").slice(-8),
  };
}
