import { LatencyWindow, RateWindow } from "./latency-window.js";

/**
 * Latency and rate of the frames this instance processed for a session. Outcome counts
 * (received/processed/dropped/failed) live in the session store, summed over all instances.
 */
export class SessionCounters {
  readonly processingMs = new LatencyWindow();
  readonly latencyMs = new LatencyWindow();
  readonly processedRate = new RateWindow();
  /** When the latency snapshot was last written to the store. */
  lastSavedMs = 0;

  countProcessed(processingMs: number, latencyMs: number, nowMs: number): void {
    this.processingMs.add(processingMs);
    this.latencyMs.add(latencyMs);
    this.processedRate.add(nowMs);
  }
}
