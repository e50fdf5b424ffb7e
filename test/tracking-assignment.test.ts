import { describe, expect, it } from "vitest";
import { solveAssignment } from "../src/tracking/assignment.js";
import { mulberry32 } from "../src/tracking/synthetic-tracks.js";

/** Exhaustive search over every partial matching: the objective is Σ (cost - maxCost) over matched pairs. */
function bruteForce(cost: number[], rows: number, cols: number, maxCost: number): number {
  let best = 0;
  const usedCols = new Array<boolean>(cols).fill(false);
  const visit = (r: number, value: number): void => {
    if (r === rows) {
      best = Math.min(best, value);
      return;
    }
    visit(r + 1, value);
    for (let c = 0; c < cols; c++) {
      const v = cost[r * cols + c];
      if (usedCols[c] || !(v <= maxCost)) continue;
      usedCols[c] = true;
      visit(r + 1, value + v - maxCost);
      usedCols[c] = false;
    }
  };
  visit(0, 0);
  return best;
}

function objective(cost: number[], cols: number, maxCost: number, matches: Array<[number, number]>): number {
  return matches.reduce((sum, [r, c]) => sum + cost[r * cols + c] - maxCost, 0);
}

describe("solveAssignment", () => {
  it("finds the optimum of brute force on random rectangular matrices", () => {
    const rng = mulberry32(20240601);
    for (let trial = 0; trial < 400; trial++) {
      const rows = 1 + Math.floor(rng() * 5);
      const cols = 1 + Math.floor(rng() * 5);
      const maxCost = 0.3 + 0.6 * rng();
      const sparsity = rng();
      const cost = Array.from({ length: rows * cols }, () => (rng() < sparsity ? Number.POSITIVE_INFINITY : rng()));
      const a = solveAssignment(cost, rows, cols, maxCost);

      expect(objective(cost, cols, maxCost, a.matches)).toBeCloseTo(bruteForce(cost, rows, cols, maxCost), 9);
      for (const [r, c] of a.matches) expect(cost[r * cols + c]).toBeLessThanOrEqual(maxCost);
      // Every row and column is either matched exactly once or reported unmatched.
      const matchedRows = a.matches.map(([r]) => r);
      const matchedCols = a.matches.map(([, c]) => c);
      expect(new Set(matchedRows).size).toBe(matchedRows.length);
      expect(new Set(matchedCols).size).toBe(matchedCols.length);
      expect([...matchedRows, ...a.unmatchedRows].sort((x, y) => x - y)).toEqual([...Array(rows).keys()]);
      expect([...matchedCols, ...a.unmatchedCols].sort((x, y) => x - y)).toEqual([...Array(cols).keys()]);
    }
  });

  it("prefers one excellent match to two mediocre ones, as lapjv with cost_limit does", () => {
    // Track A fits detection 0 almost perfectly; B only fits 0 weakly; A also fits 1 weakly.
    // Maximising the number of matches would pair A–1 and B–0.
    const cost = [0.1, 0.75, 0.75, Number.POSITIVE_INFINITY];
    expect(solveAssignment(cost, 2, 2, 0.8).matches).toEqual([[0, 0]]);
  });

  it("treats the threshold as inclusive and NaN or Infinity as forbidden", () => {
    expect(solveAssignment([0.8], 1, 1, 0.8).matches).toEqual([[0, 0]]);
    expect(solveAssignment([0.8000001], 1, 1, 0.8).matches).toEqual([]);
    const a = solveAssignment([Number.NaN, Number.POSITIVE_INFINITY], 1, 2, 0.8);
    expect(a.matches).toEqual([]);
    expect(a.unmatchedRows).toEqual([0]);
    expect(a.unmatchedCols).toEqual([0, 1]);
  });

  it("handles empty sides", () => {
    expect(solveAssignment([], 0, 3, 0.5)).toEqual({ matches: [], unmatchedRows: [], unmatchedCols: [0, 1, 2] });
    expect(solveAssignment([], 2, 0, 0.5)).toEqual({ matches: [], unmatchedRows: [0, 1], unmatchedCols: [] });
  });

  it("solves independent blocks separately and still optimally", () => {
    // Two 2×2 blocks on the diagonal of a 4×4 matrix, each with a crossed optimum.
    const X = Number.POSITIVE_INFINITY;
    const cost = [0.5, 0.1, X, X, 0.1, 0.5, X, X, X, X, 0.4, 0.2, X, X, 0.2, 0.4];
    expect(solveAssignment(cost, 4, 4, 0.9).matches).toEqual([
      [0, 1],
      [1, 0],
      [2, 3],
      [3, 2],
    ]);
  });

  it("rejects a cost array smaller than rows×cols", () => {
    expect(() => solveAssignment([0.1], 2, 2, 0.5)).toThrow(RangeError);
  });
});
