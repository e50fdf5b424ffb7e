/**
 * Bounded hand-off from a producer (the session's events) to one consumer (a stream writer).
 * connect-node applies only socket 'drain' backpressure, so without a bound a client that stops
 * reading would make the server buffer results forever. Past `capacity` items, or once the items
 * waiting would hold more than `maxBytes` (results echo frame metadata, so a count alone bounds
 * nothing), the subscriber is cut off with `overflowed` set, and the door tells its client why.
 * One item is always let in when none waits: an event larger than the budget is not "behind".
 */
export class SubscriberQueue<T> implements AsyncIterable<T> {
  private readonly items: Array<{ item: T; bytes: number }> = [];
  private held = 0;
  private waiter: (() => void) | undefined;
  private closed = false;
  overflowed = false;

  constructor(
    private readonly capacity: number,
    private readonly maxBytes = Number.POSITIVE_INFINITY,
    private readonly sizeOf: (item: T) => number = () => 0,
  ) {}

  get length(): number {
    return this.items.length;
  }

  /** Bytes the waiting items hold (as `sizeOf` counts them). */
  get bytes(): number {
    return this.held;
  }

  /** `bytes` may be given when the caller knows the size already. */
  push(item: T, bytes?: number): void {
    if (this.closed) return;
    const size = bytes ?? this.sizeOf(item);
    if (this.items.length >= this.capacity || (this.items.length > 0 && this.held + size > this.maxBytes)) {
      this.overflowed = true;
      this.close();
      return;
    }
    this.items.push({ item, bytes: size });
    this.held += size;
    this.wake();
  }

  close(): void {
    this.closed = true;
    this.wake();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  /** Next item, or undefined once closed and drained (or when `signal` aborts). */
  async next(signal?: AbortSignal): Promise<T | undefined> {
    for (;;) {
      const first = this.items.shift();
      if (first !== undefined) {
        this.held -= first.bytes;
        return first.item;
      }
      if (this.closed || signal?.aborted) return undefined;
      await new Promise<void>((resolve) => {
        const onAbort = () => resolve();
        signal?.addEventListener("abort", onAbort, { once: true });
        this.waiter = () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        };
      });
    }
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      const item = await this.next();
      if (item === undefined) return;
      yield item;
    }
  }
}
