import { describe, expect, it } from "vitest";
import { BoxKalmanFilter, BYTETRACK_WEIGHTS } from "../src/tracking/kalman.js";
import { mulberry32 } from "../src/tracking/synthetic-tracks.js";

const TAU = 1 / 30;
const box = (cx: number, cy: number, w: number, h: number) => ({
  x1: cx - w / 2,
  y1: cy - h / 2,
  x2: cx + w / 2,
  y2: cy + h / 2,
});

/** Textbook dense 8×8 Kalman filter in ByteTrack's XYWH form, with dt and time-scaled noise. */
class DenseXywh {
  mean: number[];
  cov: number[][];
  constructor(
    b: { x1: number; y1: number; x2: number; y2: number },
    private readonly p = BYTETRACK_WEIGHTS.position,
    private readonly v = BYTETRACK_WEIGHTS.velocity,
  ) {
    const m = [(b.x1 + b.x2) / 2, (b.y1 + b.y2) / 2, b.x2 - b.x1, b.y2 - b.y1];
    this.mean = [...m, 0, 0, 0, 0];
    const sizes = [m[2], m[3], m[2], m[3]];
    const std = [...sizes.map((s) => 2 * p * s), ...sizes.map((s) => (10 * v * s) / TAU)];
    this.cov = diag(std.map((s) => s * s));
  }
  predict(dt: number) {
    const [w, h] = [this.mean[2], this.mean[3]];
    const r = dt / TAU;
    const sizes = [w, h, w, h];
    const q = [...sizes.map((s) => (this.p * s) ** 2 * r), ...sizes.map((s) => ((this.v * s) / TAU) ** 2 * r)];
    const f = identity(8);
    for (let i = 0; i < 4; i++) f[i][4 + i] = dt;
    this.mean = mulVec(f, this.mean);
    this.cov = add(mul(mul(f, this.cov), transpose(f)), diag(q));
  }
  update(b: { x1: number; y1: number; x2: number; y2: number }) {
    const z = [(b.x1 + b.x2) / 2, (b.y1 + b.y2) / 2, b.x2 - b.x1, b.y2 - b.y1];
    const [w, h] = [this.mean[2], this.mean[3]];
    const hm = identity(8).slice(0, 4);
    const rm = diag([w, h, w, h].map((s) => (this.p * s) ** 2));
    const s = add(mul(mul(hm, this.cov), transpose(hm)), rm);
    const k = mul(mul(this.cov, transpose(hm)), inverse(s));
    const y = z.map((zi, i) => zi - this.mean[i]);
    this.mean = this.mean.map((m, i) => m + k[i].reduce((acc, kij, j) => acc + kij * y[j], 0));
    this.cov = sub(this.cov, mul(mul(k, s), transpose(k)));
  }
}

describe("BoxKalmanFilter", () => {
  it("starts at the measured box with zero velocity and ByteTrack's initial spread", () => {
    const kf = new BoxKalmanFilter();
    const s = kf.initiate(box(100, 200, 40, 20));
    expect(Array.from(s.subarray(0, 8))).toEqual([100, 200, 40, 20, 0, 0, 0, 0]);
    // Position variance of cx is (2 · 1/20 · w)², of cy (2 · 1/20 · h)².
    expect(s[8]).toBeCloseTo((2 * 0.05 * 40) ** 2);
    expect(s[11]).toBeCloseTo((2 * 0.05 * 20) ** 2);
    expect(kf.box(s)).toEqual(box(100, 200, 40, 20));
  });

  it("moves the box by velocity × elapsed seconds", () => {
    const kf = new BoxKalmanFilter();
    const s = kf.initiate(box(100, 200, 40, 20));
    s[4] = 50; // px/s
    s[5] = -20;
    s[7] = 10;
    kf.predict(s, 0.3);
    expect(s[0]).toBeCloseTo(115);
    expect(s[1]).toBeCloseTo(194);
    expect(s[3]).toBeCloseTo(23);
  });

  it("predicts a gap of three intervals as far as three single steps, with more uncertainty than one", () => {
    const kf = new BoxKalmanFilter();
    const once = kf.initiate(box(100, 200, 40, 20));
    once[5] = 120;
    const thrice = Float64Array.from(once);
    const single = Float64Array.from(once);
    kf.predict(once, 0.3);
    for (let i = 0; i < 3; i++) kf.predict(thrice, 0.1);
    kf.predict(single, 0.1);
    expect(once[1]).toBeCloseTo(thrice[1]);
    expect(once[1] - 200).toBeCloseTo(3 * (single[1] - 200));
    expect(once[11]).toBeGreaterThan(single[11]);
  });

  it("treats a zero or negative interval as no motion", () => {
    const kf = new BoxKalmanFilter();
    const s = kf.initiate(box(100, 200, 40, 20));
    s[4] = 50;
    const before = Float64Array.from(s);
    kf.predict(s, 0);
    kf.predict(s, -1);
    expect(s).toEqual(before);
  });

  it("matches a dense 8×8 XYWH filter exactly (the covariance stays block-diagonal)", () => {
    const rng = mulberry32(7);
    for (const [pw, vw] of [[1 / 20, 1 / 160], [1 / 20, 1 / 20]]) {
      const first = box(300, 400, 60, 30);
      const kf = new BoxKalmanFilter(TAU, { position: pw, velocity: vw });
      const dense = new DenseXywh(first, pw, vw);
      const s = kf.initiate(first);
      let cx = 300, cy = 400, w = 60, h = 30;
      for (let step = 0; step < 25; step++) {
        const dt = [0.1, 0.2, 0.3, 0.05][Math.floor(rng() * 4)];
        kf.predict(s, dt);
        dense.predict(dt);
        cx += 80 * dt;
        cy += 150 * dt;
        w *= 1 + 0.5 * dt;
        h *= 1 + 0.5 * dt;
        if (rng() < 0.8) {
          const z = box(cx + 3 * (rng() - 0.5), cy + 3 * (rng() - 0.5), w * (1 + 0.04 * (rng() - 0.5)), h);
          kf.update(s, z);
          dense.update(z);
        }
        for (let i = 0; i < 8; i++) expect(s[i]).toBeCloseTo(dense.mean[i], 6);
        for (let k = 0; k < 4; k++) {
          const scale = Math.max(1, Math.abs(dense.cov[k][k]));
          expect(s[8 + 3 * k] / scale).toBeCloseTo(dense.cov[k][k] / scale, 9);
          expect(s[9 + 3 * k] / scale).toBeCloseTo(dense.cov[k][4 + k] / scale, 9);
          expect(s[10 + 3 * k] / scale).toBeCloseTo(dense.cov[4 + k][4 + k] / scale, 9);
          // Everything outside the four (position, velocity) blocks stays zero.
          for (let j = 0; j < 8; j++) if (j !== k && j !== 4 + k) expect(dense.cov[k][j]).toBeCloseTo(0, 6);
        }
      }
    }
  });

  it("learns a constant velocity from noisy boxes", () => {
    const kf = new BoxKalmanFilter(TAU, { velocity: 1 / 20 });
    const rng = mulberry32(3);
    const s = kf.initiate(box(100, 300, 50, 25));
    for (let i = 1; i <= 30; i++) {
      kf.predict(s, 0.1);
      kf.update(s, box(100 + 60 * 0.1 * i + (rng() - 0.5), 300 + 90 * 0.1 * i + (rng() - 0.5), 50, 25));
    }
    expect(s[4]).toBeGreaterThan(55);
    expect(s[4]).toBeLessThan(65);
    expect(s[5]).toBeGreaterThan(85);
    expect(s[5]).toBeLessThan(95);
  });

  it("pulls the state towards a measurement, not past it", () => {
    const kf = new BoxKalmanFilter();
    const s = kf.initiate(box(100, 100, 40, 40));
    kf.predict(s, 0.1);
    kf.update(s, box(110, 100, 40, 40));
    expect(s[0]).toBeGreaterThan(100);
    expect(s[0]).toBeLessThan(110);
    expect(s[4]).toBeGreaterThan(0);
  });
});

function identity(n: number): number[][] {
  return Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? 1 : 0)));
}
function diag(v: number[]): number[][] {
  return v.map((x, i) => v.map((_, j) => (i === j ? x : 0)));
}
function transpose(a: number[][]): number[][] {
  return a[0].map((_, j) => a.map((row) => row[j]));
}
function mul(a: number[][], b: number[][]): number[][] {
  return a.map((row) => b[0].map((_, j) => row.reduce((acc, x, k) => acc + x * b[k][j], 0)));
}
function mulVec(a: number[][], v: number[]): number[] {
  return a.map((row) => row.reduce((acc, x, k) => acc + x * v[k], 0));
}
function add(a: number[][], b: number[][]): number[][] {
  return a.map((row, i) => row.map((x, j) => x + b[i][j]));
}
function sub(a: number[][], b: number[][]): number[][] {
  return a.map((row, i) => row.map((x, j) => x - b[i][j]));
}
/** Gauss–Jordan with partial pivoting; no structure assumed. */
function inverse(m: number[][]): number[][] {
  const n = m.length;
  const a = m.map((row, i) => [...row, ...identity(n)[i]]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(a[r][c]) > Math.abs(a[p][c])) p = r;
    [a[c], a[p]] = [a[p], a[c]];
    const d = a[c][c];
    for (let j = 0; j < 2 * n; j++) a[c][j] /= d;
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = a[r][c];
      for (let j = 0; j < 2 * n; j++) a[r][j] -= f * a[c][j];
    }
  }
  return a.map((row) => row.slice(n));
}
