import type { BenchFrame } from "./frames.js";
import type { DoorSession, OutcomeSink, ServerTimings } from "./doors/types.js";

/** One frame's fate as this client saw it. */
interface Sent {
  atMs: number;
  inWindow: boolean;
}

export interface ReceivedResult {
  latencyMs: number;
  atMs: number;
  server: ServerTimings;
}

/**
 * A well-behaved camera: offers `fps` frames a second on a fixed schedule, keeps at most
 * `inflight` frames unanswered (a frame due while that many are out is skipped, not queued), and
 * slows to the server's allowed_fps when told. Frames sent inside the measurement window count.
 */
export class SessionRunner implements OutcomeSink {
  private readonly pending = new Map<number, Sent>();
  private seq = 0;
  private allowed: number;
  private settledWaiters: Array<() => void> = [];
  door: DoorSession | undefined;
  windowStart = Number.POSITIVE_INFINITY;
  windowEnd = Number.POSITIVE_INFINITY;
  readonly results: ReceivedResult[] = [];
  readonly drops = new Map<string, number>();
  readonly errors: string[] = [];
  sentInWindow = 0;
  skippedByClient = 0;
  minAllowedFps: number;

  constructor(
    private readonly fps: number,
    private readonly inflight: number,
    private readonly honorFlowControl: boolean,
    private readonly frames: readonly BenchFrame[],
    private readonly offset: number,
  ) {
    this.allowed = fps;
    this.minAllowedFps = fps;
  }

  get inFlight(): number {
    return this.pending.size;
  }

  /** Sends on schedule until `stopAt` (performance.now() ms). */
  async pace(startAt: number, stopAt: number): Promise<void> {
    // A random phase: real cameras are not synchronised, and lockstep sends would queue in bursts.
    let due = startAt + Math.random() * (1000 / this.fps);
    for (;;) {
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const now = performance.now();
      if (now >= stopAt) return;
      if (this.pending.size < this.inflight) this.sendOne(now);
      else if (now >= this.windowStart && now < this.windowEnd) this.skippedByClient++;
      const rate = this.honorFlowControl ? Math.min(this.fps, this.allowed) : this.fps;
      due += 1000 / rate;
      // After a stall (GC, a busy bench loop) resume the schedule instead of bursting to catch up.
      if (due < now) due = now;
    }
  }

  private sendOne(now: number): void {
    const seq = ++this.seq;
    const inWindow = now >= this.windowStart && now < this.windowEnd;
    if (inWindow) this.sentInWindow++;
    this.pending.set(seq, { atMs: now, inWindow });
    const frame = this.frames[(this.offset + seq) % this.frames.length];
    if (frame) this.door?.send(frame, seq);
  }

  /** Resolves once nothing is in flight, or after `timeoutMs`. */
  async settled(timeoutMs: number): Promise<void> {
    if (this.pending.size === 0) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, timeoutMs);
      this.settledWaiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  /** Frames sent in the window that never got an answer. */
  get unanswered(): number {
    let n = 0;
    for (const s of this.pending.values()) if (s.inWindow) n++;
    return n;
  }

  private settle(seq: number): Sent | undefined {
    const s = this.pending.get(seq);
    if (!s) return undefined;
    this.pending.delete(seq);
    if (this.pending.size === 0) {
      const ws = this.settledWaiters;
      this.settledWaiters = [];
      for (const w of ws) w();
    }
    return s;
  }

  result(seq: number, server: ServerTimings): void {
    const now = performance.now();
    const s = this.settle(seq);
    if (s?.inWindow) this.results.push({ latencyMs: now - s.atMs, atMs: now, server });
  }

  dropped(seq: number, reason: string): void {
    const s = this.settle(seq);
    if (s?.inWindow) this.drops.set(reason, (this.drops.get(reason) ?? 0) + 1);
  }

  failed(seq: number | undefined, message: string): void {
    const s = seq === undefined ? undefined : this.settle(seq);
    if (seq === undefined || s?.inWindow) this.errors.push(message);
  }

  allowedFps(fps: number): void {
    this.allowed = fps;
    this.minAllowedFps = Math.min(this.minAllowedFps, fps);
  }
}
