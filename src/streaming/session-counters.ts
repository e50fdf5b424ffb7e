import { DropReason } from "../../gen/hazard/stream/v1/types_pb.js";
import { LatencyWindow, RateWindow } from "./latency-window.js";

/** What happened to a session's frames; every received frame ends in exactly one bucket. */
export class SessionCounters {
  received = 0;
  processed = 0;
  failed = 0;
  readonly drops = new Map<DropReason, number>();
  readonly processingMs = new LatencyWindow();
  readonly latencyMs = new LatencyWindow();
  readonly processedRate = new RateWindow();
  /** Confirmed tracks per class name: unique hazards seen (filled when tracking is on). */
  readonly uniqueHazards = new Map<string, number>();

  get dropped(): number {
    let n = 0;
    for (const v of this.drops.values()) n += v;
    return n;
  }

  countDrop(reason: DropReason): void {
    this.drops.set(reason, (this.drops.get(reason) ?? 0) + 1);
  }

  /** A frame refused before it reached the queue (empty, too large). */
  countRejected(): void {
    this.received++;
    this.failed++;
  }

  countProcessed(processingMs: number, latencyMs: number, nowMs: number): void {
    this.processed++;
    this.processingMs.add(processingMs);
    this.latencyMs.add(latencyMs);
    this.processedRate.add(nowMs);
  }
}
