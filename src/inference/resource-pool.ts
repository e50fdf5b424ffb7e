/**
 * Lends a fixed set of resources (worker threads, infer requests) one caller at a time; callers
 * beyond the pool size wait in FIFO order, so a burst of frames is served in arrival order.
 */
export class ResourcePool<T> {
  readonly #idle: T[];
  readonly #size: number;
  readonly #waiters: Array<{ resolve: (item: T) => void; reject: (e: Error) => void }> = [];
  #closed = false;
  #drained: (() => void) | undefined;

  constructor(items: readonly T[]) {
    if (items.length === 0) throw new RangeError("a resource pool needs at least one item");
    this.#idle = [...items];
    this.#size = items.length;
  }

  /** Runs `fn` with a resource that no one else uses until `fn` settles. */
  async use<R>(fn: (item: T) => Promise<R>): Promise<R> {
    if (this.#closed) throw new Error("the inference engine is closed");
    const item =
      this.#idle.pop() ?? (await new Promise<T>((resolve, reject) => this.#waiters.push({ resolve, reject })));
    try {
      return await fn(item);
    } finally {
      const next = this.#waiters.shift();
      if (next) next.resolve(item);
      else this.#idle.push(item);
      if (this.#idle.length === this.#size) this.#drained?.();
    }
  }

  /**
   * Refuses callers still waiting and new ones; resolves once the runs already going have finished,
   * so their resources can be released safely (terminating a worker inside a native ORT run aborts
   * the whole process).
   */
  close(): Promise<void> {
    this.#closed = true;
    for (const w of this.#waiters.splice(0)) w.reject(new Error("the inference engine is closed"));
    if (this.#idle.length === this.#size) return Promise.resolve();
    return new Promise((resolve) => (this.#drained = resolve));
  }
}
