/** Fixed-size ring of recent samples: stats stay O(1) in memory however long a session runs. */
export class LatencyWindow {
  private readonly samples: Float64Array;
  private next = 0;
  private count = 0;

  constructor(capacity = 256) {
    this.samples = new Float64Array(capacity);
  }

  add(value: number): void {
    this.samples[this.next] = value;
    this.next = (this.next + 1) % this.samples.length;
    if (this.count < this.samples.length) this.count++;
  }

  get size(): number {
    return this.count;
  }

  summary(): { p50: number; p95: number; p99: number; mean: number; samples: number } {
    if (this.count === 0) return { p50: 0, p95: 0, p99: 0, mean: 0, samples: 0 };
    const sorted = Array.from(this.samples.subarray(0, this.count)).sort((a, b) => a - b);
    const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? 0;
    const mean = sorted.reduce((s, v) => s + v, 0) / sorted.length;
    return { p50: at(0.5), p95: at(0.95), p99: at(0.99), mean, samples: this.count };
  }
}

/** Event times in a ring, for "events per second over the last N seconds". */
export class RateWindow {
  private readonly times: Float64Array;
  private next = 0;
  private count = 0;

  constructor(
    capacity = 256,
    private readonly windowMs = 5000,
  ) {
    this.times = new Float64Array(capacity);
  }

  add(nowMs: number): void {
    this.times[this.next] = nowMs;
    this.next = (this.next + 1) % this.times.length;
    if (this.count < this.times.length) this.count++;
  }

  /** Events per second over the window ending at `nowMs`. */
  rate(nowMs: number): number {
    let n = 0;
    let oldest = nowMs;
    for (let i = 0; i < this.count; i++) {
      const t = this.times[i] ?? 0;
      if (nowMs - t <= this.windowMs) {
        n++;
        if (t < oldest) oldest = t;
      }
    }
    if (n < 2) return n === 1 ? 1000 / this.windowMs : 0;
    // Measure over the span actually covered so a short burst is not diluted by the whole window.
    const span = Math.max(nowMs - oldest, 1000 / this.times.length);
    return ((n - 1) * 1000) / Math.max(span, 1);
  }
}
