import { pino } from "pino";
import { afterEach, describe, expect, it, vi } from "vitest";
import { Door } from "../gen/hazard/stream/v1/session_pb.js";
import { FrameSchema, Quality } from "../gen/hazard/stream/v1/types_pb.js";
import { create } from "@bufbuild/protobuf";
import type { DetectOptions, FrameDetections } from "../src/pipeline/types.js";
import { demandOf, fairLevel, MIN_ALLOWED_FPS, splitAllowance } from "../src/streaming/allowance.js";
import { FrameScheduler, type FrameSource } from "../src/streaming/frame-scheduler.js";
import { LoadMonitor } from "../src/streaming/load-monitor.js";
import { defaultSlots, SessionManager, TARGET_UTILISATION, type FrameDetector } from "../src/streaming/session-manager.js";
import { ServerBusyError, UnaryQueue } from "../src/streaming/unary-queue.js";
import { MemoryStore } from "../src/store/memory-store.js";

/**
 * A deterministic model of the engine: `workers` runs at once (FIFO for a free one), each taking
 * `inferenceMs`, after `preprocessMs` of decoding that needs no worker — the shape of the ORT pool
 * behind the scheduler's slots. Drives a LoadMonitor with the slot start/finish times it produces.
 */
function simulate(opts: {
  slots: number;
  workers: number;
  preprocessMs: number;
  inferenceMs: number;
  /** Frames offered per second; Infinity keeps every slot busy. */
  offeredFps: number;
  seconds: number;
  monitor: LoadMonitor;
}): { processed: number } {
  const { slots, workers, preprocessMs, inferenceMs, monitor } = opts;
  const workerFree = Array.from({ length: workers }, () => 0);
  const slotFree = Array.from({ length: slots }, () => 0);
  const events: Array<{ at: number; kind: "start" | "finish" }> = [];
  const interval = Number.isFinite(opts.offeredFps) ? 1000 / opts.offeredFps : 0;
  let processed = 0;
  let arrival = 0;
  for (;;) {
    const slot = slotFree.indexOf(Math.min(...slotFree));
    const start = Math.max(arrival, slotFree[slot] ?? 0);
    if (start >= opts.seconds * 1000) break;
    const w = workerFree.indexOf(Math.min(...workerFree));
    const finish = Math.max(start + preprocessMs, workerFree[w] ?? 0) + inferenceMs;
    workerFree[w] = finish;
    slotFree[slot] = finish;
    events.push({ at: start, kind: "start" }, { at: finish, kind: "finish" });
    // Saturated: the next frame is already waiting when a slot frees up.
    arrival = interval > 0 ? arrival + interval : Math.min(...slotFree);
  }
  events.sort((a, b) => a.at - b.at || (a.kind === "finish" ? -1 : 1));
  let nextTick = 1000;
  for (const e of events) {
    while (e.at >= nextTick) monitor.tick(nextTick), (nextTick += 1000);
    if (e.kind === "start") monitor.frameStarted(e.at);
    else {
      monitor.frameFinished(e.at);
      processed++;
    }
  }
  return { processed };
}

describe("LoadMonitor capacity estimate", () => {
  it("equals the delivered throughput when every slot is busy, even with more slots than workers", () => {
    // Three slots on two workers: the old estimate (1000 / time in slot × 2 workers) said 2/3 of this.
    const monitor = new LoadMonitor(3);
    simulate({ slots: 3, workers: 2, preprocessMs: 10, inferenceMs: 40, offeredFps: Number.POSITIVE_INFINITY, seconds: 10, monitor });
    expect(monitor.lastSample?.saturated).toBe(true);
    expect(monitor.capacityFps).toBeGreaterThan(0.97 * 50); // 2 workers / 40 ms
    expect(monitor.capacityFps).toBeLessThan(1.03 * 50);
  });

  it("with one slot per worker, saturated, also lands on the throughput", () => {
    const monitor = new LoadMonitor(2);
    simulate({ slots: 2, workers: 2, preprocessMs: 10, inferenceMs: 40, offeredFps: Number.POSITIVE_INFINITY, seconds: 10, monitor });
    expect(monitor.capacityFps).toBeCloseTo(2000 / 50, 0); // each slot: 50 ms a frame
  });

  it("below saturation extrapolates to all slots busy, rising at most 15 % per sample", () => {
    const monitor = new LoadMonitor(2);
    simulate({ slots: 2, workers: 2, preprocessMs: 10, inferenceMs: 40, offeredFps: 10, seconds: 3, monitor });
    // One frame in flight half the time: 10 fps delivered, 40 fps if both slots were kept busy.
    expect(monitor.lastSample?.saturated).toBe(false);
    expect(monitor.lastSample?.throughputFps).toBeCloseTo(10, 0);
    expect(monitor.capacityFps).toBeCloseTo(40, 0);

    const capped = new LoadMonitor(2);
    simulate({ slots: 2, workers: 2, preprocessMs: 10, inferenceMs: 90, offeredFps: Number.POSITIVE_INFINITY, seconds: 3, monitor: capped });
    expect(Math.abs(capped.capacityFps - 20)).toBeLessThan(1); // 2 slots / 100 ms
    // The engine got faster (AUTO quality stepped down); an unsaturated sample may raise it ×1.15 per tick.
    const before = capped.capacityFps;
    for (let t = 3000; t < 3400; t += 50) {
      capped.frameStarted(t);
      capped.frameFinished(t + 25);
    }
    capped.tick(4000);
    expect(capped.capacityFps).toBeCloseTo(before * 1.15, 6);
  });

  it("merges ticks of a slow model until a sample has enough frames, and ignores idle time", () => {
    const monitor = new LoadMonitor(1);
    // 400 ms a frame, one at a time: 2.5 fps; a 1-second tick holds 2–3 frames.
    let t = 0;
    for (let i = 0; i < 3; i++, t += 400) monitor.frameStarted(t), monitor.frameFinished(t + 400);
    monitor.tick(1000);
    expect(monitor.capacityFps).toBe(Number.POSITIVE_INFINITY);
    for (let i = 0; i < 3; i++, t += 400) monitor.frameStarted(t), monitor.frameFinished(t + 400);
    monitor.tick(2400);
    expect(monitor.capacityFps).toBeCloseTo(2.5, 6);
    // Ten idle seconds, then the same work: the idle time is not "capacity".
    monitor.tick(12_400);
    for (let i = 0; i < 6; i++) monitor.frameStarted(12_400 + i * 400), monitor.frameFinished(12_800 + i * 400);
    monitor.tick(14_800);
    expect(monitor.capacityFps).toBeCloseTo(2.5, 6);
  });
});

describe("allowance split", () => {
  const same = (n: number, limit = 10) => Array.from({ length: n }, () => ({ limitFps: limit, demandFps: limit }));

  it("rounds each share to the nearest 0.1 fps instead of flooring to 0.5-fps steps", () => {
    // 35 sessions sharing 0.9 × 68 fps: 1.75 each. Flooring to 0.5 gave 1.5 (−14 %).
    const allowed = splitAllowance(0.9 * 68, same(35));
    expect(new Set(allowed)).toEqual(new Set([1.7]));
    expect(allowed.reduce((a, b) => a + b, 0)).toBeCloseTo(0.9 * 68, -1);
    expect(splitAllowance(45, same(14))).toEqual(Array(14).fill(3.2)); // 3.214…
  });

  it("gives sessions that use less all they use and the rest to the others (max-min fair)", () => {
    const claimants = [
      { limitFps: 10, demandFps: 2 }, // a 2-fps camera
      { limitFps: 10, demandFps: 10 },
      { limitFps: 10, demandFps: 10 },
      { limitFps: 5, demandFps: 5 },
    ];
    expect(fairLevel(20, claimants)).toBeCloseTo(6.5, 6); // (20 − 2 − 5) / 2
    expect(splitAllowance(20, claimants)).toEqual([6.5, 6.5, 6.5, 5]);
    expect(fairLevel(40, claimants)).toBe(Number.POSITIVE_INFINITY);
    expect(splitAllowance(40, claimants)).toEqual([10, 10, 10, 5]);
  });

  it("never goes below the minimum, and an unknown capacity allows every limit", () => {
    expect(splitAllowance(3, same(20))).toEqual(Array(20).fill(MIN_ALLOWED_FPS));
    expect(splitAllowance(Number.POSITIVE_INFINITY, same(3, 7))).toEqual([7, 7, 7]);
  });

  it("reads demand from what a session offered against what it was allowed", () => {
    expect(demandOf(4.9, 5, 10)).toBe(10); // uses its allowance: may want up to its limit
    expect(demandOf(2, 5, 10)).toBe(2.5); // uses less: its rate, with room to grow
    expect(demandOf(0, 5, 10)).toBe(MIN_ALLOWED_FPS);
  });
});

describe("frame scheduler and the unary queue", () => {
  class Source implements FrameSource<string> {
    items: string[] = [];
    constructor(
      readonly name: string,
      readonly maxInFlight?: number,
    ) {}
    hasPending = () => this.items.length > 0;
    takeNext = () => this.items.shift();
  }

  it("gives a multi-frame source one frame per round while others wait, and every slot otherwise", async () => {
    const started: string[] = [];
    const done: Array<() => void> = [];
    const scheduler = new FrameScheduler<Source, string>(2, (_s, f) => {
      started.push(f);
      return new Promise<void>((r) => done.push(r));
    });
    const unary = new Source("unary", 2);
    unary.items = ["u1", "u2", "u3", "u4"];
    scheduler.notify(unary);
    expect(started).toEqual(["u1", "u2"]); // alone: both slots
    const a = new Source("a");
    a.items = ["a1", "a2"];
    scheduler.notify(a);
    const settle = () => new Promise((r) => setTimeout(r, 0));
    done.shift()?.();
    await settle();
    expect(started).toEqual(["u1", "u2", "a1"]); // the waiting session's turn comes first
    done.shift()?.();
    await settle();
    expect(started).toEqual(["u1", "u2", "a1", "u3"]); // the session has its one frame in flight
  });

  it("refuses beyond its capacity with a retry hint, and forgets a call whose caller gave up", async () => {
    const notified: UnaryQueue[] = [];
    const queue = new UnaryQueue(2, 2, (q) => notified.push(q));
    const first = queue.run(async () => 1, () => 500);
    const abort = new AbortController();
    const second = queue.run(async () => 2, () => 500, abort.signal);
    const third = queue.run(async () => 3, () => 750);
    await expect(third).rejects.toBeInstanceOf(ServerBusyError);
    await expect(third).rejects.toMatchObject({ retryAfterMs: 750 });
    abort.abort(new Error("client went away"));
    await expect(second).rejects.toThrow(/went away/);
    expect(queue.length).toBe(1);
    await queue.takeNext()?.run();
    await expect(first).resolves.toBe(1);
    expect(queue.takeArrivals()).toBe(3);
  });
});

describe("slots", () => {
  it("are one per engine run on two cores, one more where cores are to spare", () => {
    expect(defaultSlots(2, 2)).toBe(2);
    expect(defaultSlots(1, 1)).toBe(1);
    expect(defaultSlots(2, 16)).toBe(3);
  });
});

describe("flow control closed loop (fake clock, modelled engine)", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  /**
   * Two workers, 10 ms decode + 40 ms inference: 50 frames/s with a third slot decoding while both
   * workers run, 40 with two (a worker idles while its slot decodes; here decoding takes no CPU).
   */
  function modelledDetector(): FrameDetector {
    let free = 2;
    const waiters: Array<() => void> = [];
    return {
      async detect(_image: Uint8Array, _o: DetectOptions): Promise<FrameDetections> {
        await new Promise((r) => setTimeout(r, 10));
        const t1 = Date.now();
        if (free > 0) free--;
        else await new Promise<void>((r) => waiters.push(r));
        const t2 = Date.now();
        await new Promise((r) => setTimeout(r, 40));
        const next = waiters.shift();
        if (next) next();
        else free++;
        return {
          detections: [],
          imageWidth: 64,
          imageHeight: 64,
          inputWidth: 64,
          inputHeight: 64,
          timings: { preprocessMs: 10, engineWaitMs: t2 - t1, inferenceMs: 40, postprocessMs: 0 },
        };
      },
    };
  }

  it.each([
    [2, 40],
    [3, 50],
  ])("14 cameras at 10 fps, %i slots (%i fps): ≈90 %% of capacity is handed out and delivered", async (slots, capacity) => {
    vi.useFakeTimers({ now: 0 });
    const manager = new SessionManager({
      detector: modelledDetector(),
      store: new MemoryStore(),
      limits: {
        maxFps: 30,
        classNames: ["pothole"],
        dynamicInputSize: false,
        defaults: { fpsLimit: 10, confidenceThreshold: 0.25, iouThreshold: 0.7, enableTracking: false, maxDetections: 300, classNames: [], quality: Quality.UNSPECIFIED },
      },
      queueSize: 5,
      sessionTimeoutMs: 60_000,
      slots,
      model: { inputWidth: 64, inputHeight: 64, stride: 32, dynamicInputSize: false },
      logger: pino({ level: "silent" }),
      now: () => Date.now(),
    });
    manager.start();
    const results: number[] = [];
    const clients = await Promise.all(
      Array.from({ length: 14 }, async (_, i) => {
        const session = await manager.create(Door.SESSION_API);
        const c = { allowed: 10, inFlight: false, stop: false };
        const sub = session.subscribe(1000);
        void (async () => {
          for (;;) {
            const ev = await sub.next();
            if (ev === undefined) return;
            const e = ev.event;
            if (e.case === "flowControl") c.allowed = e.value.allowedFps;
            if (e.case === "result") results.push(Date.now());
            if (e.case === "result" || e.case === "dropped" || e.case === "error") c.inFlight = false;
          }
        })();
        // A well-behaved camera: one frame in flight, paced at min(10, allowed).
        const pace = () => {
          if (c.stop) return;
          if (!c.inFlight) {
            c.inFlight = true;
            void manager.submit(session.clientId, create(FrameSchema, { imageData: new Uint8Array(8) }));
          }
          setTimeout(pace, 1000 / Math.min(10, c.allowed));
        };
        setTimeout(pace, (i * 100) / 14);
        return c;
      }),
    );
    await vi.advanceTimersByTimeAsync(30_000);
    for (const c of clients) c.stop = true;
    const delivered = results.filter((t) => t >= 20_000 && t < 30_000).length / 10;
    const told = clients.reduce((sum, c) => sum + c.allowed, 0);
    console.log({ slots, capacityEstimate: manager.load.capacityFps, told, delivered });
    expect(manager.load.capacityFps).toBeGreaterThan(0.9 * capacity);
    expect(manager.load.capacityFps).toBeLessThan(1.1 * capacity);
    expect(told).toBeGreaterThan(0.8 * TARGET_UTILISATION * capacity);
    expect(told).toBeLessThan(1.1 * TARGET_UTILISATION * capacity);
    expect(delivered).toBeGreaterThan(0.8 * capacity);
    await vi.advanceTimersByTimeAsync(2_000);
    await manager.shutdown();
  });
});
