import type { JsonObject } from "@bufbuild/protobuf";
import type { PixelDetection } from "../pipeline/types.js";
import { TRACK_ID_BLOCK } from "../store/session-store.js";
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
 * A session's tracker on this instance. Created on first use, fed only while tracking is enabled;
 * turning tracking off ends the open tracks (one hazard event each) but keeps the id counter, so
 * ids are never reused within the session when tracking comes back on. Ids come from blocks the
 * session's store reserves (reserveIds), so trackers of one session on several instances never
 * hand out the same id.
 */
export class SessionTracking {
  private tracker: HazardTracker<JsonObject> | undefined;
  /** Ids at hand, [next, end); until a block is reserved, the first block is assumed. */
  private ids = { next: 1, end: 1 + TRACK_ID_BLOCK, reserved: false };

  /** Blocks of the session's track ids used up to this instance's current one (0 before the first). */
  get reservedBlocks(): number {
    return this.ids.reserved ? Math.floor((this.ids.end - 2) / TRACK_ID_BLOCK) + 1 : 0;
  }

  /** Makes sure `needed` ids are at hand, reserving the session's next block when they are not. */
  async reserveIds(needed: number, reserve: () => Promise<number>): Promise<void> {
    if (this.ids.reserved && this.ids.end - this.ids.next >= needed) return;
    const first = await reserve();
    this.ids = { next: first, end: first + TRACK_ID_BLOCK, reserved: true };
  }

  /**
   * Detections to report for a processed frame, the hazards whose tracks ended in it, and the tracks
   * confirmed in it per class.
   */
  update(
    enabled: boolean,
    detections: readonly PixelDetection[],
    reportThreshold: number,
    frame: { timestampSec: number; frameId: string; metadata?: JsonObject },
  ): { detections: ReportedDetection[]; ended: TrackSummary<JsonObject>[]; confirmed: Map<string, number> } {
    const confirmed = new Map<string, number>();
    if (!enabled) {
      return { detections: detections.filter((d) => d.confidence >= reportThreshold), ended: this.flush(), confirmed };
    }
    this.tracker ??= new HazardTracker<JsonObject>({}, () => this.ids.next++);
    // Object.assign, not spread-then-add: measured ~20× cheaper per object on Node 20.
    const indexed = detections.map((d, index) => Object.assign({}, d, { index }));
    const { tracked, ended } = this.tracker.update(indexed, frame.timestampSec, { frameId: frame.frameId, metadata: frame.metadata });
    const trackOf = new Map(tracked.map((t) => [t.index, t]));
    for (const t of tracked) if (t.isNew) confirmed.set(t.className, (confirmed.get(t.className) ?? 0) + 1);
    // With tracking on, every reported detection carries its track: a box the tracker gave none is
    // left out. That is a second box of a hazard already boxed in this frame (the tracker's duplicate
    // rule: NMS lets two thin crack boxes a few pixels apart through), or a box below the tracker's
    // high threshold that continues no track (only when confidence_threshold is below it).
    const reported: ReportedDetection[] = [];
    detections.forEach((d, i) => {
      const t = trackOf.get(i);
      if (d.confidence < reportThreshold || t === undefined) return;
      reported.push(Object.assign({}, d, { trackId: t.trackId, trackIsNew: t.isNew, trackConfirmed: t.confirmed }));
    });
    return { detections: reported, ended, confirmed };
  }

  /** Ends every open track (tracking turned off, session ending). */
  flush(): TrackSummary<JsonObject>[] {
    return this.tracker?.flush() ?? [];
  }

  /** Unique hazards seen per class (confirmed tracks) by this instance's tracker. */
  uniqueCounts(): Map<string, number> {
    return this.tracker?.uniqueCounts() ?? new Map();
  }
}
