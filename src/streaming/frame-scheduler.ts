/** Anything with frames waiting to be processed. */
export interface FrameSource<F> {
  hasPending(): boolean;
  takeNext(): F | undefined;
  /** Frames of this source processed at once; 1 (the default) keeps a session's results in frame order. */
  readonly maxInFlight?: number;
}

/**
 * Shares a fixed number of processing slots among sessions in round-robin order: each session
 * with a waiting frame gets one frame processed per round, so a session that floods cannot starve
 * one that sends two frames a second. A session has at most one frame in flight, so its results
 * (and its tracker updates) stay in frame order; a source that allows more (unary calls) still gets
 * one frame per round while others wait, and every free slot when none does.
 */
export class FrameScheduler<S extends FrameSource<F>, F> {
  private readonly ready: S[] = [];
  private readonly queued = new Set<S>();
  /** Frames in flight per source. */
  private readonly busy = new Map<S, number>();
  private running = 0;
  private idleWaiters: Array<() => void> = [];

  constructor(
    private slots: number,
    private readonly process: (source: S, frame: F) => Promise<void>,
  ) {}

  get inFlight(): number {
    return this.running;
  }

  get waitingSessions(): number {
    return this.ready.length;
  }

  /** Called when `source` has a new frame waiting. */
  notify(source: S): void {
    if (!this.queued.has(source) && (this.busy.get(source) ?? 0) < (source.maxInFlight ?? 1)) {
      this.queued.add(source);
      this.ready.push(source);
    }
    this.pump();
  }

  setSlots(slots: number): void {
    this.slots = slots;
    this.pump();
  }

  /** Resolves once nothing is running or waiting (used for graceful shutdown). */
  idle(): Promise<void> {
    if (this.running === 0 && this.ready.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private pump(): void {
    while (this.running < this.slots && this.ready.length > 0) {
      const source = this.ready.shift() as S;
      this.queued.delete(source);
      const frame = source.takeNext();
      if (frame === undefined) continue;
      this.running++;
      const inFlight = (this.busy.get(source) ?? 0) + 1;
      this.busy.set(source, inFlight);
      // Back of the line for its next frame: one per round.
      if (inFlight < (source.maxInFlight ?? 1) && source.hasPending()) {
        this.queued.add(source);
        this.ready.push(source);
      }
      void this.process(source, frame).finally(() => {
        this.running--;
        const left = (this.busy.get(source) ?? 1) - 1;
        if (left > 0) this.busy.set(source, left);
        else this.busy.delete(source);
        if (source.hasPending()) this.notify(source);
        else this.pump();
        if (this.running === 0 && this.ready.length === 0) {
          const waiters = this.idleWaiters;
          this.idleWaiters = [];
          for (const w of waiters) w();
        }
      });
    }
  }
}
