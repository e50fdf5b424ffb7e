import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { chartSvg } from "./chart.js";
import { REPO_ROOT, type DoorName } from "./cli.js";
import type { ModelResult } from "./model-run.js";
import type { RatioRow } from "./ratios.js";
import { markdownReport, type RunInfo } from "./report.js";
import type { TrackerBenchResult } from "./tracker.js";

/** Everything a run measured: what results.json holds, and all the report needs. */
export interface RunResults {
  info: RunInfo;
  doors: DoorName[];
  tracker: TrackerBenchResult;
  models: ModelResult[];
  ratios: RatioRow[];
}

/**
 * Writes results.json, summary.md and chart.svg to `outDir`; with `publish`, also the committed
 * bench/RESULTS.md and bench/results.svg. bench/notes.md (hand-written analysis) is appended to
 * the markdown when present, so `--report-from` can re-render after the notes change.
 */
export function writeOutputs(r: RunResults, outDir: string, publish: boolean): void {
  const notesPath = resolve(REPO_ROOT, "bench/notes.md");
  const notes = existsSync(notesPath) ? readFileSync(notesPath, "utf8") : undefined;
  const [l0, l1] = [r.info.loadStart.loadavg[0], r.info.loadEnd.loadavg[0]];
  const caption = `${r.info.machine}, load ${l0.toFixed(1)} → ${l1.toFixed(1)}; ${r.info.startedAt}`;
  const markdown = markdownReport(r.info, r.models, r.ratios, r.tracker, r.doors, notes);
  const svg = chartSvg(r.models, r.doors, caption);
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, "results.json"), JSON.stringify(r, null, 2));
  writeFileSync(join(outDir, "summary.md"), markdown.replace("](results.svg)", "](chart.svg)"));
  writeFileSync(join(outDir, "chart.svg"), svg);
  if (publish) {
    writeFileSync(resolve(REPO_ROOT, "bench/RESULTS.md"), markdown);
    writeFileSync(resolve(REPO_ROOT, "bench/results.svg"), svg);
  }
}

export function readResults(path: string): RunResults {
  return JSON.parse(readFileSync(path, "utf8")) as RunResults;
}
