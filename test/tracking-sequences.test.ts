import { afterAll, describe, expect, it } from "vitest";
import { HazardTracker } from "../src/tracking/hazard-tracker.js";
import { evaluateMot, type MotFrame, type MotSummary } from "../src/tracking/mot-metrics.js";
import {
  DEFAULT_SYNTHETIC_OPTIONS,
  generateSequence,
  type SyntheticOptions,
  type SyntheticSequence,
} from "../src/tracking/synthetic-tracks.js";
import { DEFAULT_TRACKER_OPTIONS } from "../src/tracking/types.js";

const SEEDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];

/** 29 km/h instead of 43: each hazard is in view about 34 frames instead of 20. */
const CITY = { scene: { ...DEFAULT_SYNTHETIC_OPTIONS.scene, speedMps: 8 }, missProbability: 0.02 };

interface Outcome {
  metrics: MotSummary;
  /** The same metrics for an ideal tracker: true identities, reported from the minHits-th detection on. */
  ceiling: MotSummary;
  countsMatch: boolean;
}

function track(seq: SyntheticSequence): Outcome {
  const tracker = new HazardTracker();
  const frames: MotFrame[] = seq.frames.map((f) => ({
    gt: f.gt,
    pred: tracker
      .update(f.detections, f.timestampSec, { frameId: f.frameId })
      .tracked.map((d) => ({ ...d, id: d.trackId })),
  }));
  const truth = new Map<string, number>();
  for (const h of seq.hazards) truth.set(h.className, (truth.get(h.className) ?? 0) + 1);
  const counted = tracker.uniqueCounts();
  const countsMatch = counted.size === truth.size && [...truth].every(([name, n]) => counted.get(name) === n);
  return { metrics: evaluateMot(frames), ceiling: evaluateMot(idealTracker(seq)), countsMatch };
}

/**
 * IDF1 counts every annotated box the tracker does not report. A tracker that withholds a track's
 * first minHits - 1 frames and cannot report frames the detector missed is capped below 1 however
 * good its identities are; this oracle measures that cap.
 */
function idealTracker(seq: SyntheticSequence): MotFrame[] {
  const streak = new Map<number, number>();
  const confirmed = new Set<number>();
  return seq.frames.map((f) => {
    const pred = [];
    for (const g of f.gt) {
      const d = f.detections.find((x) => x.sourceId === g.id);
      if (!d) {
        streak.set(g.id, 0);
        continue;
      }
      streak.set(g.id, (streak.get(g.id) ?? 0) + 1);
      if ((streak.get(g.id) ?? 0) >= DEFAULT_TRACKER_OPTIONS.minHits) confirmed.add(g.id);
      if (confirmed.has(g.id)) pred.push({ ...d, id: g.id });
    }
    return { gt: f.gt, pred };
  });
}

const table: string[] = [];

function scenario(name: string, options: Partial<SyntheticOptions>): Outcome[] {
  const outcomes = SEEDS.map((seed) => track(generateSequence({ seed, ...options })));
  const pooled = (pick: (o: Outcome) => MotSummary) => {
    const m = outcomes.map(pick);
    const sum = (f: (s: MotSummary) => number) => m.reduce((a, s) => a + f(s), 0);
    const idtp = sum((s) => s.idtp);
    return {
      mota: (sum((s) => s.tp) - sum((s) => s.fp) - sum((s) => s.idsw)) / sum((s) => s.gtDetections),
      idf1: (2 * idtp) / (2 * idtp + sum((s) => s.idfp) + sum((s) => s.idfn)),
      idp: idtp / (idtp + sum((s) => s.idfp)),
      idsw: sum((s) => s.idsw),
      fp: sum((s) => s.fp),
    };
  };
  const t = pooled((o) => o.metrics);
  const c = pooled((o) => o.ceiling);
  const counts = outcomes.filter((o) => o.countsMatch).length;
  table.push(
    `${name.padEnd(52)} MOTA ${t.mota.toFixed(3)}  IDF1 ${t.idf1.toFixed(3)} (ideal ${c.idf1.toFixed(3)})` +
      `  IDP ${t.idp.toFixed(3)}  IDSW ${t.idsw}  FP ${t.fp}  counts right ${counts}/${outcomes.length}`,
  );
  return outcomes;
}

describe("tracking synthetic driving sequences (10 seeds each)", () => {
  afterAll(() => {
    console.log(`\nHazardTracker on synthetic sequences, pooled over seeds ${SEEDS[0]}..${SEEDS.at(-1)}:`);
    console.log(table.join("\n"));
  });

  it("keeps every hazard's identity at 10 FPS when hazards never overlap", () => {
    const outcomes = scenario("43 km/h, 10 FPS, apart", { nonOverlapping: true });
    for (const { metrics, ceiling, countsMatch } of outcomes) {
      expect(metrics.idsw).toBe(0);
      expect(metrics.idp).toBeGreaterThanOrEqual(0.99);
      expect(countsMatch).toBe(true);
      // What IDF1 loses beyond the ideal tracker: tracks lost where hazards accelerate near the car.
      expect(metrics.idf1).toBeGreaterThanOrEqual(ceiling.idf1 - 0.03);
    }
  });

  it("reaches IDF1 >= 0.95 where hazards stay in view long enough for that to be possible", () => {
    const outcomes = scenario("29 km/h, 10 FPS, apart, 2% misses", { ...CITY, nonOverlapping: true });
    for (const { metrics, countsMatch } of outcomes) {
      expect(metrics.idsw).toBe(0);
      expect(countsMatch).toBe(true);
      expect(metrics.idf1).toBeGreaterThanOrEqual(0.94);
    }
    const idtp = outcomes.reduce((a, o) => a + o.metrics.idtp, 0);
    const errors = outcomes.reduce((a, o) => a + o.metrics.idfp + o.metrics.idfn, 0);
    expect((2 * idtp) / (2 * idtp + errors)).toBeGreaterThanOrEqual(0.95);
  });

  it("keeps identities with every third frame dropped", () => {
    for (const options of [{}, CITY]) {
      const label = options === CITY ? "29 km/h, 2% misses" : "43 km/h";
      const outcomes = scenario(`${label}, every 3rd frame dropped, apart`, {
        ...options,
        nonOverlapping: true,
        dropEvery: 3,
      });
      for (const { metrics, countsMatch } of outcomes) {
        expect(metrics.idsw).toBe(0);
        expect(metrics.idp).toBeGreaterThanOrEqual(0.99);
        expect(countsMatch).toBe(true);
      }
    }
  });

  it("does not count short-lived false positives as hazards", () => {
    const outcomes = scenario("43 km/h, apart, false positives (<= 2 frames)", {
      nonOverlapping: true,
      falsePositiveRate: 0.2,
    });
    for (const { metrics, countsMatch } of outcomes) {
      expect(countsMatch).toBe(true);
      expect(metrics.fp).toBe(0);
      expect(metrics.idsw).toBe(0);
    }
  });

  it("degrades gracefully when hazards may overlap (reported, loosely bounded)", () => {
    const outcomes = scenario("43 km/h, may overlap", {});
    const idsw = outcomes.reduce((a, o) => a + o.metrics.idsw, 0);
    expect(idsw).toBeLessThanOrEqual(5);
    for (const { metrics } of outcomes) expect(metrics.idf1).toBeGreaterThan(0.8);
  });
});
