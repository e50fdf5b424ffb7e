import type { FrameSource } from "./frame-scheduler.js";

/** A unary call waiting for a processing slot. */
export interface UnaryJob {
  run(): Promise<void>;
}

/** The unary queue is full; the RPC layer answers RESOURCE_EXHAUSTED with the retry hint. */
export class ServerBusyError extends Error {
  override name = "ServerBusyError";
  constructor(readonly retryAfterMs: number) {
    super("the server is busy: too many Detect calls are waiting; retry later");
  }
}

/**
 * Unary Detect calls as one source of the frame scheduler: they take turns with the sessions (one
 * frame per round-robin turn, so a flood of calls cannot starve a session), may use every slot
 * when no session waits, and wait in a bounded FIFO — beyond `capacity` waiting calls a new one is
 * refused at once instead of queueing without limit in the engine's pool. A call that finds a
 * free slot starts in the same tick: no added latency at low load.
 */
export class UnaryQueue implements FrameSource<UnaryJob> {
  private readonly waiting: UnaryJob[] = [];
  /** Calls that arrived (admitted or refused) since the last `takeArrivals()`. */
  private arrivals = 0;

  constructor(
    private readonly capacity: number,
    /** Calls processed at once: the scheduler's slot count. */
    readonly maxInFlight: number,
    private readonly onReady: (queue: UnaryQueue) => void,
  ) {}

  get length(): number {
    return this.waiting.length;
  }

  hasPending(): boolean {
    return this.waiting.length > 0;
  }

  takeNext(): UnaryJob | undefined {
    return this.waiting.shift();
  }

  /** Counts and resets the arrivals, for the allowance split. */
  takeArrivals(): number {
    const n = this.arrivals;
    this.arrivals = 0;
    return n;
  }

  /**
   * Runs `fn` in a processing slot; `waitedMs` is how long it waited for one. Throws
   * ServerBusyError (with `retryAfterMs`) when `capacity` calls wait already, and the signal's reason
   * when the caller gives up while waiting.
   */
  run<T>(fn: (waitedMs: number) => Promise<T>, retryAfterMs: () => number, signal?: AbortSignal): Promise<T> {
    this.arrivals++;
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.waiting.length >= this.capacity) return Promise.reject(new ServerBusyError(retryAfterMs()));
    const queuedAt = performance.now();
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => {
        const i = this.waiting.indexOf(job);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(signal?.reason);
      };
      const job: UnaryJob = {
        run: async () => {
          signal?.removeEventListener("abort", onAbort);
          try {
            resolve(await fn(performance.now() - queuedAt));
          } catch (e) {
            reject(e);
          }
        },
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.waiting.push(job);
      this.onReady(this);
    });
  }
}
