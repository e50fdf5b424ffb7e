import { describe, expect, it } from "vitest";
import { FpsLimiter } from "../src/streaming/rate-limiter.js";

/** Arrival times (ms) of `count` frames sent every `everyMs`, starting at 0. */
const arrivals = (count: number, everyMs: number) => Array.from({ length: count }, (_, i) => i * everyMs);

function accepted(limiter: FpsLimiter, times: number[]): number {
  return times.filter((t) => limiter.tryAcquire(t)).length;
}

describe("FpsLimiter (GCRA), on a modelled clock", () => {
  it.each([
    // offered fps, limit, seconds: a flood is held to the limit (plus the frame at t=0)
    { offered: 60, limit: 10, seconds: 2, expected: 21 },
    { offered: 30, limit: 1, seconds: 5, expected: 6 },
    { offered: 100, limit: 30, seconds: 1, expected: 31 },
  ])("$offered fps offered at fps_limit $limit for $seconds s: $expected accepted", ({ offered, limit, seconds, expected }) => {
    const times = arrivals(offered * seconds, 1000 / offered);
    expect(accepted(new FpsLimiter(limit), times)).toBe(expected);
  });

  it("accepts every frame of a camera sending at exactly the limit, even half an interval early", () => {
    const limiter = new FpsLimiter(10);
    const jittered = arrivals(50, 100).map((t, i) => (i % 2 === 1 ? t - 49 : t));
    expect(accepted(limiter, jittered)).toBe(50);
  });

  it("keeps no credit across a pause: a burst after silence gets one frame plus the jitter allowance", () => {
    const limiter = new FpsLimiter(10);
    expect(limiter.tryAcquire(0)).toBe(true);
    // 10 s of silence, then 10 frames at once.
    expect(accepted(limiter, Array.from({ length: 10 }, () => 10_000))).toBe(1);
    expect(limiter.tryAcquire(10_050)).toBe(true); // half an interval early
    expect(limiter.tryAcquire(10_060)).toBe(false);
  });

  it("takes a new limit at the next frame", () => {
    const limiter = new FpsLimiter(1);
    // 0..400 ms: the next frame is due at 1000 ms, 500 ms early at the soonest.
    expect(accepted(limiter, arrivals(5, 100))).toBe(1);
    limiter.setFps(10);
    expect(accepted(limiter, arrivals(10, 100).map((t) => t + 2000))).toBe(10);
  });
});
