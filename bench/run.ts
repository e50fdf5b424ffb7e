/**
 * `npm run bench`: bare pipeline vs every door end to end, scaling, idle memory. See bench/README.md.
 */
import { cpus } from "node:os";
import { parseCli, USAGE, type BenchOptions } from "./cli.js";
import { benchModel, type ModelResult } from "./model-run.js";
import { readResults, writeOutputs, type RunResults } from "./outputs.js";
import { machineLoad } from "./proc.js";
import { ratioRows, ratioTableText, type RatioRow } from "./ratios.js";
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

let results: RunResults;
if (options.reportFrom) {
  // Re-render a finished run (after bench/notes.md or the report code changed); measures nothing.
  results = readResults(options.reportFrom);
} else {
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
  const ratios: RatioRow[] = [];
  for (const model of options.models) {
    const m = await benchModel(model, options, log, trackerRun);
    models.push(m);
    ratios.push(...ratioRows(m, options.doors));
  }
  const tracker = await trackerRun;
  if (tracker.present) log(`tracker-bench: ${tracker.msPerUpdate ?? "?"} ms CPU/update`);
  results = {
    info: {
      command: `npm run bench -- ${process.argv.slice(2).join(" ")}`.trim(),
      startedAt,
      machine: `${cpus()[0]?.model ?? "unknown CPU"} × ${cpus().length} cores`,
      node: process.version,
      loadStart,
      loadEnd: machineLoad(),
      options: { ...options, models: options.models.map((m) => m.path) },
      skippedModels: options.skippedModels,
    },
    doors: options.doors,
    tracker,
    models,
    ratios,
  };
}

writeOutputs(results, options.outDir, options.publish);
const { loadStart, loadEnd } = results.info;
console.log(`\nRatio table (machine load at start: ${loadStart.uptime}; at end: ${loadEnd.uptime})\n`);
console.log(ratioTableText(results.ratios));
console.log(`\nwrote ${options.outDir}/{results.json,summary.md,chart.svg}${options.publish ? " and bench/RESULTS.md, bench/results.svg" : ""} in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
// Keep-alive agents and HTTP/2 sessions of the load clients would hold the process open.
process.exit(0);
