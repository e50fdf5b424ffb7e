/**
 * `npx tsx bench/profile-summary.ts <dir-or-file.cpuprofile> [frames]`: where the server's main
 * thread spends its time, from profiles written with
 * BENCH_SERVER_NODE_ARGS="--cpu-prof --cpu-prof-dir=DIR". Self time by category and top functions;
 * per frame when the number of frames processed is given.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const CATEGORIES: Array<[string, (f: CallFrame) => boolean]> = [
  ["idle", (f) => f.functionName === "(idle)"],
  ["GC", (f) => f.functionName === "(garbage collector)"],
  ["module loading (startup)", (f) => /modules\/(esm|cjs)|node_modules\/tsx|bootstrap/.test(f.url) || f.functionName === "compileFunction"],
  ["letterbox HWC→CHW loop (src/pipeline/letterbox.ts)", (f) => f.url.includes("pipeline/letterbox")],
  ["other src/pipeline", (f) => f.url.includes("src/pipeline")],
  ["src/tracking", (f) => f.url.includes("src/tracking")],
  ["src/http (REST/SSE/WS adapter)", (f) => f.url.includes("src/http")],
  ["src/streaming + src/rpc + src/store", (f) => /src\/(streaming|rpc|store)/.test(f.url)],
  ["protobuf-es", (f) => f.url.includes("@bufbuild/protobuf")],
  ["connect-es", (f) => f.url.includes("@connectrpc")],
  ["ws", (f) => f.url.includes("node_modules/ws/")],
  ["pino", (f) => /pino|sonic-boom|thread-stream/.test(f.url)],
  ["sharp (JS side)", (f) => f.url.includes("node_modules/sharp")],
  ["onnxruntime (JS side) / worker messaging", (f) => f.url.includes("onnxruntime") || f.functionName === "postMessage"],
  ["JSON.parse/stringify, base64", (f) => f.url === "" && /^(parse|stringify|toString|from|write|base64Slice|base64Write)$/.test(f.functionName)],
  ["node internals (net, http, http2, streams, zlib)", (f) => f.url.startsWith("node:")],
  ["other native / (program)", (f) => f.url === ""],
  ["other", () => true],
];

function files(arg: string): string[] {
  return statSync(arg).isDirectory()
    ? readdirSync(arg)
        .filter((n) => n.endsWith(".cpuprofile"))
        .map((n) => join(arg, n))
    : [arg];
}

function summarize(path: string, frames: number): void {
  const p = JSON.parse(readFileSync(path, "utf8")) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n.callFrame]));
  const selfUs = new Map<number, number>();
  p.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)));
  const cats = new Map<string, number>();
  const fns = new Map<string, number>();
  let busy = 0;
  for (const [id, us] of selfUs) {
    const f = byId.get(id);
    if (!f) continue;
    const cat = CATEGORIES.find(([, test]) => test(f))?.[0] ?? "other";
    cats.set(cat, (cats.get(cat) ?? 0) + us);
    if (cat === "idle") continue;
    busy += us;
    const key = `${f.functionName || "(anonymous)"} ${f.url.replace(/^.*node_modules\//, "").replace(/^.*\/src\//, "src/")}:${f.lineNumber + 1}`;
    fns.set(key, (fns.get(key) ?? 0) + us);
  }
  const ms = (us: number) => (frames > 0 ? `${(us / 1000 / frames).toFixed(2)} ms/frame` : `${(us / 1000).toFixed(0)} ms`);
  console.log(`\n${path}: busy ${ms(busy)} (${(busy / 1000).toFixed(0)} ms total), idle ${((cats.get("idle") ?? 0) / 1000).toFixed(0)} ms`);
  for (const [cat, us] of [...cats].filter(([c]) => c !== "idle").sort((a, b) => b[1] - a[1])) {
    console.log(`  ${((100 * us) / Math.max(1, busy)).toFixed(1).padStart(5)}%  ${ms(us).padStart(16)}  ${cat}`);
  }
  console.log("  top functions:");
  for (const [fn, us] of [...fns].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`    ${ms(us).padStart(16)}  ${fn}`);
}

const [target, framesArg] = process.argv.slice(2);
if (!target) {
  console.error("usage: npx tsx bench/profile-summary.ts <dir|file.cpuprofile> [frames processed]");
  process.exit(2);
}
for (const f of files(target)) summarize(f, Number(framesArg ?? 0));
