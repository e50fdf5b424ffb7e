/** What the split needs to know about one sender (a session, or the unary Detect calls together). */
export interface Claimant {
  /** Its own ceiling (a session's fps_limit; Infinity for unary calls). */
  limitFps: number;
  /** What it would send if allowed (its ceiling when it uses all it is given, else its observed rate). */
  demandFps: number;
}

/** Allowances are told in steps of 1/this fps (0.1): fine enough for pacing, coarse enough to read. */
export const ALLOWANCE_STEPS_PER_FPS = 10;
/** No session is told less than this, however many share the engine: it keeps getting results. */
export const MIN_ALLOWED_FPS = 0.5;

/**
 * The max-min fair level for sharing `totalFps` among claimants: everyone whose demand is below the
 * level gets all it asks for, the rest share what is left equally. Infinity when all demands fit.
 */
export function fairLevel(totalFps: number, claimants: readonly Claimant[]): number {
  const demands = claimants.map((c) => Math.max(0, Math.min(c.demandFps, c.limitFps))).sort((a, b) => a - b);
  let left = totalFps;
  for (let i = 0; i < demands.length; i++) {
    const equal = left / (demands.length - i);
    const d = demands[i] ?? 0;
    if (d > equal) return Math.max(0, equal);
    left -= d;
  }
  return Number.POSITIVE_INFINITY;
}

/**
 * Each claimant's allowance out of `totalFps`: the fair level capped by its own limit, rounded to the
 * nearest step (flooring to 0.5-fps steps threw away up to a third at 1–2 fps each). Claimants that
 * use less than the level are still told the level: they do not use it, and a smaller number would
 * only cap them once they want more, while their unused part already went to the others.
 */
export function splitAllowance(totalFps: number, claimants: readonly Claimant[]): number[] {
  const level = Number.isFinite(totalFps) ? fairLevel(totalFps, claimants) : Number.POSITIVE_INFINITY;
  return claimants.map((c) => {
    const share = Math.min(c.limitFps, level);
    if (share === c.limitFps) return share;
    const rounded = Math.round(share * ALLOWANCE_STEPS_PER_FPS) / ALLOWANCE_STEPS_PER_FPS;
    return Math.min(c.limitFps, Math.max(MIN_ALLOWED_FPS, rounded));
  });
}

/**
 * What a claimant would send if allowed, from what it offered in the last window: one that used
 * (nearly) all of its allowance may want more, up to its limit; one that used clearly less is held
 * to its observed rate with room to grow, so its unused share goes to the others.
 */
export function demandOf(offeredFps: number, allowedFps: number, limitFps: number): number {
  if (offeredFps >= 0.8 * allowedFps) return limitFps;
  return Math.min(limitFps, Math.max(offeredFps * 1.25, MIN_ALLOWED_FPS));
}
