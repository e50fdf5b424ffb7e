/**
 * Crack head: straight segment templates at 12 directions and several lengths on the stride-8
 * evidence grid. A template scores high when the evidence along it is complete (both halves) and
 * nothing continues beyond its ends (straight on or bending up to ~55°) or runs parallel beside it,
 * which is when it spans one whole crack; its box is the segment's extent plus a zigzag margin.
 */
import { crackEvidence, ridgeAngle, RIDGE_ORIENTATIONS, type CrackEvidenceConfig } from "./crack-evidence.js";
import type { Ops } from "./ops.js";
import { readBoxes, type HeadMaps, type TemplateBox } from "./readout.js";
import { BASE_KERNEL, DIRECTIONS, MULTIPLES, multipleAtMost, norm, segmentKernel, segmentMeans, type Direction } from "./segments.js";

export interface CrackHeadConfig extends CrackEvidenceConfig {
  /** Segment lengths kept, in input pixels. */
  readonly minLength: number;
  readonly maxLength: number;
  /** Segments at least this long (px) use the widened evidence. */
  readonly wideFrom: number;
  /** Score = (1 + p)·coverage − p − evidence around: coverage below 1 costs extra. */
  readonly coveragePenalty: number;
  /** Extra max-pool window (cells) on the evidence looked for beyond the ends. */
  readonly endDilation: number;
  /** Direction index offsets the end check follows: 0 straight on, ±2/±3 a crack bending ~35–55°. */
  readonly endSpread: readonly number[];
  /** Parallel segments max(lateralPx, lateralScale × length) to each side must be free of evidence. */
  readonly lateralPx: number;
  readonly lateralScale: number;
  /** Box = lengthScale × segment extent + marginScale × length + marginPx on each axis. */
  readonly lengthScale: number;
  readonly marginScale: number;
  readonly marginPx: number;
  readonly threshold: number;
  readonly slope: number;
  readonly peakWindow: number;
}

const STRIDE = 8;
/** A segment counts ridges within this angle of its own direction, so a crossing line does not fill it. */
const ORIENTATION_TOLERANCE = (25 * Math.PI) / 180;

/** g2: gray image at stride 2, [1,1,H/2,W/2]. */
export function crackHead(ops: Ops, g2: string, cfg: CrackHeadConfig): HeadMaps {
  const g = ops.g;
  const evidence = crackEvidence(ops, g2, cfg);
  const channel = (x: string, i: number): string => g.op("Slice", [x, g.ints([i]), g.ints([i + 1]), g.ints([1])]);
  const D = DIRECTIONS.length;
  const kernels = DIRECTIONS.flatMap(segmentKernel);
  const directional = (map: string): string => {
    const perDirection = DIRECTIONS.map((v) => ops.maxOf(nearRidges(v).map((i) => channel(map, i))));
    return ops.conv(ops.concat(perDirection, 1), kernels, [D, 1, BASE_KERNEL, BASE_KERNEL], { group: D });
  };
  const narrow = directional(evidence.oriented);
  const wide = directional(evidence.orientedWide);
  const anyWide = ops.conv(ops.maxPool(evidence.any, cfg.endDilation), kernels, [D, 1, BASE_KERNEL, BASE_KERNEL]);
  const chains = DIRECTIONS.map((v, d) => ({
    narrow: segmentMeans(ops, channel(narrow, d), v),
    wide: segmentMeans(ops, channel(wide, d), v),
    any: segmentMeans(ops, channel(anyWide, d), v),
  }));

  const scores: string[] = [];
  const boxes: TemplateBox[] = [];
  DIRECTIONS.forEach((v, d) => {
    const [vx, vy] = v;
    const unitPx = norm(v) * 2 * STRIDE;
    for (const m of MULTIPLES) {
      const length = m * unitPx;
      if (length < cfg.minLength || length > cfg.maxLength) continue;
      const means = length >= cfg.wideFrom ? chains[d]!.wide : chains[d]!.narrow;
      // Both halves must be covered: a segment sliding past the crack's end loses one half.
      const covered =
        m % 2 === 0 ? ops.minOf([-1, 1].map((s) => ops.shift(means(m / 2), (s * m * vy) / 2, (s * m * vx) / 2))) : means(m);
      const inside = ops.sub(ops.mul(covered, 1 + cfg.coveragePenalty), cfg.coveragePenalty);
      const lateralUnits = Math.max(1, Math.round(Math.max(cfg.lateralPx, cfg.lateralScale * length) / (norm(v) * STRIDE)));
      // (-vy, vx) is perpendicular to v and as long.
      const lateral = [-1, 1].map((s) => ops.shift(means(m), s * lateralUnits * vx, -s * lateralUnits * vy));
      const beyond = [-1, 1].flatMap((s) => endChecks(ops, chains, d, m, s, cfg.endSpread));
      scores.push(ops.sub(inside, ops.maxOf([...beyond, ...lateral])));
      const span = length * cfg.lengthScale;
      const margin = cfg.marginScale * length + cfg.marginPx;
      const angle = Math.atan2(vy, vx);
      boxes.push({ w: span * Math.abs(Math.cos(angle)) + margin, h: span * Math.abs(Math.sin(angle)) + margin, dx: 0, dy: 0 });
    }
  });
  return readBoxes(ops, scores, boxes, { ...cfg, stride: STRIDE }, "crack");
}

/** Ridge channels within ORIENTATION_TOLERANCE of direction v (angles taken modulo 180°). */
function nearRidges([vx, vy]: Direction): number[] {
  const theta = Math.atan2(vy, vx);
  const out: number[] = [];
  for (let i = 0; i < RIDGE_ORIENTATIONS; i++) {
    const diff = Math.abs(((theta - ridgeAngle(i) + 1.5 * Math.PI) % Math.PI) - Math.PI / 2);
    if (diff <= ORIENTATION_TOLERANCE) out.push(i);
  }
  return out;
}

/**
 * Mean evidence (any orientation) along segments that start at the template's end s·m·v and leave
 * it in direction v or a neighbouring direction, each about half the template's length.
 */
function endChecks(
  ops: Ops,
  chains: readonly { any: (m: number) => string }[],
  d: number,
  m: number,
  s: number,
  spread: readonly number[],
): string[] {
  const [vx, vy] = DIRECTIONS[d]!;
  const D = DIRECTIONS.length;
  // Half length (cells) of each end segment: the segment is half as long as the template.
  const endHalf = (m * norm(DIRECTIONS[d]!)) / 2;
  const out: string[] = [];
  for (const k of spread) {
    const e = (d + k + D) % D;
    const [ex, ey] = DIRECTIONS[e]!;
    // Point the neighbour the same way as s·v (directions wrap around at 180°).
    const sign = Math.sign(ex * vx * s + ey * vy * s) || 1;
    const units = multipleAtMost(Math.round(endHalf / norm(DIRECTIONS[e]!)));
    const ox = s * m * vx + sign * units * ex;
    const oy = s * m * vy + sign * units * ey;
    out.push(ops.shift(chains[e]!.any(units), oy, ox));
  }
  return out;
}
