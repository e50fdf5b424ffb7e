/** A detection as the pipeline hands it to the tracker: corners in source-image pixels. */
export interface TrackerDetection {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
  confidence: number;
  classId: number;
  className: string;
}

/** A detection of a tentative or confirmed track, as reported for one frame. */
export type TrackedDetection<D extends TrackerDetection = TrackerDetection> = D & {
  /**
   * Stable id of the physical hazard from its first detection on; counts up from 1 and is never
   * reused by one tracker. Ids of tentative tracks that are dropped are not handed out again, so
   * confirmed ids may have gaps.
   */
  trackId: number;
  /** True only in the frame in which the track is confirmed (becomes a counted hazard). */
  isNew: boolean;
  /** False while the track is tentative: it may still be dropped as a flicker and never counted. */
  confirmed: boolean;
};

export interface BoxCorners {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
}

/**
 * One hazard, summarised once when its confirmed track ends (the HazardEvent of the API).
 * `M` is the frame metadata type; the tracker never looks inside it.
 */
export interface TrackSummary<M = unknown> {
  trackId: number;
  classId: number;
  className: string;
  /** Capture time (seconds) of the first detection, tentative frames included. */
  firstSeen: number;
  /** Capture time (seconds) of the last detection. */
  lastSeen: number;
  /** Frames in which the hazard was detected (not predicted), tentative frames included. */
  framesSeen: number;
  peakConfidence: number;
  /** The detector's box (not the filtered one) in the peak frame. */
  peakBox: BoxCorners;
  peakFrameId: string;
  peakMetadata: M | undefined;
}

/** Identity of the frame passed to `update`, echoed in the summary of tracks that peak in it. */
export interface FrameRef<M = unknown> {
  frameId?: string;
  metadata?: M;
}

export interface FrameTrackResult<D extends TrackerDetection, M = unknown> {
  /** Detections matched to a track (tentative or confirmed) in this frame, in input order. */
  tracked: TrackedDetection<D>[];
  /** Confirmed tracks that ended in this update (each track ends exactly once). */
  ended: TrackSummary<M>[];
}

export interface TrackerOptions {
  /** Detections at or above this confidence take part in the first association. */
  highThreshold: number;
  /** Detections in [lowThreshold, highThreshold) only extend tracks that were matched last frame. */
  lowThreshold: number;
  /** An unmatched high detection starts a tentative track only at or above this confidence. */
  newTrackThreshold: number;
  /** Minimum IoU between a predicted track box and a high detection (first association). */
  matchIou: number;
  /** Minimum IoU for the low-confidence second association. */
  lowMatchIou: number;
  /** Minimum IoU between a tentative track and a high detection. */
  tentativeMatchIou: number;
  /**
   * A detection that overlaps one already matched or starting a track in the same frame (same
   * class; IoU of the buffered boxes) by at least this much is a duplicate box of that hazard and
   * starts no track.
   */
  duplicateIou: number;
  /** Detections (in processed frames) before a track is confirmed, counted and summarised. */
  minHits: number;
  /** Processed frames in a row a tentative track may go undetected before it is dropped. */
  tentativeMisses: number;
  /** Capture-time seconds a confirmed track survives without detections before it ends. */
  maxLostSec: number;
  /**
   * Both boxes are grown by this fraction of their size on every side before IoU is taken (C-BIoU,
   * Yang et al. 2023), so a hazard that accelerates down the frame still overlaps its prediction.
   */
  matchBuffer: number;
  /** Kalman position noise as a fraction of the box size per 1/30 s (ByteTrack: 1/20). */
  positionNoise: number;
  /** Kalman velocity noise as a fraction of the box size per 1/30 s (ByteTrack: 1/160). */
  velocityNoise: number;
}

/**
 * Score thresholds are Ultralytics' bytetrack.yaml (what users' YOLO models are tuned with); the IoU
 * gates are ByteTrack's (1 - 0.8, 0.5, 1 - 0.7). Ours:
 * - minHits 3 (SORT's; ByteTrack and Ultralytics confirm on the 2nd frame): on the synthetic
 *   sequences minHits 2 let every 2-frame false positive become a hazard, 3 let none through. Since
 *   tentative tracks are reported with their ids, waiting longer costs no reported frames, only a
 *   later `isNew` (the moment a hazard is counted).
 * - tentativeMisses 1: a hazard the detector misses once among its first frames keeps its id
 *   instead of restarting; on the synthetic sequences (43 km/h, every third frame dropped) this
 *   raised IDF1 from 0.948 to 0.953 and let no 1–2-frame false positive through.
 * - duplicateIou 0.4: two thin crack boxes of the filter model 8 px apart (buffered IoU 0.47) were
 *   counted as two cracks; on the synthetic sequences where hazards may overlap it merged one pair of
 *   same-size cracks overlapping for their whole pass (unique counts right in 9 of 10, was 10).
 * - maxLostSec 1: ByteTrack's 30-frame buffer at 30 FPS.
 * - velocityNoise 1/20, 8× ByteTrack's, and matchBuffer 0.3 (C-BIoU's first buffer): hazards seen
 *   from a car accelerate down the frame (perspective) and thin cracks lose IoU fast; on the synthetic
 *   sequences (50 seeds) these two raised the share of hazard boxes reported from 0.75 to 0.83 at
 *   10 FPS and from 0.62 to 0.76 with every third frame dropped, and cut sequences whose unique-hazard
 *   count was wrong from 7 to 0 (see test/tracking-sequences.test.ts).
 */
export const DEFAULT_TRACKER_OPTIONS: Readonly<TrackerOptions> = Object.freeze({
  highThreshold: 0.25,
  lowThreshold: 0.1,
  newTrackThreshold: 0.25,
  matchIou: 0.2,
  lowMatchIou: 0.5,
  tentativeMatchIou: 0.3,
  duplicateIou: 0.4,
  minHits: 3,
  tentativeMisses: 1,
  maxLostSec: 1.0,
  matchBuffer: 0.3,
  positionNoise: 1 / 20,
  velocityNoise: 1 / 20,
});
