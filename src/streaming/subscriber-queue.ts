/**
 * Bounded hand-off from a producer (the session's events) to one consumer (a stream writer).
 * connect-node applies only socket 'drain' backpressure, so without a bound a client that stops
 * reading would make the server buffer results forever. Past `capacity` the subscriber is cut off
 * with `overflowed` set, and the door tells its client why.
 */
export class SubscriberQueue<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private waiter: (() => void) | undefined;
  private closed = false;
  overflowed = false;

  constructor(private readonly capacity: number) {}

  get length(): number {
    return this.items.length;
  }

  push(item: T): void {
    if (this.closed) return;
    if (this.items.length >= this.capacity) {
      this.overflowed = true;
      this.close();
      return;
    }
    this.items.push(item);
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
      if (this.items.length > 0) return this.items.shift();
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
