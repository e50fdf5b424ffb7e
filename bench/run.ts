/**
 * `npm run bench`: bare pipeline vs every door end to end, scaling, idle memory. See bench/README.md.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join, resolve } from "node:path";
import { chartSvg } from "./chart.js";
import { parseCli, REPO_ROOT, USAGE, type BenchOptions } from "./cli.js";
import { benchModel, type ModelResult } from "./model-run.js";
import { machineLoad } from "./proc.js";
import { ratioRows, ratioTableText, type RatioRow } from "./ratios.js";
import { markdownReport, type RunInfo } from "./report.js";
import { runTrackerBench } from "./tracker.js";

const t0 = performance.now();
const log = (s: string) => console.log(`[bench ${((performance.now() - t0) / 1000).toFixed(1)}s] ${s}`);

let opts: BenchOptions | "help";
try {
  opts = parseCli(process.argv.slice(2));
} catch (e) {
  console.error(`bench: ${e instanceof Error ? e.message : String(e)}\n\n${USAGE}`);
  process.exit(2);
}
if (opts === "help") {
  console.log(USAGE);
  process.exit(0);
}
const options = opts;
for (const s of options.skippedModels) log(`skipping model ${s}`);
if (options.models.length === 0) {
  log("no model to benchmark");
  process.exit(0);
}

const loadStart = machineLoad();
log(`machine load: ${loadStart.uptime}`);
const startedAt = new Date().toISOString();

// Full runs give the tracker bench the machine to itself; --quick runs it beside the first model's
// loading (its CPU ms/update stays meaningful, its wall time does not).
const trackerRun = runTrackerBench(options.quick, options.quick ? 40_000 : 180_000, options.quick);
if (!options.quick) await trackerRun;

const models: ModelResult[] = [];
const rows: RatioRow[] = [];
for (const model of options.models) {
  const m = await benchModel(model, options, log, trackerRun);
  models.push(m);
  rows.push(...ratioRows(m, options.doors));
}
const tracker = await trackerRun;
if (tracker.present) log(`tracker-bench: ${tracker.msPerUpdate ?? "?"} ms CPU/update`);
const loadEnd = machineLoad();

const info: RunInfo = {
  command: `npm run bench -- ${process.argv.slice(2).join(" ")}`.trim(),
  startedAt,
  machine: `${cpus()[0]?.model ?? "unknown CPU"} × ${cpus().length} cores`,
  node: process.version,
  loadStart,
  loadEnd,
  options: { ...options, models: options.models.map((m) => m.path) },
  skippedModels: options.skippedModels,
};
const notesPath = resolve(REPO_ROOT, "bench/notes.md");
const notes = existsSync(notesPath) ? readFileSync(notesPath, "utf8") : undefined;
const caption = `${info.machine}, load ${loadStart.loadavg[0].toFixed(1)} → ${loadEnd.loadavg[0].toFixed(1)}; ${startedAt}`;
const markdown = markdownReport(info, models, rows, tracker, options.doors, notes);
const svg = chartSvg(models, options.doors, caption);

mkdirSync(options.outDir, { recursive: true });
writeFileSync(join(options.outDir, "results.json"), JSON.stringify({ info, tracker, models, ratios: rows }, null, 2));
writeFileSync(join(options.outDir, "summary.md"), markdown.replace("](results.svg)", "](chart.svg)"));
writeFileSync(join(options.outDir, "chart.svg"), svg);
if (options.publish) {
  writeFileSync(resolve(REPO_ROOT, "bench/RESULTS.md"), markdown);
  writeFileSync(resolve(REPO_ROOT, "bench/results.svg"), svg);
}

console.log(`\nRatio table (machine load at start: ${loadStart.uptime}; at end: ${loadEnd.uptime})\n`);
console.log(ratioTableText(rows));
console.log(`\nwrote ${options.outDir}/{results.json,summary.md,chart.svg}${options.publish ? " and bench/RESULTS.md, bench/results.svg" : ""} in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
// Keep-alive agents and HTTP/2 sessions of the load clients would hold the process open.
process.exit(0);
