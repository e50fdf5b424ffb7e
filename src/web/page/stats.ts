/** The page's live numbers, measured where the user sits (round trips include upload and encode). */

const WINDOW_MS = 2000;
const LATENCY_SAMPLES = 30;

export class LiveStats {
  sent = 0;
  results = 0;
  /** Frames the server did not process (FPS limit, superseded, overload). */
  dropped = 0;
  /** Ticks skipped by the page because the previous frame was still unanswered. */
  skipped = 0;
  errors = 0;
  /** Frames never answered within the page's patience (lost connection). */
  lost = 0;
  private readonly resultTimes: number[] = [];
  private readonly roundTrips: number[] = [];
  private readonly serverMs: number[] = [];
  private readonly tracks = new Map<string, Set<number>>();

  result(nowMs: number, roundTripMs: number, processingMs: number): void {
    this.results++;
    this.resultTimes.push(nowMs);
    push(this.roundTrips, roundTripMs);
    push(this.serverMs, processingMs);
  }

  track(className: string, trackId: number): void {
    let ids = this.tracks.get(className);
    if (!ids) this.tracks.set(className, (ids = new Set()));
    ids.add(trackId);
  }

  /** Results per second over the last two seconds. */
  fps(nowMs: number): number {
    while (this.resultTimes.length > 0 && (this.resultTimes[0] ?? 0) < nowMs - WINDOW_MS) this.resultTimes.shift();
    return (this.resultTimes.length * 1000) / WINDOW_MS;
  }

  latencyMs(): number | undefined {
    return mean(this.roundTrips);
  }

  serverProcessingMs(): number | undefined {
    return mean(this.serverMs);
  }

  /** Distinct track ids per class, e.g. `{ pothole: 3, crack: 1 }`. */
  uniqueHazards(): Map<string, number> {
    return new Map([...this.tracks].map(([c, ids]) => [c, ids.size]));
  }
}

function push(a: number[], v: number): void {
  a.push(v);
  if (a.length > LATENCY_SAMPLES) a.shift();
}

function mean(a: readonly number[]): number | undefined {
  return a.length === 0 ? undefined : a.reduce((s, v) => s + v, 0) / a.length;
}
