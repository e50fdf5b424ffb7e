import type { ConfigPatch } from "../../client/index.js";
import { cameraSource, fileSource, JpegGrabber, type FrameSource } from "./capture.js";
import { DOORS, openDoor, type Box, type Door, type DoorEvent, type DoorKind } from "./doors.js";
import { findElements, messageOf } from "./elements.js";
import { clearBoxes, colorOf, drawBoxes, labelOf } from "./overlay.js";
import { LiveStats } from "./stats.js";
import { WatchPanel } from "./watch-panel.js";

/**
 * The demo page: DOM wiring only. Frames leave at the session's FPS (or the server's lower
 * allowance), at most one unanswered at a time unless "pipelining" is ticked — a camera produces
 * frames faster than a loaded server answers them, and queueing them only adds latency.
 *
 * For automation (the browser test) the page mirrors its state in data attributes: #stage
 * data-state, data-results, data-boxes, data-classes, data-config-version, data-max-in-flight,
 * data-client-id; #status data-state; each #detections item data-class, data-confidence,
 * data-bbox, data-track.
 */

const ui = findElements();
const watchPanel = new WatchPanel(ui.watchSummary, ui.watchLog);
const grabber = new JpegGrabber();

/** More than this in flight only fills server queues (frames get SUPERSEDED there). */
const MAX_PIPELINE = 4;
/** An answer later than this is given up on, so one lost message cannot stall the stream. */
const ANSWER_TIMEOUT_MS = 5000;

interface Run {
  door: Door;
  source: FrameSource;
  stats: LiveStats;
  /** Page frame id → when it was grabbed. */
  inFlight: Map<string, number>;
  seq: number;
  timer: ReturnType<typeof setTimeout> | undefined;
  allowedFps: number;
  lastDrawnSeq: number;
  classesSeen: Set<string>;
  watchAbort: AbortController;
  stopped: boolean;
}

let run: Run | undefined;

type RunState = "idle" | "starting" | "running" | "error";

const apiKey = (): string | undefined => ui.apiKey.value.trim() || undefined;

function config(): ConfigPatch {
  return { fps_limit: Number(ui.fps.value), confidence_threshold: Number(ui.conf.value), enable_tracking: ui.tracking.checked };
}

/** The run's state (also on the stage, for automation). */
function setState(state: RunState, text: string): void {
  ui.status.textContent = text;
  ui.status.dataset.state = state;
  ui.stage.dataset.state = state;
}

/** A problem with one frame or one request: shown, while the run goes on. */
function notice(text: string): void {
  ui.status.textContent = text;
  ui.status.dataset.state = "warn";
}

const doorInfo = (kind: string) => DOORS.find((d) => d.kind === kind);

function showDoorNote(): void {
  const info = doorInfo(ui.door.value);
  ui.doorNote.textContent = info?.note ?? "";
  ui.tracking.disabled = info?.kind === "connect-unary";
}

async function start(): Promise<void> {
  await stop();
  setState("starting", "starting…");
  ui.start.disabled = true;
  let source: FrameSource | undefined;
  try {
    source = await openSource();
    const kind = ui.door.value as DoorKind;
    // Events may come before openDoor resolves (a WebSocket's first notices): held until the run exists.
    const early: DoorEvent[] = [];
    let current: Run | undefined;
    const door = await openDoor(kind, {
      baseUrl: location.origin,
      apiKey: apiKey(),
      config: config(),
      onEvent: (e) => (current ? onDoorEvent(current, e) : early.push(e)),
    });
    current = {
      door,
      source,
      stats: new LiveStats(),
      inFlight: new Map(),
      seq: 0,
      timer: undefined,
      allowedFps: Infinity,
      lastDrawnSeq: 0,
      classesSeen: new Set(),
      watchAbort: new AbortController(),
      stopped: false,
    };
    run = current;
    ui.viewer.style.setProperty("--aspect", String(source.width / source.height));
    ui.placeholder.hidden = true;
    Object.assign(ui.stage.dataset, {
      results: "0",
      boxes: "0",
      classes: "",
      configVersion: "1",
      maxInFlight: "0",
      door: kind,
      clientId: door.clientId ?? "",
    });
    watchPanel.reset(ui.watch.checked && door.clientId !== undefined);
    if (ui.watch.checked && door.clientId) void watchPanel.watch(location.origin, apiKey(), door.clientId, current.watchAbort.signal);
    ui.stop.disabled = false;
    setState("running", `${doorInfo(kind)?.label ?? kind} · ${source.label}`);
    for (const e of early) onDoorEvent(current, e);
    tick(current);
  } catch (err) {
    source?.stop();
    ui.start.disabled = false;
    setState("error", `could not start: ${messageOf(err)}`);
  }
}

async function openSource(): Promise<FrameSource> {
  ui.video.hidden = false;
  ui.still.hidden = true;
  if (ui.source.value === "camera") return cameraSource(ui.video);
  const file = ui.file.files?.[0];
  if (!file) throw new Error("choose a video or image file first");
  const src = await fileSource(file, ui.video, ui.still);
  ui.video.hidden = src.element !== ui.video;
  ui.still.hidden = src.element !== ui.still;
  return src;
}

async function stop(): Promise<void> {
  const r = run;
  run = undefined;
  if (!r) return;
  r.stopped = true;
  clearTimeout(r.timer);
  r.watchAbort.abort();
  r.source.stop();
  await r.door.close();
  clearBoxes(ui.overlay);
  ui.detections.replaceChildren();
  ui.placeholder.hidden = false;
  ui.start.disabled = false;
  ui.stop.disabled = true;
  setState("idle", "stopped");
}

/** One frame per interval; the interval follows config changes and the server's allowance. */
function tick(r: Run): void {
  if (r.stopped) return;
  const fps = Math.min(Number(ui.fps.value), r.allowedFps);
  r.timer = setTimeout(() => tick(r), 1000 / Math.max(fps, 0.5));
  const now = performance.now();
  for (const [id, sentAt] of r.inFlight) {
    if (now - sentAt > ANSWER_TIMEOUT_MS) {
      r.inFlight.delete(id);
      r.stats.lost++;
    }
  }
  if (r.inFlight.size >= (ui.pipelining.checked ? MAX_PIPELINE : 1)) {
    r.stats.skipped++;
    return;
  }
  const id = `f${++r.seq}`;
  r.inFlight.set(id, now);
  if (r.inFlight.size > Number(ui.stage.dataset.maxInFlight ?? 0)) ui.stage.dataset.maxInFlight = String(r.inFlight.size);
  grabber.grab(r.source).then(
    (jpeg) => {
      if (r.stopped) return;
      r.stats.sent++;
      r.door.send(jpeg, id);
    },
    (err: unknown) => {
      r.inFlight.delete(id);
      r.stats.errors++;
      notice(`frame capture failed: ${messageOf(err)}`);
    },
  );
  renderStats(r);
}

function onDoorEvent(r: Run, e: DoorEvent): void {
  if (r.stopped) return;
  const now = performance.now();
  switch (e.kind) {
    case "result": {
      const sentAt = r.inFlight.get(e.frameId);
      r.inFlight.delete(e.frameId);
      r.stats.result(now, sentAt === undefined ? 0 : now - sentAt, e.processingMs);
      // Unique hazards as the server counts them: confirmed tracks only.
      for (const b of e.boxes) if (b.trackId !== undefined && b.confirmed) r.stats.track(b.className, b.trackId);
      // With pipelining, answers may overtake each other: never draw an older frame over a newer one.
      const seq = Number(e.frameId.slice(1));
      if (seq >= r.lastDrawnSeq) {
        r.lastDrawnSeq = seq;
        showResult(r, e.boxes, e.width, e.height, e.configVersion);
      }
      break;
    }
    case "dropped":
      r.inFlight.delete(e.frameId);
      r.stats.dropped++;
      break;
    case "error":
      if (e.frameId !== undefined) r.inFlight.delete(e.frameId);
      r.stats.errors++;
      notice(`${e.code}: ${e.message}`);
      break;
    case "allowance":
      r.allowedFps = e.fps > 0 ? e.fps : Infinity;
      break;
    case "config":
      ui.configNote.textContent = `config v${e.version} applied`;
      break;
    case "closed":
      // The session is gone (deleted elsewhere, expired, server shutdown): nothing more will come.
      r.stopped = true;
      clearTimeout(r.timer);
      setState("error", e.reason);
      ui.start.disabled = false;
      break;
    case "hazard":
      break;
  }
  renderStats(r);
}

function showResult(r: Run, boxes: readonly Box[], width: number, height: number, configVersion: number): void {
  drawBoxes(ui.overlay, width, height, boxes);
  for (const b of boxes) r.classesSeen.add(b.className);
  Object.assign(ui.stage.dataset, {
    results: String(r.stats.results),
    boxes: String(boxes.length),
    classes: [...r.classesSeen].sort().join(","),
    configVersion: String(configVersion),
  });
  ui.configNote.textContent = `results use config v${configVersion}`;
  ui.detections.replaceChildren(
    ...boxes.map((b) => {
      const li = document.createElement("li");
      li.textContent = labelOf(b);
      li.style.setProperty("--swatch", colorOf(b.className));
      li.dataset.class = b.className;
      li.dataset.confidence = b.confidence.toFixed(4);
      li.dataset.bbox = [b.x1, b.y1, b.x2, b.y2].map((v) => v.toFixed(1)).join(",");
      if (b.trackId !== undefined) li.dataset.track = String(b.trackId);
      return li;
    }),
  );
}

function renderStats(r: Run): void {
  const s = r.stats;
  const ms = (v: number | undefined) => (v === undefined ? "–" : `${v.toFixed(0)} ms`);
  ui.stat.fps.textContent = s.fps(performance.now()).toFixed(1);
  ui.stat.latency.textContent = ms(s.latencyMs());
  ui.stat.server.textContent = ms(s.serverProcessingMs());
  ui.stat.drops.textContent = `${s.dropped}${s.skipped ? ` (+${s.skipped} held)` : ""}${s.lost ? ` (${s.lost} lost)` : ""}`;
  const unique = [...s.uniqueHazards()].map(([c, n]) => `${n} ${c}`).join(", ");
  ui.stat.hazards.textContent = r.door.tracking && ui.tracking.checked ? unique || "0" : "n/a";
  ui.stat.inflight.textContent = String(r.inFlight.size);
}

/** Sliders report while dragging ("input"); the session is told once the value settles ("change"). */
async function pushConfig(): Promise<void> {
  const r = run;
  if (!r || r.stopped) return;
  try {
    await r.door.updateConfig(config());
    ui.configNote.textContent = "config sent…";
  } catch (err) {
    notice(`config refused: ${messageOf(err)}`);
  }
}

for (const d of DOORS) ui.door.add(new Option(d.label, d.kind));
ui.fps.addEventListener("input", () => (ui.fpsOut.value = ui.fps.value));
ui.conf.addEventListener("input", () => (ui.confOut.value = Number(ui.conf.value).toFixed(2)));
for (const input of [ui.fps, ui.conf, ui.tracking]) input.addEventListener("change", () => void pushConfig());
ui.source.addEventListener("change", () => {
  ui.file.hidden = ui.source.value !== "file";
});
ui.door.addEventListener("change", () => {
  showDoorNote();
  if (run) void start();
});
ui.start.addEventListener("click", () => void start());
ui.stop.addEventListener("click", () => void stop());
window.addEventListener("pagehide", () => void stop());
showDoorNote();
ui.fpsOut.value = ui.fps.value;
ui.confOut.value = Number(ui.conf.value).toFixed(2);
setState("idle", "idle");
