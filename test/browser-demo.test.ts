import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeSwayY4m } from "./support/driving-video.js";
import { startServer, type TestServer } from "./support/server.js";

/**
 * The demo page in a real browser: Debian's Chromium, headless, with a fake camera that plays a
 * synthetic driving clip. Each door streams the camera until boxes of both classes in the clip are
 * drawn, changes the session config mid-stream, and (session doors) shows the session's events
 * from a gRPC-Web WatchSession.
 */

const CHROMIUM = "/usr/bin/chromium";
const hasChromium = existsSync(CHROMIUM);
/** Pinned: synthetic scenes are what this filter model detects, whatever the default becomes. */
const MODEL_PATH = fileURLToPath(new URL("../models/road-hazard-filter.onnx", import.meta.url));
const ARTIFACTS = fileURLToPath(new URL("../test-artifacts/", import.meta.url));
const LAPTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
/** Where the closing note of the change points reviewers. */
const LAPTOP_SHOT = "/tmp/hazard-demo-laptop.png";
const PHONE_SHOT = "/tmp/hazard-demo-phone.png";

/** Road scene 3 (a crack and three potholes) swaying over a 1 s loop at 10 fps. */
const CLIP = { seed: 3, frames: 10, fps: 10 };
/** Box colours of src/web/page/overlay.ts. */
const CLASS_RGB: Record<string, [number, number, number]> = { crack: [0xff, 0xb0, 0x00], pothole: [0xff, 0x2d, 0x6f] };

const DOORS = ["ws-binary", "ws-json", "rest-sse", "connect-unary", "connect-session"] as const;
type DoorKind = (typeof DOORS)[number];

interface Snapshot {
  state: string;
  status: string;
  results: number;
  classes: string[];
  configVersion: number;
  clientId: string;
  boxes: Array<{ className: string; confidence: number; track: string | null; rgba: number[] }>;
  watchEvents: number;
  watchResults: number;
  maxInFlight: number;
  hazards: string;
}

/** Read in the page in one go, so the list of boxes and the canvas pixels belong to the same result. */
const SNAPSHOT = `(() => {
  const stage = document.getElementById("stage");
  const canvas = document.getElementById("overlay");
  const ctx = canvas.getContext("2d");
  const boxes = [...document.querySelectorAll("#detections li")].map((li) => {
    const [x1, y1, x2, y2] = li.dataset.bbox.split(",").map(Number);
    const px = ctx.getImageData(Math.floor(x1), Math.floor((y1 + y2) / 2), 1, 1).data;
    return { className: li.dataset.class, confidence: Number(li.dataset.confidence), track: li.dataset.track ?? null, rgba: [...px] };
  });
  const watch = document.getElementById("watch-summary").dataset;
  return {
    state: stage.dataset.state,
    status: document.getElementById("status").textContent,
    results: Number(stage.dataset.results ?? 0),
    classes: (stage.dataset.classes ?? "").split(",").filter(Boolean),
    configVersion: Number(stage.dataset.configVersion ?? 0),
    clientId: stage.dataset.clientId ?? "",
    boxes,
    watchEvents: Number(watch.events),
    watchResults: Number(watch.results),
    maxInFlight: Number(stage.dataset.maxInFlight ?? 0),
    hazards: document.getElementById("stat-hazards").textContent,
  };
})()`;

function get(baseUrl: string, rawPath: string, headers: Record<string, string> = {}, method = "GET") {
  return new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
    // http.request sends the path as written: "/demo/../x" reaches the server un-normalised.
    const req = http.request(`${baseUrl}${rawPath}`, { method, headers }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

const API_KEY = "browser-demo-key-0123456789";
/** The default service, and one with access control (STREAMING_API_KEYS). */
let server: TestServer | undefined;
let keyed: TestServer | undefined;
let started: Promise<void>;
beforeAll(() => {
  // Loading a model is most of a server's start: both start side by side, and are not awaited
  // here, so the browser suite renders its clip and launches Chromium meanwhile. Every suite
  // awaits `started`. The browser keeps connections open; closing waits for them no longer than
  // SHUTDOWN_TIMEOUT_MS.
  const common = { MODEL_PATH, STREAMING_DEFAULT_FPS: "10", SHUTDOWN_TIMEOUT_MS: "1000" };
  started = Promise.all([
    startServer(common),
    hasChromium ? startServer({ ...common, STREAMING_API_KEYS: API_KEY }) : undefined,
  ]).then(([plain, withKeys]) => {
    server = plain;
    keyed = withKeys;
  });
  // Awaited later; this only keeps an early failure from counting as an unhandled rejection.
  started.catch(() => undefined);
});
afterAll(async () => {
  await started.catch(() => undefined);
  await Promise.all([server?.close(), keyed?.close()]);
});

/** The plain server, once started. */
async function plainServer(): Promise<TestServer> {
  await started;
  if (!server) throw new Error("the server did not start");
  return server;
}

const suite = "demo page in headless Chromium with a fake camera";
if (!hasChromium) console.warn(`skipping "${suite}": ${CHROMIUM} not found (Debian: apt-get install chromium; .ci/run installs it)`);

describe.skipIf(!hasChromium)(hasChromium ? suite : `${suite} — skipped: ${CHROMIUM} not found`, () => {
  let tmp: string;
  let base: string;
  let context: BrowserContext;
  let page: Page;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), "hazard-demo-"));
    const y4m = join(tmp, "road.y4m");
    const frames = await writeSwayY4m(y4m, CLIP);
    // The clip must hold what the test looks for, or a failure would blame the page.
    expect(new Set(frames.flatMap((f) => f.boxes.map((b) => b.className)))).toEqual(new Set(["crack", "pothole"]));
    await mkdir(ARTIFACTS, { recursive: true });
    context = await chromium.launchPersistentContext(join(tmp, "profile"), {
      executablePath: CHROMIUM,
      headless: true,
      viewport: LAPTOP,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        `--use-file-for-fake-video-capture=${y4m}`,
      ],
    });
    base = (await plainServer()).baseUrl;
    await context.grantPermissions(["camera"], { origin: base });
    page = context.pages()[0] ?? (await context.newPage());
    page.on("pageerror", (e) => pageErrors.push(`pageerror: ${e.message}`));
    page.on("console", (m) => {
      if (m.type() === "error") pageErrors.push(`console: ${m.text()}`);
    });
  });

  afterAll(async () => {
    await context?.close();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  const snapshot = () => page.evaluate(SNAPSHOT) as Promise<Snapshot>;

  /**
   * Polls the page until `done` holds; fails with the page's last state and status line. (Polled
   * from here: the page's CSP forbids the eval that page.waitForFunction runs in the page.)
   */
  async function until(what: string, done: (s: Snapshot) => boolean, o: { allowError?: boolean } = {}): Promise<Snapshot> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const s = await snapshot();
      if (done(s)) return s;
      if ((s.state === "error" && !o.allowError) || Date.now() > deadline) {
        throw new Error(`${what}: page is ${s.state} ("${s.status}") after ${s.results} results; ${pageErrors.join("; ")}`);
      }
      await page.waitForTimeout(100);
    }
  }

  async function openPage(door: DoorKind, o: { baseUrl?: string; apiKey?: string } = {}): Promise<void> {
    await page.goto(`${o.baseUrl ?? base}/demo`);
    await page.selectOption("#source", "camera");
    await page.selectOption("#door", door);
    if (o.apiKey) await page.fill("#api-key", o.apiKey);
    await page.click("#start");
  }

  async function startDoor(door: DoorKind, o: { baseUrl?: string; apiKey?: string } = {}): Promise<Snapshot> {
    await openPage(door, o);
    return until("streaming", (s) => s.state === "running" && s.results >= 1);
  }

  /** Boxes of both classes, each drawn on the canvas in its class colour at its left edge. */
  async function bothClassesDrawn(): Promise<Snapshot> {
    const drawn = new Set<string>();
    return until("boxes of both classes drawn", (s) => {
      for (const b of s.boxes) {
        const rgb = CLASS_RGB[b.className];
        if (rgb && b.rgba[3] === 255 && rgb.every((v, i) => v === b.rgba[i])) drawn.add(b.className);
      }
      return drawn.has("crack") && drawn.has("pothole");
    });
  }

  for (const door of DOORS) {
    it(`${door}: detections of the clip's classes arrive and are drawn; config changes apply mid-stream`, async () => {
      await startDoor(door);
      const s = await bothClassesDrawn();
      expect(s.classes.every((c) => c === "crack" || c === "pothole"), s.classes.join()).toBe(true);
      await page.screenshot({ path: join(ARTIFACTS, `browser-demo-${door}.png`) });

      const session = door !== "connect-unary";
      if (session) {
        expect(s.clientId).not.toBe("");
        // Tracking is on by default: boxes carry track ids and unique hazards are counted.
        await until("track ids", (x) => x.boxes.some((b) => b.track !== null));
        // Unique hazards count confirmed tracks only (a few frames after the first detection).
        const counted = await until("unique hazards", (x) => /\d+ (crack|pothole)/.test(x.hazards));
        expect(counted.hazards).toMatch(/\d+ (crack|pothole)/);
        // The same session seen from another client: a gRPC-Web WatchSession from the page.
        await until("WatchSession results", (x) => x.watchResults > 0);
      } else {
        expect(s.hazards).toBe("n/a");
      }

      // Mid-stream: a higher threshold (and tracking off, where there is a session).
      const before = (await snapshot()).configVersion;
      await page.fill("#conf", "0.6");
      if (session) await page.uncheck("#tracking");
      const changes = session ? 2 : 1;
      const after = await until(
        "results under the new config",
        (x) => x.configVersion >= before + changes && x.boxes.length > 0,
      );
      expect(after.boxes.every((b) => b.confidence >= 0.6), JSON.stringify(after.boxes)).toBe(true);
      expect(after.boxes.every((b) => b.track === null)).toBe(true);

      await page.click("#stop");
      await until("stopped", (x) => x.state === "idle");
      expect(pageErrors).toEqual([]);
    });
  }

  it("sends the API key a server with STREAMING_API_KEYS asks for, on every kind of door", async () => {
    if (!keyed) throw new Error("the keyed server did not start");
    await context.grantPermissions(["camera"], { origin: keyed.baseUrl });
    // Query parameter (WebSocket), header + query (REST + EventSource), headers (Connect, gRPC-Web).
    for (const door of ["ws-binary", "rest-sse", "connect-session"] as const) {
      const s = await startDoor(door, { baseUrl: keyed.baseUrl, apiKey: API_KEY });
      expect(s.results, door).toBeGreaterThan(0);
      if (door === "connect-session") await until("WatchSession results", (x) => x.watchResults > 0);
      await page.click("#stop");
    }
    await openPage("connect-session", { baseUrl: keyed.baseUrl });
    const refused = await until("refusal", (x) => x.state === "error", { allowError: true });
    expect(refused.status).toContain("API key");
  });

  it("keeps one frame in flight at a time unless pipelining is ticked", async () => {
    await startDoor("ws-binary");
    await page.fill("#fps", "30");
    const first = (await snapshot()).results;
    await until("more results at 30 fps", (x) => x.results >= first + 10);
    expect((await snapshot()).maxInFlight).toBe(1);
    await page.check("#pipelining");
    // A frame leaves every 33 ms; each takes longer than that to come back (encode, upload, inference).
    await until("several frames in flight", (x) => x.maxInFlight > 1);
    expect((await snapshot()).maxInFlight).toBeLessThanOrEqual(4);
    await page.click("#stop");
  });

  it("lays out on a laptop and on a phone (screenshots for review)", async () => {
    await page.setViewportSize(LAPTOP);
    await startDoor("ws-binary");
    await bothClassesDrawn();
    await page.screenshot({ path: LAPTOP_SHOT });
    await page.setViewportSize(PHONE);
    await bothClassesDrawn();
    // Nothing wider than the phone's viewport: no sideways scrolling.
    expect(await page.evaluate("document.documentElement.scrollWidth")).toBeLessThanOrEqual(PHONE.width);
    await page.screenshot({ path: PHONE_SHOT, fullPage: true });
    await page.click("#stop");
    await page.setViewportSize(LAPTOP);
  });
});

describe("demo page assets", () => {
  let base: string;
  beforeAll(async () => {
    base = (await plainServer()).baseUrl;
  });

  it("redirects / to /demo and serves the page with a strict Content-Security-Policy", async () => {
    const root = await get(base, "/");
    expect(root.status).toBe(302);
    expect(root.headers.location).toBe("/demo");
    const page = await get(base, "/demo/");
    expect(page.status).toBe(200);
    expect(page.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(page.headers["content-security-policy"]).toContain("script-src 'self'");
    expect(page.headers["x-content-type-options"]).toBe("nosniff");
    expect(page.body).toContain('src="/demo/demo.js"');
    const js = await get(base, "/demo/demo.js");
    expect(js.status).toBe(200);
    expect(js.headers["content-type"]).toBe("text/javascript; charset=utf-8");
    const again = await get(base, "/demo/demo.js", { "If-None-Match": String(js.headers.etag) });
    expect(again.status).toBe(304);
    const head = await get(base, "/demo/demo.css", {}, "HEAD");
    expect(head.status).toBe(200);
    expect(head.body).toBe("");
  });

  it("serves only its fixed assets: no file path reaches the file system", async () => {
    for (const path of ["/demo/main.ts", "/demo/demo.html", "/demo/../package.json", "/demo/%2e%2e/src/main.ts", "/demo/..%2fpackage.json", "/package.json"]) {
      const res = await get(base, path);
      expect(res.status, path).toBe(404);
      expect(res.body, path).not.toContain("hazard-stream");
    }
    expect((await get(base, "/demo", {}, "POST")).status).toBe(405);
  });
});
