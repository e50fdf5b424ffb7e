/**
 * Per-session FPS limit as a GCRA (the "virtual scheduling" form of a token bucket): the long-run
 * rate never exceeds `fps`, while a frame that arrives up to half an interval early — network jitter
 * on a camera that sends at exactly the limit — is still accepted.
 */
export class FpsLimiter {
  private theoreticalArrival = 0;

  constructor(
    private fps: number,
    private readonly jitterFraction = 0.5,
  ) {}

  setFps(fps: number): void {
    this.fps = fps;
  }

  /** True when a frame arriving at `nowMs` is within the limit (and counts it). */
  tryAcquire(nowMs: number): boolean {
    const interval = 1000 / this.fps;
    if (nowMs < this.theoreticalArrival - interval * this.jitterFraction) return false;
    this.theoreticalArrival = Math.max(nowMs, this.theoreticalArrival) + interval;
    return true;
  }
}
