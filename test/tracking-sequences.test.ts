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

/**
 * Two ways to read the tracker's output, both from what the stream carries:
 * - `stream`: every detection reported with the id of a track that was confirmed at some point,
 *   tentative frames included (a client that records the stream, or waits for `isNew`, knows them);
 * - `live`: only detections whose track was already confirmed in that frame (an overlay that hides
 *   tentative tracks).
 */
interface Outcome {
  stream: MotSummary;
  live: MotSummary;
  /** `stream` of an ideal tracker: every detected box with its true identity. */
  streamCeiling: MotSummary;
  /** `live` of an ideal tracker: true identities, from the minHits-th detection on. */
  liveCeiling: MotSummary;
  countsMatch: boolean;
}

function track(seq: SyntheticSequence): Outcome {
  const tracker = new HazardTracker();
  const outputs = seq.frames.map((f) => tracker.update(f.detections, f.timestampSec, { frameId: f.frameId }).tracked);
  const confirmed = new Set(outputs.flatMap((o) => o.filter((d) => d.confirmed).map((d) => d.trackId)));
  const pred = (keep: (d: (typeof outputs)[number][number]) => boolean): MotFrame[] =>
    seq.frames.map((f, i) => ({ gt: f.gt, pred: outputs[i].filter(keep).map((d) => ({ ...d, id: d.trackId })) }));
  const truth = new Map<string, number>();
  for (const h of seq.hazards) truth.set(h.className, (truth.get(h.className) ?? 0) + 1);
  const counted = tracker.uniqueCounts();
  const countsMatch = counted.size === truth.size && [...truth].every(([name, n]) => counted.get(name) === n);
  return {
    stream: evaluateMot(pred((d) => confirmed.has(d.trackId))),
    live: evaluateMot(pred((d) => d.confirmed)),
    streamCeiling: evaluateMot(idealTracker(seq, 1)),
    liveCeiling: evaluateMot(idealTracker(seq, DEFAULT_TRACKER_OPTIONS.minHits)),
    countsMatch,
  };
}

/**
 * IDF1 counts every annotated box the tracker does not report, so no tracker reaches 1 where the
 * detector misses boxes, and a live view that hides a track's first minHits - 1 detections loses
 * those too; this oracle measures those caps.
 */
function idealTracker(seq: SyntheticSequence, minHits: number): MotFrame[] {
  const hits = new Map<number, number>();
  return seq.frames.map((f) => {
    const pred = [];
    for (const g of f.gt) {
      const d = f.detections.find((x) => x.sourceId === g.id);
      if (!d) continue;
      hits.set(g.id, (hits.get(g.id) ?? 0) + 1);
      if ((hits.get(g.id) ?? 0) >= minHits) pred.push({ ...d, id: g.id });
    }
    return { gt: f.gt, pred };
  });
}

interface Pooled {
  mota: number;
  idf1: number;
  idp: number;
  idsw: number;
  fp: number;
}

function pool(summaries: MotSummary[]): Pooled {
  const sum = (f: (s: MotSummary) => number) => summaries.reduce((a, s) => a + f(s), 0);
  const idtp = sum((s) => s.idtp);
  return {
    mota: (sum((s) => s.tp) - sum((s) => s.fp) - sum((s) => s.idsw)) / sum((s) => s.gtDetections),
    idf1: (2 * idtp) / (2 * idtp + sum((s) => s.idfp) + sum((s) => s.idfn)),
    idp: idtp / (idtp + sum((s) => s.idfp)),
    idsw: sum((s) => s.idsw),
    fp: sum((s) => s.fp),
  };
}

const table: string[] = [];

function scenario(name: string, options: Partial<SyntheticOptions>): { outcomes: Outcome[]; stream: Pooled; live: Pooled } {
  const outcomes = SEEDS.map((seed) => track(generateSequence({ seed, ...options })));
  const stream = pool(outcomes.map((o) => o.stream));
  const live = pool(outcomes.map((o) => o.live));
  const streamCeiling = pool(outcomes.map((o) => o.streamCeiling));
  const liveCeiling = pool(outcomes.map((o) => o.liveCeiling));
  const counts = outcomes.filter((o) => o.countsMatch).length;
  const row = (label: string, p: Pooled, c: Pooled) =>
    `  ${label} MOTA ${p.mota.toFixed(3)}  IDF1 ${p.idf1.toFixed(3)} (ideal ${c.idf1.toFixed(3)})  IDP ${p.idp.toFixed(3)}  IDSW ${p.idsw}  FP ${p.fp}`;
  table.push(`${name}  (unique counts right in ${counts}/${outcomes.length})`, row("stream:", stream, streamCeiling), row("live:  ", live, liveCeiling));
  return { outcomes, stream, live };
}

describe("tracking synthetic driving sequences (10 seeds each)", () => {
  afterAll(() => {
    console.log(`\nHazardTracker on synthetic sequences, pooled over seeds ${SEEDS[0]}..${SEEDS.at(-1)}:`);
    console.log(table.join("\n"));
  });

  it("keeps every hazard's identity at 43 km/h, 10 FPS, with IDF1 >= 0.95 over what the stream reports", () => {
    const { outcomes, stream } = scenario("43 km/h, 10 FPS, apart", { nonOverlapping: true });
    for (const { stream: s, live, streamCeiling, liveCeiling, countsMatch } of outcomes) {
      expect(s.idsw).toBe(0);
      expect(s.idp).toBeGreaterThanOrEqual(0.99);
      expect(countsMatch).toBe(true);
      // What IDF1 loses beyond the ideal tracker: tracks lost where hazards accelerate near the car.
      expect(s.idf1).toBeGreaterThanOrEqual(streamCeiling.idf1 - 0.03);
      expect(live.idf1).toBeGreaterThanOrEqual(liveCeiling.idf1 - 0.03);
    }
    expect(stream.idf1).toBeGreaterThanOrEqual(0.95);
  });

  it("reaches IDF1 >= 0.95 live too where hazards stay in view long enough for that to be possible", () => {
    const { outcomes, stream, live } = scenario("29 km/h, 10 FPS, apart, 2% misses", { ...CITY, nonOverlapping: true });
    for (const { stream: s, live: l, countsMatch } of outcomes) {
      expect(s.idsw).toBe(0);
      expect(countsMatch).toBe(true);
      expect(s.idf1).toBeGreaterThanOrEqual(0.97);
      expect(l.idf1).toBeGreaterThanOrEqual(0.94);
    }
    expect(stream.idf1).toBeGreaterThanOrEqual(0.98);
    expect(live.idf1).toBeGreaterThanOrEqual(0.95);
  });

  it("keeps identities with every third frame dropped, IDF1 >= 0.95 over what the stream reports", () => {
    for (const options of [{}, CITY]) {
      const label = options === CITY ? "29 km/h, 2% misses" : "43 km/h";
      const { outcomes, stream } = scenario(`${label}, every 3rd frame dropped, apart`, {
        ...options,
        nonOverlapping: true,
        dropEvery: 3,
      });
      for (const { stream: s, countsMatch } of outcomes) {
        expect(s.idsw).toBe(0);
        expect(s.idp).toBeGreaterThanOrEqual(0.99);
        expect(countsMatch).toBe(true);
      }
      expect(stream.idf1).toBeGreaterThanOrEqual(0.95);
    }
  });

  it("does not count short-lived false positives as hazards, nor confirm their tracks", () => {
    const { outcomes } = scenario("43 km/h, apart, false positives (<= 2 frames)", {
      nonOverlapping: true,
      falsePositiveRate: 0.2,
    });
    for (const { stream, countsMatch } of outcomes) {
      expect(countsMatch).toBe(true);
      expect(stream.fp).toBe(0);
      expect(stream.idsw).toBe(0);
    }
  });

  it("degrades gracefully when hazards may overlap (reported, loosely bounded)", () => {
    const { outcomes } = scenario("43 km/h, may overlap", {});
    const idsw = outcomes.reduce((a, o) => a + o.stream.idsw, 0);
    expect(idsw).toBeLessThanOrEqual(5);
    for (const { stream } of outcomes) expect(stream.idf1).toBeGreaterThan(0.85);
  });
});
