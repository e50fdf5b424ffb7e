/** Pulls messages from a response stream one at a time, with a timeout per message. */
export class StreamReader<T> {
  private readonly it: AsyncIterator<T>;
  constructor(stream: AsyncIterable<T>) {
    this.it = stream[Symbol.asyncIterator]();
  }

  async next(timeoutMs = 15_000): Promise<T | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no message within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      const r = await Promise.race([this.it.next(), timeout]);
      return r.done ? undefined : r.value;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Reads until `pred` matches, returning everything read (the match last). */
  async until(pred: (m: T) => boolean, timeoutMs = 15_000): Promise<T[]> {
    const seen: T[] = [];
    for (;;) {
      const m = await this.next(timeoutMs);
      if (m === undefined) throw new Error(`stream ended before the expected message; saw ${seen.length}`);
      seen.push(m);
      if (pred(m)) return seen;
    }
  }
}
