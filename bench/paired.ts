import type { BarePipeline } from "./bare.js";
import type { DoorName } from "./cli.js";
import { OPENERS } from "./doors/index.js";
import type { DoorSession, ServerTimings } from "./doors/types.js";
import type { FrameSet } from "./frames.js";
import type { ServerChild } from "./server-child.js";
import { summarize, type LatencySummary } from "./stats.js";

export interface PairedLatency {
  door: DoorName;
  rounds: number;
  bare: LatencySummary;
  e2e: LatencySummary;
  serverProcessingP50Ms: number;
  serverQueueP50Ms: number | null;
}

type Outcome = { kind: "result"; server: ServerTimings } | { kind: "other"; what: string };

/** One session of one door driven one frame at a time: the next frame goes when the answer is back. */
class SteppedSession {
  private waiting: ((o: Outcome) => void) | undefined;
  private seq = 0;
  session: DoorSession | undefined;
  readonly e2e: number[] = [];
  readonly bare: number[] = [];
  readonly proc: number[] = [];
  readonly queue: number[] = [];

  constructor(
    readonly door: DoorName,
    private readonly frames: FrameSet,
  ) {}

  async open(server: ServerChild): Promise<void> {
    const settle = (o: Outcome) => {
      const w = this.waiting;
      this.waiting = undefined;
      w?.(o);
    };
    this.session = await OPENERS[this.door]({
      baseUrl: server.baseUrl,
      // fps_limit 30, the highest: back-to-back frames must not hit the rate limit.
      fps: 30,
      wsDeflate: process.env.BENCH_WS_DEFLATE !== "0",
      sink: {
        result: (_seq, s) => settle({ kind: "result", server: s }),
        dropped: (_seq, reason) => settle({ kind: "other", what: `dropped ${reason}` }),
        failed: (_seq, message) => settle({ kind: "other", what: message }),
        allowedFps: () => undefined,
      },
    });
  }

  async step(record: boolean): Promise<void> {
    const frame = this.frames.frames[this.seq % this.frames.frames.length];
    if (!frame || !this.session) return;
    const t0 = performance.now();
    const outcome = new Promise<Outcome>((resolve) => (this.waiting = resolve));
    this.session.send(frame, ++this.seq);
    const timeout = new Promise<Outcome>((r) => setTimeout(() => r({ kind: "other", what: "timeout" }), 30_000));
    const o = await Promise.race([outcome, timeout]);
    if (!record || o.kind !== "result") return;
    this.e2e.push(performance.now() - t0);
    this.proc.push(o.server.processingMs);
    if (o.server.queueMs !== undefined) this.queue.push(o.server.queueMs);
  }
}

/**
 * One session per door, one frame at a time, in rounds: per round and door, `perRound` bare runs
 * then `perRound` frames through the door. The machine's load drifts by tens of percent within a
 * minute here; interleaving puts every door and the bare pipeline under the same drift, and no
 * door pays for being measured first.
 */
export async function pairedLatency(
  doors: readonly DoorName[],
  server: ServerChild,
  bare: BarePipeline,
  frames: FrameSet,
  rounds: number,
  perRound: number,
): Promise<PairedLatency[]> {
  const sessions = doors.map((d) => new SteppedSession(d, frames));
  try {
    for (const s of sessions) await s.open(server);
    // Unrecorded frames first: each door's first frames run cold code (JIT) in both processes.
    for (const s of sessions) for (let i = 0; i < Math.max(3, perRound); i++) await s.step(false);
    for (let r = 0; r < rounds; r++) {
      for (const s of sessions) {
        for (let i = 0; i < perRound; i++) s.bare.push((await bare.once()).ms);
        for (let i = 0; i < perRound; i++) await s.step(true);
      }
    }
  } finally {
    await Promise.all(sessions.map((s) => s.session?.close().catch(() => undefined)));
  }
  return sessions.map((s) => ({
    door: s.door,
    rounds,
    bare: summarize(s.bare),
    e2e: summarize(s.e2e),
    serverProcessingP50Ms: summarize(s.proc).p50,
    serverQueueP50Ms: s.queue.length > 0 ? summarize(s.queue).p50 : null,
  }));
}
