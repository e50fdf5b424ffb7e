import { ConnectError } from "@connectrpc/connect";

/** The page's elements, looked up once; a missing one fails at load, not at first use. */

function el<T extends HTMLElement>(id: string, type: new () => T): T {
  const e = document.getElementById(id);
  if (!(e instanceof type)) throw new Error(`#${id} is missing from the page`);
  return e;
}

export function findElements() {
  return {
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
    apiKey: el("api-key", HTMLInputElement),
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
}

export type PageElements = ReturnType<typeof findElements>;

export function messageOf(err: unknown): string {
  if (err instanceof ConnectError) return err.rawMessage;
  return err instanceof Error ? err.message : String(err);
}
