import { existsSync } from "node:fs";
import { basename, isAbsolute, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

export const REPO_ROOT = fileURLToPath(new URL("..", import.meta.url));
export const SHARED_DIR = resolve(REPO_ROOT, "../shared");
const SHARED_YOLO = resolve(SHARED_DIR, "testdata/models/pothole-yolov8n-640-int8/best_dynamic_int8.onnx");
export const SHARED_PHOTOS = resolve(SHARED_DIR, "testdata/images/potholes-67/images");

export const DOORS = ["grpc", "unary", "ws-json", "ws-binary", "rest-sse"] as const;
export type DoorName = (typeof DOORS)[number];

export interface ModelChoice {
  label: string;
  path: string;
  /** Trained on real photos: feed it photos when ../shared has them. */
  wantsPhotos: boolean;
}

export interface BenchOptions {
  models: ModelChoice[];
  skippedModels: string[];
  frameSize: { width: number; height: number };
  /** Explicit session counts, or undefined to derive them from the measured capacity. */
  sessions: number[] | undefined;
  fps: number;
  durationSec: number;
  inflight: number;
  doors: DoorName[];
  outDir: string;
  quick: boolean;
  idleSessions: number;
  honorFlowControl: boolean;
  /** Also write bench/RESULTS.md and bench/results.svg (the committed summary). */
  publish: boolean;
  /** Re-render this results.json instead of measuring. */
  reportFrom: string | undefined;
  /** Back-to-back A/B points at 3x capacity: flow control ignored, WebSocket deflate off. */
  ablations: boolean;
  /** Seconds of the steady below-capacity run with memory sampling (0: skip). */
  steadySec: number;
}

export const USAGE = `npm run bench -- [options]
  --model LIST       default | filter | pothole | all | path.onnx, comma-separated (default: default)
                     default (alias yolo) = models/road-hazard-yolo.onnx, the trained default model (photos),
                     filter = models/road-hazard-filter.onnx (synthetic scenes),
                     pothole = ../shared/.../best_dynamic_int8.onnx (skipped when absent)
  --frame-size WxH   synthetic frame size (default 640x480); photo models use the photos as they are
  --sessions LIST    session counts for the scaling runs (default: 1,2,4,... up to 3x capacity)
  --fps F            frames per second each session offers (default 10)
  --duration S       seconds per measured point (default 10; --quick 1.5)
  --inflight K       frames a session keeps in flight at most (default 1)
  --doors LIST       ${DOORS.join(",")} (default: all)
  --idle N           idle SessionService sessions for the memory probe (default 500; --quick 100)
  --no-flow-control  ignore the server's allowed_fps (default: slow down like a well-behaved client)
  --out DIR          output directory (default bench/out)
  --publish          also write bench/RESULTS.md and bench/results.svg
  --no-ablations     skip the A/B points (3x capacity: flow control ignored; WebSocket deflate off);
                     they run by default except with --quick
  --steady S         seconds of a steady run below capacity (default model, gRPC) with the server's
                     memory sampled after forced GCs, for growth (default 300; --quick 20; 0 skips)
  --quick            short points, few of them (about a minute on a quiet 2-core box)
  --report-from F    re-render a results.json (e.g. after editing bench/notes.md); measures nothing`;

function positive(name: string, raw: string, integer = false): number {
  const v = Number(raw);
  if (!Number.isFinite(v) || v <= 0 || (integer && !Number.isInteger(v))) {
    throw new Error(`--${name} must be a positive ${integer ? "integer" : "number"}, got "${raw}"`);
  }
  return v;
}

function resolveModels(raw: string): { models: ModelChoice[]; skipped: string[] } {
  const models: ModelChoice[] = [];
  const skipped: string[] = [];
  const add = (label: string, path: string, wantsPhotos: boolean, optional: boolean) => {
    if (existsSync(path)) models.push({ label, path, wantsPhotos });
    else if (optional) skipped.push(`${label} (${path} not found)`);
    else throw new Error(`model ${path} not found`);
  };
  for (const item of raw.split(",").map((s) => s.trim()).filter(Boolean)) {
    if (item === "default" || item === "yolo" || item === "all") {
      add("default", resolve(REPO_ROOT, "models/road-hazard-yolo.onnx"), true, false);
    }
    if (item === "filter" || item === "all") add("filter", resolve(REPO_ROOT, "models/road-hazard-filter.onnx"), false, false);
    if (item === "pothole" || item === "all") add("pothole", SHARED_YOLO, true, true);
    if (!["default", "filter", "yolo", "pothole", "all"].includes(item)) {
      const path = isAbsolute(item) ? item : resolve(process.cwd(), item);
      const label = path === SHARED_YOLO ? "pothole" : basename(path, ".onnx");
      // A path into ../shared is optional like the alias: skip cleanly where the test data is absent.
      add(label, path, label === "pothole" || path.startsWith(SHARED_DIR), path.startsWith(SHARED_DIR));
    }
  }
  return { models, skipped };
}

export function parseCli(argv: string[]): BenchOptions | "help" {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: "string", default: "default" },
      "frame-size": { type: "string", default: "640x480" },
      sessions: { type: "string" },
      fps: { type: "string", default: "10" },
      duration: { type: "string" },
      inflight: { type: "string", default: "1" },
      doors: { type: "string", default: DOORS.join(",") },
      idle: { type: "string" },
      "no-flow-control": { type: "boolean", default: false },
      out: { type: "string", default: resolve(REPO_ROOT, "bench/out") },
      publish: { type: "boolean", default: false },
      "no-ablations": { type: "boolean", default: false },
      "report-from": { type: "string" },
      quick: { type: "boolean", default: false },
      steady: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) return "help";
  const quick = values.quick;
  const size = /^(\d+)x(\d+)$/.exec(values["frame-size"]);
  if (!size) throw new Error(`--frame-size must look like 640x480, got "${values["frame-size"]}"`);
  const doors = values.doors.split(",").map((d) => d.trim());
  for (const d of doors) if (!(DOORS as readonly string[]).includes(d)) throw new Error(`unknown door "${d}"; known: ${DOORS.join(", ")}`);
  const { models, skipped } = resolveModels(values.model);
  const fps = positive("fps", values.fps);
  // fps_limit is an integer of at most STREAMING_MAX_FPS (30): faster offers would only be dropped.
  if (fps > 30) throw new Error("--fps is at most 30 (the server's STREAMING_MAX_FPS)");
  return {
    models,
    skippedModels: skipped,
    frameSize: { width: Number(size[1]), height: Number(size[2]) },
    sessions: values.sessions?.split(",").map((s) => positive("sessions", s.trim(), true)),
    fps,
    durationSec: positive("duration", values.duration ?? (quick ? "1.5" : "10")),
    inflight: positive("inflight", values.inflight, true),
    doors: doors as DoorName[],
    outDir: resolve(process.cwd(), values.out),
    quick,
    idleSessions: positive("idle", values.idle ?? (quick ? "100" : "500"), true),
    honorFlowControl: !values["no-flow-control"],
    publish: values.publish,
    ablations: !quick && !values["no-ablations"],
    steadySec: values.steady === "0" ? 0 : positive("steady", values.steady ?? (quick ? "20" : "300")),
    reportFrom: values["report-from"] === undefined ? undefined : resolve(process.cwd(), values["report-from"]),
  };
}
