import type { JsonObject } from "@bufbuild/protobuf";
import { iou } from "../pipeline/nms.js";
import { solveAssignment } from "./assignment.js";
import { BoxKalmanFilter, type KalmanState } from "./kalman.js";
import {
  DEFAULT_TRACKER_OPTIONS,
  type BoxCorners,
  type FrameRef,
  type FrameTrackResult,
  type TrackedDetection,
  type TrackerDetection,
  type TrackerOptions,
  type TrackSummary,
} from "./types.js";

type TrackState = "tentative" | "tracked" | "lost";

interface Track<M> {
  id: number;
  state: TrackState;
  /** Processed frames in a row without a detection while tentative. */
  misses: number;
  classId: number;
  className: string;
  kalman: KalmanState;
  firstSeen: number;
  lastSeen: number;
  framesSeen: number;
  peakConfidence: number;
  peakBox: BoxCorners;
  peakFrameId: string;
  peakMetadata: M | undefined;
  /** The detector's box in the last frame the track was detected in. */
  lastBox: BoxCorners;
}

/**
 * ByteTrack-style multi-object tracker for one session's hazards. Deliberate differences from
 * ByteTrack: time comes from capture timestamps (see kalman.ts); a track is reported with its id
 * from its first detection but stays tentative (`confirmed: false`, not counted, no summary) until
 * it has been detected `minHits` times, missing at most `tentativeMisses` processed frames in a row
 * (ByteTrack reports nothing before confirmation, so a streaming client would lose those frames of
 * every hazard for good); tracks never match a detection of another class; plain IoU cost (no score
 * fusion), so a faint far-away hazard is not penalised twice; size velocities are kept for lost
 * tracks (ByteTrack zeroes them) because a hazard seen from a moving car keeps growing while the
 * detector misses it (zeroing them made no measurable difference on the synthetic sequences either
 * way). Two additions for detectors with coarse or duplicated boxes (measured with the default
 * model on rendered driving sequences, test/tracking-rendered.test.ts): OC-SORT's recovery from a
 * track's last box (step 1b), and no new track from a second box of a hazard already taken (step 4).
 */
export class HazardTracker<M = JsonObject> {
  readonly options: Readonly<TrackerOptions>;
  private readonly kalman: BoxKalmanFilter;
  private tracks: Track<M>[] = [];
  private nextId = 1;
  private lastTime: number | undefined;
  private readonly counts = new Map<string, number>();

  /**
   * `takeId` hands out track ids when several trackers must share one id space (a session tracked
   * on several instances); by default ids count up from 1.
   */
  constructor(
    options: Partial<TrackerOptions> = {},
    private readonly takeId: () => number = () => this.nextId++,
  ) {
    this.options = Object.freeze(validateOptions({ ...DEFAULT_TRACKER_OPTIONS, ...options }));
    this.kalman = new BoxKalmanFilter(1 / 30, {
      position: this.options.positionNoise,
      velocity: this.options.velocityNoise,
    });
  }

  /**
   * Feeds one processed frame. `timestampSec` is the capture time; frames the service dropped simply
   * never arrive and the next call predicts across the gap. A timestamp older than the previous one
   * is treated as no elapsed time rather than rewinding the filters.
   */
  update<D extends TrackerDetection>(
    detections: readonly D[],
    timestampSec: number,
    frame: FrameRef<M> = {},
  ): FrameTrackResult<D, M> {
    if (!Number.isFinite(timestampSec)) throw new RangeError("timestampSec must be a finite number");
    const o = this.options;
    const dt = this.lastTime === undefined ? 0 : Math.max(0, timestampSec - this.lastTime);
    this.lastTime = this.lastTime === undefined ? timestampSec : Math.max(this.lastTime, timestampSec);

    // Expire before matching: after a long pause a stale prediction must not claim a new hazard.
    const ended: TrackSummary<M>[] = [];
    this.tracks = this.tracks.filter((t) => {
      if (t.state === "tentative" || timestampSec - t.lastSeen <= o.maxLostSec) return true;
      ended.push(summarise(t));
      return false;
    });
    for (const t of this.tracks) this.kalman.predict(t.kalman, dt);

    const high: number[] = [];
    const low: number[] = [];
    detections.forEach((d, i) => {
      if (d.confidence >= o.highThreshold) high.push(i);
      else if (d.confidence >= o.lowThreshold) low.push(i);
    });
    const owner = new Array<Track<M> | undefined>(detections.length);
    const confirmedNow = new Set<Track<M>>();
    const hit = (t: Track<M>, di: number): void => {
      const d = detections[di];
      owner[di] = t;
      t.lastBox = { x1: d.x1, y1: d.y1, x2: d.x2, y2: d.y2 };
      this.kalman.update(t.kalman, d);
      t.lastSeen = timestampSec;
      t.framesSeen++;
      if (d.confidence > t.peakConfidence) {
        t.peakConfidence = d.confidence;
        t.peakBox = { x1: d.x1, y1: d.y1, x2: d.x2, y2: d.y2 };
        t.peakFrameId = frame.frameId ?? "";
        t.peakMetadata = frame.metadata;
      }
    };

    // 1. High detections against confirmed tracks, tracked or lost.
    const confirmed = this.tracks.filter((t) => t.state !== "tentative");
    const first = this.associate(confirmed, detections, high, o.matchIou);
    for (const [t, di] of first.matches) {
      hit(t, di);
      t.state = "tracked";
    }
    // 1b. Tracks detected in the previous frame that missed their prediction try their last box
    //     instead (OC-SORT's observation-centric recovery): a detector whose box sizes come in
    //     coarse steps can make the filter's size velocity swing, and the prediction shrink while
    //     the hazard grows. Lost tracks are left out: on hazards that may overlap, recovering
    //     them from an old box switched identities.
    const recent = first.unmatchedTracks.filter((t) => t.state === "tracked");
    const recovered = this.associate(recent, detections, first.unmatchedDetections, o.matchIou, (t) => t.lastBox);
    for (const [t, di] of recovered.matches) hit(t, di);
    const unmatchedHigh = recovered.unmatchedDetections;

    // 2. Low detections only extend tracks that were being tracked: a faint box is too weak to
    //    revive a lost track (ByteTrack does the same).
    const second = this.associate(recovered.unmatchedTracks, detections, low, o.lowMatchIou);
    for (const [t, di] of second.matches) hit(t, di);
    for (const t of second.unmatchedTracks) t.state = "lost";

    // 3. Remaining high detections against tentative tracks; a tentative track that misses more
    //    than tentativeMisses frames in a row is dropped, so a flickering false positive never
    //    reaches minHits.
    const tentative = this.tracks.filter((t) => t.state === "tentative");
    const third = this.associate(tentative, detections, unmatchedHigh, o.tentativeMatchIou);
    for (const [t, di] of third.matches) {
      hit(t, di);
      if (t.framesSeen >= o.minHits) this.confirm(t, confirmedNow);
    }
    for (const [t] of third.matches) t.misses = 0;
    const dropped = new Set(third.unmatchedTracks.filter((t) => ++t.misses > o.tentativeMisses));

    // 4. New tentative tracks, strongest first. A box that overlaps one already taken in this frame
    //    (buffered, as in matching) is a second box of the same hazard and starts nothing, or the
    //    hazard would be counted twice: NMS at IoU 0.7 lets through two thin crack boxes a few
    //    pixels apart.
    const births = third.unmatchedDetections
      .filter((di) => detections[di].confidence >= o.newTrackThreshold)
      .sort((a, b) => detections[b].confidence - detections[a].confidence);
    const taken =
      births.length === 0 ? [] : detections.flatMap((d, i) => (owner[i] === undefined ? [] : [{ classId: d.classId, box: buffered(d, o.matchBuffer) }]));
    for (const di of births) {
      const d = detections[di];
      const box = buffered(d, o.matchBuffer);
      if (taken.some((x) => x.classId === d.classId && similarSize(x.box, box) && iou(x.box, box) >= o.duplicateIou)) continue;
      taken.push({ classId: d.classId, box });
      const t: Track<M> = {
        id: this.takeId(),
        state: "tentative",
        misses: 0,
        classId: d.classId,
        className: d.className,
        kalman: this.kalman.initiate(d),
        firstSeen: timestampSec,
        lastSeen: timestampSec,
        framesSeen: 1,
        peakConfidence: d.confidence,
        peakBox: { x1: d.x1, y1: d.y1, x2: d.x2, y2: d.y2 },
        peakFrameId: frame.frameId ?? "",
        peakMetadata: frame.metadata,
        lastBox: { x1: d.x1, y1: d.y1, x2: d.x2, y2: d.y2 },
      };
      owner[di] = t;
      this.tracks.push(t);
      if (o.minHits <= 1) this.confirm(t, confirmedNow);
    }
    if (dropped.size > 0) this.tracks = this.tracks.filter((t) => !dropped.has(t));

    const tracked: TrackedDetection<D>[] = [];
    detections.forEach((d, i) => {
      const t = owner[i];
      // Not `{ ...d, trackId, isNew }`: on Node 20 a spread followed by more properties takes a slow
      // path, measured at ~10 µs per object (Object.assign: ~0.5 µs).
      if (t === undefined) return;
      tracked.push(Object.assign({}, d, { trackId: t.id, isNew: confirmedNow.has(t), confirmed: t.state !== "tentative" }));
    });
    return { tracked, ended };
  }

  /** Ends every track, as at the end of a session; summaries of the confirmed ones are returned. */
  flush(): TrackSummary<M>[] {
    const ended = this.tracks.filter((t) => t.state !== "tentative").map(summarise);
    this.tracks = [];
    this.lastTime = undefined;
    return ended;
  }

  /** Confirmed tracks ever started (since construction or reset), per class name. */
  uniqueCounts(): Map<string, number> {
    return new Map(this.counts);
  }

  /**
   * Forgets all tracks without summaries and clears the counts. The id counter keeps counting: ids
   * are never reused by one tracker, as the API promises within a session.
   */
  reset(): void {
    this.tracks = [];
    this.lastTime = undefined;
    this.counts.clear();
  }

  /** Tracks currently held (tentative, tracked and lost); for tests and stats. */
  get size(): number {
    return this.tracks.length;
  }

  private confirm(t: Track<M>, confirmedNow: Set<Track<M>>): void {
    t.state = "tracked";
    confirmedNow.add(t);
    this.counts.set(t.className, (this.counts.get(t.className) ?? 0) + 1);
  }

  /**
   * Optimal buffered-IoU matching of tracks (their predicted boxes, unless `boxOf` says otherwise)
   * to the given detection indices; other classes never match.
   */
  private associate(
    tracks: readonly Track<M>[],
    detections: readonly TrackerDetection[],
    indices: readonly number[],
    minIou: number,
    boxOf: (t: Track<M>) => BoxCorners = (t) => this.kalman.box(t.kalman),
  ): { matches: Array<[Track<M>, number]>; unmatchedTracks: Track<M>[]; unmatchedDetections: number[] } {
    if (tracks.length === 0 || indices.length === 0) {
      return { matches: [], unmatchedTracks: [...tracks], unmatchedDetections: [...indices] };
    }
    const cols = indices.length;
    const b = this.options.matchBuffer;
    // Buffered once per box, not per pair: this loop is the tracker's only O(tracks × detections) part.
    const boxes = indices.map((i) => buffered(detections[i], b));
    const cost = new Float64Array(tracks.length * cols);
    for (let r = 0; r < tracks.length; r++) {
      const t = tracks[r];
      const predicted = buffered(boxOf(t), b);
      for (let c = 0; c < cols; c++) {
        const sameClass = detections[indices[c]].classId === t.classId;
        cost[r * cols + c] = sameClass ? 1 - iou(predicted, boxes[c]) : Number.POSITIVE_INFINITY;
      }
    }
    const a = solveAssignment(cost, tracks.length, cols, 1 - minIou);
    return {
      matches: a.matches.map(([r, c]) => [tracks[r], indices[c]]),
      unmatchedTracks: a.unmatchedRows.map((r) => tracks[r]),
      unmatchedDetections: a.unmatchedCols.map((c) => indices[c]),
    };
  }
}

function summarise<M>(t: Track<M>): TrackSummary<M> {
  return {
    trackId: t.id,
    classId: t.classId,
    className: t.className,
    firstSeen: t.firstSeen,
    lastSeen: t.lastSeen,
    framesSeen: t.framesSeen,
    peakConfidence: t.peakConfidence,
    peakBox: { ...t.peakBox },
    peakFrameId: t.peakFrameId,
    peakMetadata: t.peakMetadata,
  };
}

function validateOptions(o: TrackerOptions): TrackerOptions {
  const unit = [
    "highThreshold",
    "lowThreshold",
    "newTrackThreshold",
    "matchIou",
    "lowMatchIou",
    "tentativeMatchIou",
    "duplicateIou",
  ] as const;
  for (const key of unit) {
    if (!(o[key] >= 0 && o[key] <= 1)) throw new RangeError(`${key} must be in [0, 1]`);
  }
  if (o.lowThreshold > o.highThreshold) throw new RangeError("lowThreshold must not exceed highThreshold");
  if (!Number.isInteger(o.minHits) || o.minHits < 1) throw new RangeError("minHits must be an integer >= 1");
  if (!Number.isInteger(o.tentativeMisses) || o.tentativeMisses < 0) throw new RangeError("tentativeMisses must be an integer >= 0");
  if (!(o.maxLostSec >= 0)) throw new RangeError("maxLostSec must be >= 0");
  for (const key of ["matchBuffer", "positionNoise", "velocityNoise"] as const) {
    if (!(o[key] >= 0)) throw new RangeError(`${key} must be >= 0`);
  }
  return o;
}

function buffered(box: BoxCorners, b: number): BoxCorners {
  const w = box.x2 - box.x1;
  const h = box.y2 - box.y1;
  return { x1: box.x1 - b * w, y1: box.y1 - b * h, x2: box.x2 + b * w, y2: box.y2 + b * h };
}

/** Areas within a factor of 1.5: two boxes of one hazard, not a small hazard beside a big one. */
function similarSize(a: BoxCorners, b: BoxCorners): boolean {
  const area = (x: BoxCorners): number => (x.x2 - x.x1) * (x.y2 - x.y1);
  const ratio = area(a) / Math.max(area(b), 1e-9);
  return ratio <= 1.5 && ratio >= 1 / 1.5;
}
