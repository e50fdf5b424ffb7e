import { ConnectError } from "@connectrpc/connect";
import { HazardStreamClient, type ConfigPatch } from "../../client/index.js";
import { cameraSource, fileSource, JpegGrabber, type FrameSource } from "./capture.js";
import { DOORS, openDoor, watchEvent, type Box, type Door, type DoorEvent, type DoorKind } from "./doors.js";
import { clearBoxes, colorOf, drawBoxes, labelOf } from "./overlay.js";
import { LiveStats } from "./stats.js";

/**
 * The demo page: DOM wiring only. Frames leave at the session's FPS (or the server's lower
 * allowance), at most one unanswered at a time unless "pipelining" is ticked — a camera produces
 * frames faster than a loaded server answers them, and queueing them only adds latency.
 *
 * For automation (the browser test) the page mirrors its state in data attributes: #stage
 * data-state / data-results / data-boxes / data-classes / data-config-version / data-max-in-flight, #watch-summary
 * data-events / data-results.
 */

function el<T extends HTMLElement>(id: string, type: new () => T): T {
  const e = document.getElementById(id);
  if (!(e instanceof type)) throw new Error(`#${id} is missing from the page`);
  return e;
}

const ui = {
  viewer: el("viewer", HTMLElement),
  stage: el("stage", HTMLDivElement),
  video: el("video", HTMLVideoElement),
  still: el("still", HTMLImageElement),
  overlay: el("overlay", HTMLCanvasElement),
  placeholder: el("placeholder", HTMLParagraphElement),
  status: el("status", HTMLSpanElement),
  source: el("source", HTMLSelectElement),
  file: el("file", HTMLInputElement),
  door: el("door", HTMLSelectElement),
  doorNote: el("door-note", HTMLParagraphElement),
  fps: el("fps", HTMLInputElement),
  fpsOut: el("fps-out", HTMLOutputElement),
  conf: el("conf", HTMLInputElement),
  confOut: el("conf-out", HTMLOutputElement),
  tracking: el("tracking", HTMLInputElement),
  pipelining: el("pipelining", HTMLInputElement),
  watch: el("watch", HTMLInputElement),
  configNote: el("config-note", HTMLParagraphElement),
  start: el("start", HTMLButtonElement),
  stop: el("stop", HTMLButtonElement),
  detections: el("detections", HTMLOListElement),
  watchSummary: el("watch-summary", HTMLParagraphElement),
  watchLog: el("watch-log", HTMLOListElement),
  stat: {
    fps: el("stat-fps", HTMLElement),
    latency: el("stat-latency", HTMLElement),
    server: el("stat-server", HTMLElement),
    drops: el("stat-drops", HTMLElement),
    hazards: el("stat-hazards", HTMLElement),
    inflight: el("stat-inflight", HTMLElement),
  },
};

/** More than this in flight only fills server queues (frames get SUPERSEDED there). */
const MAX_PIPELINE = 4;
/** An answer later than this is given up on, so one lost message cannot stall the stream. */
const ANSWER_TIMEOUT_MS = 5000;
const WATCH_LOG_LINES = 12;

interface Run {
  door: Door;
  source: FrameSource;
  stats: LiveStats;
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
const grabber = new JpegGrabber();

for (const d of DOORS) ui.door.add(new Option(d.label, d.kind));
const doorInfo = (kind: string) => DOORS.find((d) => d.kind === kind) ?? DOORS[0];

function config(): ConfigPatch {
  return { fps_limit: Number(ui.fps.value), confidence_threshold: Number(ui.conf.value), enable_tracking: ui.tracking.checked };
}

function setStatus(text: string, state: "idle" | "starting" | "running" | "error"): void {
  ui.status.textContent = text;
  ui.status.dataset.state = state;
  ui.stage.dataset.state = state;
}

function showDoorNote(): void {
  const info = doorInfo(ui.door.value);
  ui.doorNote.textContent = info?.note ?? "";
  ui.tracking.disabled = info?.kind === "connect-unary";
}

async function start(): Promise<void> {
  await stop();
  setStatus("starting…", "starting");
  ui.start.disabled = true;
  let source: FrameSource | undefined;
  try {
    source = await openSource();
    const kind = ui.door.value as DoorKind;
    const stats = new LiveStats();
    const pending: DoorEvent[] = [];
    let current: Run | undefined;
    const door = await openDoor(kind, {
      baseUrl: location.origin,
      config: config(),
      onEvent: (e) => (current ? onDoorEvent(current, e) : pending.push(e)),
    });
    current = {
      door,
      source,
      stats,
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
    for (const e of pending) onDoorEvent(current, e);
    ui.viewer.style.setProperty("--aspect", String(source.width / source.height));
    ui.placeholder.hidden = true;
    ui.stage.dataset.results = "0";
    ui.stage.dataset.maxInFlight = "0";
    ui.stage.dataset.classes = "";
    ui.stage.dataset.configVersion = "1";
    ui.stage.dataset.door = kind;
    ui.stage.dataset.clientId = door.clientId ?? "";
    resetWatchPanel();
    if (ui.watch.checked && door.clientId) void watchSession(current, door.clientId);
    ui.stop.disabled = false;
    setStatus(`${doorInfo(kind)?.label ?? kind} · ${source.label}`, "running");
    tick(current);
  } catch (err) {
    source?.stop();
    ui.start.disabled = false;
    setStatus(`could not start: ${messageOf(err)}`, "error");
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
  ui.placeholder.hidden = false;
  ui.start.disabled = false;
  ui.stop.disabled = true;
  setStatus("stopped", "idle");
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
      setStatus(`frame capture failed: ${messageOf(err)}`, "error");
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
      for (const b of e.boxes) if (b.trackId !== undefined) r.stats.track(b.className, b.trackId);
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
      setStatus(`${e.code}: ${e.message}`, "error");
      break;
    case "allowance":
      r.allowedFps = e.fps > 0 ? e.fps : Infinity;
      break;
    case "config":
      ui.configNote.textContent = `config v${e.version} applied`;
      break;
    case "hazard":
    case "closed":
      if (e.kind === "closed") setStatus(e.reason, "error");
      break;
  }
  renderStats(r);
}

function showResult(r: Run, boxes: readonly Box[], width: number, height: number, configVersion: number): void {
  drawBoxes(ui.overlay, width, height, boxes);
  for (const b of boxes) r.classesSeen.add(b.className);
  ui.stage.dataset.results = String(r.stats.results);
  ui.stage.dataset.boxes = String(boxes.length);
  ui.stage.dataset.classes = [...r.classesSeen].sort().join(",");
  ui.stage.dataset.configVersion = String(configVersion);
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
  const now = performance.now();
  const s = r.stats;
  const ms = (v: number | undefined) => (v === undefined ? "–" : `${v.toFixed(0)} ms`);
  ui.stat.fps.textContent = s.fps(now).toFixed(1);
  ui.stat.latency.textContent = ms(s.latencyMs());
  ui.stat.server.textContent = ms(s.serverProcessingMs());
  ui.stat.drops.textContent = `${s.dropped}${s.skipped ? ` (+${s.skipped} held)` : ""}${s.lost ? ` (${s.lost} lost)` : ""}`;
  const unique = [...s.uniqueHazards()].map(([c, n]) => `${n} ${c}`).join(", ");
  ui.stat.hazards.textContent = r.door.tracking && ui.tracking.checked ? unique || "0" : "n/a";
  ui.stat.inflight.textContent = String(r.inFlight.size);
}

/** A second look at the same session over gRPC-Web server streaming: what any other client would see. */
async function watchSession(r: Run, clientId: string): Promise<void> {
  const client = new HazardStreamClient({ baseUrl: location.origin, protocol: "grpc-web" });
  const counts = new Map<string, number>();
  let events = 0;
  try {
    for await (const ev of client.watchSession(clientId, { signal: r.watchAbort.signal })) {
      const e = watchEvent(ev);
      const kind = ev.event.case ?? "unknown";
      events++;
      counts.set(kind, (counts.get(kind) ?? 0) + 1);
      ui.watchSummary.dataset.events = String(events);
      ui.watchSummary.dataset.results = String(counts.get("result") ?? 0);
      ui.watchSummary.textContent = [...counts].map(([k, n]) => `${k} ${n}`).join(" · ");
      const li = document.createElement("li");
      li.textContent = `#${ev.eventId} ${kind}${e?.kind === "result" ? ` ${e.frameId}: ${e.boxes.map((b) => b.className).join(", ") || "nothing"}` : ""}`;
      ui.watchLog.prepend(li);
      while (ui.watchLog.childElementCount > WATCH_LOG_LINES) ui.watchLog.lastElementChild?.remove();
    }
  } catch (err) {
    if (!r.watchAbort.signal.aborted) ui.watchSummary.textContent = `watch failed: ${messageOf(err)}`;
  }
}

function resetWatchPanel(): void {
  ui.watchSummary.dataset.events = "0";
  ui.watchSummary.dataset.results = "0";
  ui.watchSummary.textContent = ui.watch.checked ? "waiting for events…" : "off";
  ui.watchLog.replaceChildren();
}

function messageOf(err: unknown): string {
  if (err instanceof ConnectError) return err.rawMessage;
  return err instanceof Error ? err.message : String(err);
}

/** Sliders report while dragging; the session is told once the value settles. */
async function pushConfig(): Promise<void> {
  const r = run;
  if (!r) return;
  try {
    await r.door.updateConfig(config());
    ui.configNote.textContent = "config sent…";
  } catch (err) {
    setStatus(`config refused: ${messageOf(err)}`, "error");
  }
}

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
setStatus("idle", "idle");
