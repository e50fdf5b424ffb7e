import { munkres } from "munkres";

export interface Assignment {
  /** [row, col] pairs, ascending by row. */
  matches: Array<[number, number]>;
  unmatchedRows: number[];
  unmatchedCols: number[];
}

// Makes `cost <= maxCost` inclusive once the allowed costs are shifted to be strictly negative.
const INCLUSIVE_SLACK = 1e-9;

/**
 * Minimum-cost matching with a cost limit, the semantics of ByteTrack's `lap.lapjv(cost,
 * extend_cost=True, cost_limit)`: a pair is allowed when cost <= maxCost, and the matching minimises
 * the sum of matched costs plus maxCost/2 for every row and column left unmatched. That is the same
 * as minimising Σ (cost - maxCost) over matched pairs, so allowed pairs get that (negative) cost and
 * forbidden ones 0 (= "leave unmatched"), and a plain rectangular assignment solves it without
 * padding. A greedy or "solve, then drop pairs over the limit" approach can trade a good match for
 * two mediocre ones or lose one to a forbidden pair.
 *
 * IoU matrices of road hazards are sparse, so the problem is first split into connected components
 * of allowed pairs; most are 1×1 and never reach the O(n³) solver.
 *
 * `cost` is row-major, rows×cols; NaN and +Infinity are forbidden.
 */
export function solveAssignment(cost: ArrayLike<number>, rows: number, cols: number, maxCost: number): Assignment {
  if (cost.length < rows * cols) throw new RangeError("cost matrix is smaller than rows×cols");
  const limit = maxCost + INCLUSIVE_SLACK;
  // Union-find over rows (0..rows-1) and columns (rows..rows+cols-1).
  const parent = new Int32Array(rows + cols);
  for (let i = 0; i < parent.length; i++) parent[i] = i;
  const find = (a: number): number => {
    while (parent[a] !== a) {
      parent[a] = parent[parent[a]];
      a = parent[a];
    }
    return a;
  };
  const rowDegree = new Int32Array(rows);
  const colDegree = new Int32Array(cols);
  const lastCol = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      if (cost[r * cols + c] < limit) {
        rowDegree[r]++;
        colDegree[c]++;
        lastCol[r] = c;
        const a = find(r);
        const b = find(rows + c);
        if (a !== b) parent[a] = b;
      }
    }
  }
  const rowToCol = new Int32Array(rows).fill(-1);
  const colMatched = new Uint8Array(cols);
  // A row and a column that only see each other are a 1×1 component: match them directly.
  for (let r = 0; r < rows; r++) {
    if (rowDegree[r] === 1 && colDegree[lastCol[r]] === 1) {
      rowToCol[r] = lastCol[r];
      colMatched[lastCol[r]] = 1;
    }
  }
  const components = new Map<number, { rows: number[]; cols: number[] }>();
  const componentOf = (node: number): { rows: number[]; cols: number[] } => {
    const root = find(node);
    let comp = components.get(root);
    if (!comp) {
      comp = { rows: [], cols: [] };
      components.set(root, comp);
    }
    return comp;
  };
  for (let r = 0; r < rows; r++) if (rowDegree[r] > 0 && rowToCol[r] < 0) componentOf(r).rows.push(r);
  for (let c = 0; c < cols; c++) if (colDegree[c] > 0 && !colMatched[c]) componentOf(rows + c).cols.push(c);
  for (const comp of components.values()) {
    const sub = comp.rows.map((r) => {
      const line = new Float64Array(comp.cols.length);
      comp.cols.forEach((c, j) => {
        const v = cost[r * cols + c];
        line[j] = v < limit ? v - limit : 0;
      });
      return line;
    });
    for (const [i, j] of munkres(sub)) {
      if (sub[i][j] < 0) {
        rowToCol[comp.rows[i]] = comp.cols[j];
        colMatched[comp.cols[j]] = 1;
      }
    }
  }
  const matches: Array<[number, number]> = [];
  const unmatchedRows: number[] = [];
  const unmatchedCols: number[] = [];
  for (let r = 0; r < rows; r++) {
    if (rowToCol[r] >= 0) matches.push([r, rowToCol[r]]);
    else unmatchedRows.push(r);
  }
  for (let c = 0; c < cols; c++) if (!colMatched[c]) unmatchedCols.push(c);
  return { matches, unmatchedRows, unmatchedCols };
}
