/**
 * The request side of an in-process bidi call, fed by WebSocket messages. The service reads its
 * requests as fast as they come (each one is admitted or dropped at once), so this stays short;
 * `length` lets the WebSocket pause its socket should the service ever stop reading, so a client
 * cannot queue messages here without bound.
 */
export class RequestStream<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private wake: (() => void) | undefined;
  private ended = false;
  /** Called whenever the service takes an item, so the producer can resume. */
  onTake: (() => void) | undefined;

  get length(): number {
    return this.items.length;
  }

  push(item: T): void {
    if (this.ended) return;
    this.items.push(item);
    this.notify();
  }

  end(): void {
    this.ended = true;
    this.notify();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    for (;;) {
      const item = this.items.shift();
      if (item !== undefined) {
        this.onTake?.();
        yield item;
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }
}
