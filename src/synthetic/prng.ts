/**
 * Small seeded PRNG so scenes are reproducible byte for byte on every machine (Math.random is not
 * seedable). mulberry32: 32-bit state, good enough for textures and layouts, and trivially portable.
 */
export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number;
  /** Integer uniform in [lo, hi] (both inclusive). */
  int(lo: number, hi: number): number;
  /** Standard normal (Box–Muller). */
  normal(): number;
  /** True with probability p. */
  chance(p: number): boolean;
}

export function createRng(seed: number): Rng {
  let state = seed >>> 0;
  let spare: number | undefined;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    uniform: (lo, hi) => lo + (hi - lo) * next(),
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    normal: () => {
      // Box–Muller yields two values per draw; keep the second for the next call.
      if (spare !== undefined) {
        const out = spare;
        spare = undefined;
        return out;
      }
      // 1 - u keeps the log argument in (0, 1].
      const r = Math.sqrt(-2 * Math.log(1 - next()));
      const a = 2 * Math.PI * next();
      spare = r * Math.sin(a);
      return r * Math.cos(a);
    },
    chance: (p) => next() < p,
  };
}

/**
 * Derives an independent seed from a parent seed and a label, so that e.g. adding a stain to the
 * layout does not change the shape of every pothole drawn after it (and a hazard keeps its shape
 * across the frames of a future driving sequence).
 */
export function deriveSeed(seed: number, ...labels: readonly number[]): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  for (const label of labels) {
    h = Math.imul(h ^ (label >>> 0), 0x85ebca6b) >>> 0;
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35) >>> 0;
    h ^= h >>> 16;
  }
  return h >>> 0;
}
