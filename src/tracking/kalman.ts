import type { BoxCorners } from "./types.js";

/**
 * Constant-velocity Kalman filter on (cx, cy, w, h) and their velocities — ByteTrack's filter in the
 * XYWH form BoT-SORT and Ultralytics use, because cracks are often long and thin and XYAH scales the
 * x noise by the height only. Two changes from ByteTrack:
 *
 * - Velocities are per second and `predict` takes the elapsed capture time, so a frame dropped by the
 *   FPS limit or the queue makes the next prediction reach twice as far instead of breaking the track.
 *   ByteTrack's noise weights are per frame of 30-FPS MOT17 video; we read them as per 1/30 s and
 *   scale the process noise linearly with elapsed time (a random walk: k intervals add k times the
 *   variance), which keeps ByteTrack's noise per second at any frame rate.
 * - F, H, Q, R and the initial P are all block-diagonal in the four (position, velocity) pairs, so P
 *   stays block-diagonal forever and the 8×8 filter is exactly four independent 2×2 filters. We keep
 *   the 20 numbers that can be non-zero instead of 64 and skip the matrix algebra.
 */

/** 8 means (cx, cy, w, h, vcx, vcy, vw, vh) then, per coordinate, the covariance triple pp, pv, vv. */
export type KalmanState = Float64Array;

const STATE_LENGTH = 20;
const COV = 8;

export interface KalmanWeights {
  /** Position noise as a fraction of the box size (ByteTrack: 1/20). */
  position: number;
  /** Velocity noise as a fraction of the box size per reference interval (ByteTrack: 1/160). */
  velocity: number;
}

export const BYTETRACK_WEIGHTS: Readonly<KalmanWeights> = Object.freeze({ position: 1 / 20, velocity: 1 / 160 });

export class BoxKalmanFilter {
  private readonly weights: KalmanWeights;

  constructor(
    readonly referenceIntervalSec = 1 / 30,
    weights: Partial<KalmanWeights> = {},
  ) {
    if (!(referenceIntervalSec > 0)) throw new RangeError("referenceIntervalSec must be > 0");
    this.weights = { ...BYTETRACK_WEIGHTS, ...weights };
  }

  /** A new state at the box with zero velocity and ByteTrack's wide initial uncertainty. */
  initiate(box: BoxCorners): KalmanState {
    const s = new Float64Array(STATE_LENGTH);
    s[0] = (box.x1 + box.x2) / 2;
    s[1] = (box.y1 + box.y2) / 2;
    s[2] = box.x2 - box.x1;
    s[3] = box.y2 - box.y1;
    const { position, velocity } = this.weights;
    for (let k = 0; k < 4; k++) {
      const size = this.scale(s, k);
      const sp = 2 * position * size;
      const sv = (10 * velocity * size) / this.referenceIntervalSec;
      s[COV + 3 * k] = sp * sp;
      s[COV + 3 * k + 2] = sv * sv;
    }
    return s;
  }

  /** Moves the state `dtSec` ahead in place. */
  predict(s: KalmanState, dtSec: number): void {
    if (dtSec <= 0) return;
    const tau = this.referenceIntervalSec;
    const steps = dtSec / tau;
    const { position, velocity } = this.weights;
    for (let k = 0; k < 4; k++) {
      const size = this.scale(s, k);
      const qp = (position * size) ** 2 * steps;
      const qv = ((velocity * size) / tau) ** 2 * steps;
      const c = COV + 3 * k;
      const pp = s[c];
      const pv = s[c + 1];
      const vv = s[c + 2];
      s[k] = s[k] + s[4 + k] * dtSec;
      s[c] = pp + 2 * dtSec * pv + dtSec * dtSec * vv + qp;
      s[c + 1] = pv + dtSec * vv;
      s[c + 2] = vv + qv;
    }
  }

  /** Corrects the state in place with a measured box. */
  update(s: KalmanState, box: BoxCorners): void {
    const z0 = (box.x1 + box.x2) / 2;
    const z1 = (box.y1 + box.y2) / 2;
    const z2 = box.x2 - box.x1;
    const z3 = box.y2 - box.y1;
    const position = this.weights.position;
    // ByteTrack sizes the measurement noise from the predicted box, so read all scales before writing.
    const r0 = (position * this.scale(s, 0)) ** 2;
    const r1 = (position * this.scale(s, 1)) ** 2;
    this.correct(s, 0, z0, r0);
    this.correct(s, 1, z1, r1);
    this.correct(s, 2, z2, r0);
    this.correct(s, 3, z3, r1);
  }

  /** The state's box; a size driven below zero by a long prediction collapses to a point. */
  box(s: KalmanState): BoxCorners {
    const w = Math.max(s[2], 0);
    const h = Math.max(s[3], 0);
    return { x1: s[0] - w / 2, y1: s[1] - h / 2, x2: s[0] + w / 2, y2: s[1] + h / 2 };
  }

  private correct(s: KalmanState, k: number, z: number, r: number): void {
    const c = COV + 3 * k;
    const pp = s[c];
    const pv = s[c + 1];
    const vv = s[c + 2];
    const innovationVar = pp + r;
    const kp = pp / innovationVar;
    const kv = pv / innovationVar;
    const y = z - s[k];
    s[k] = s[k] + kp * y;
    s[4 + k] = s[4 + k] + kv * y;
    s[c] = pp - kp * pp;
    s[c + 1] = pv - kp * pv;
    s[c + 2] = vv - kv * pv;
  }

  /** x and w are scaled by the width, y and h by the height (as KalmanFilterXYWH); 1 px floor keeps noise positive. */
  private scale(s: KalmanState, k: number): number {
    return Math.max(k % 2 === 0 ? s[2] : s[3], 1);
  }
}
