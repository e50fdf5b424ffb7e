/**
 * Image-filter building blocks expressed as standard ONNX ops (opset 17), on NCHW float tensors
 * whose H and W are symbolic. Every helper keeps spatial size unless it says otherwise.
 */
import type { GraphBuilder } from "./onnx-graph.js";

/** Multiplier that turns "a is the maximum" into a 0/1 mask without Equal/Cast (contrast units ~0.01). */
const ARGMAX_SHARPNESS = 1e4;

export class Ops {
  private readonly sliceCache = new Map<string, string>();
  private readonly padCache = new Map<string, string>();

  /** Intermediate maps worth looking at while tuning; exposed as extra outputs by debug builds. */
  readonly taps = new Map<string, string>();

  constructor(readonly g: GraphBuilder) {}

  tap(name: string, value: string): string {
    this.taps.set(name, value);
    return value;
  }

  add(a: string, b: string | number): string {
    return this.g.op("Add", [a, this.val(b)]);
  }
  sub(a: string, b: string | number): string {
    return this.g.op("Sub", [a, this.val(b)]);
  }
  mul(a: string, b: string | number): string {
    return this.g.op("Mul", [a, this.val(b)]);
  }
  div(a: string, b: string | number): string {
    return this.g.op("Div", [a, this.val(b)]);
  }
  min(a: string, b: string | number): string {
    return this.g.op("Min", [a, this.val(b)]);
  }
  max(a: string, b: string | number): string {
    return this.g.op("Max", [a, this.val(b)]);
  }
  /** Element-wise max/min of any number of same-shaped maps in one node (ONNX Max/Min are variadic). */
  maxOf(xs: readonly string[]): string {
    return xs.length === 1 ? xs[0]! : this.g.op("Max", [...xs]);
  }
  minOf(xs: readonly string[]): string {
    return xs.length === 1 ? xs[0]! : this.g.op("Min", [...xs]);
  }
  relu(a: string): string {
    return this.g.op("Relu", [a]);
  }
  sigmoid(a: string): string {
    return this.g.op("Sigmoid", [a]);
  }
  /** clip(x, lo, hi), written as Max then Min with scalar constants. */
  clamp(a: string, lo: number, hi: number): string {
    return this.min(this.max(a, lo), hi);
  }

  /** Convolution with fixed weights [outC, inC/group, kh, kw]; "same" padding for odd kernels. */
  conv(
    x: string,
    weights: ArrayLike<number>,
    shape: readonly [number, number, number, number],
    opts: { group?: number; dilation?: number; stride?: number } = {},
  ): string {
    const [, , kh, kw] = shape;
    const d = opts.dilation ?? 1;
    const ph = (d * (kh - 1)) / 2;
    const pw = (d * (kw - 1)) / 2;
    return this.g.op("Conv", [x, this.g.floats(weights, shape)], {
      kernel_shape: [kh, kw],
      pads: [Math.floor(ph), Math.floor(pw), Math.ceil(ph), Math.ceil(pw)],
      dilations: [d, d],
      strides: [opts.stride ?? 1, opts.stride ?? 1],
      group: opts.group ?? 1,
    });
  }

  /** Mean over a kh×kw window that ignores padding, so borders are not darkened. */
  avgPool(x: string, kh: number, kw: number, stride = 1): string {
    const pads = stride === 1 ? [(kh - 1) >> 1, (kw - 1) >> 1, kh >> 1, kw >> 1] : [0, 0, 0, 0];
    return this.g.op("AveragePool", [x], {
      kernel_shape: [kh, kw],
      strides: [stride, stride],
      pads,
      count_include_pad: 0,
    });
  }

  /** k×k box mean as two 1-D passes: O(k) per pixel instead of O(k²) in runtimes' naive pooling. */
  boxMean(x: string, k: number): string {
    return this.avgPool(this.avgPool(x, 1, k), k, 1);
  }

  maxPool(x: string, k: number, stride = 1): string {
    const pads = stride === 1 ? [(k - 1) >> 1, (k - 1) >> 1, k >> 1, k >> 1] : [0, 0, 0, 0];
    return this.g.op("MaxPool", [x], { kernel_shape: [k, k], strides: [stride, stride], pads });
  }

  /** Nearest-neighbour upsampling by an integer factor. */
  upsample(x: string, factor: number): string {
    return this.g.op("Resize", [x, "", this.g.floats([1, 1, factor, factor])], {
      mode: "nearest",
      coordinate_transformation_mode: "asymmetric",
      nearest_mode: "floor",
    });
  }

  reduceMax(x: string, axis = 1): string {
    return this.g.op("ReduceMax", [x], { axes: [axis], keepdims: 1 });
  }

  concat(xs: readonly string[], axis = 1): string {
    return xs.length === 1 ? xs[0]! : this.g.op("Concat", [...xs], { axis });
  }

  /** Zero-padding (or edge replication) of the two spatial dims: [top, left, bottom, right]. */
  pad(x: string, [top, left, bottom, right]: readonly [number, number, number, number], mode: "constant" | "edge" = "constant"): string {
    return this.g.op("Pad", [x, this.g.ints([0, 0, top, left, 0, 0, bottom, right])], { mode });
  }

  /**
   * Spatial crop of a tensor that is `extra` cells larger than the wanted H×W in both dims:
   * rows [top, top+H), cols [left, left+W). Ends are negative offsets from the end, which keeps H and W
   * symbolic. Identical crops are built once (the integral-image corners repeat across box sizes).
   */
  crop(x: string, top: number, left: number, extra: number): string {
    const key = `${x}:${top}:${left}:${extra}`;
    const cached = this.sliceCache.get(key);
    if (cached) return cached;
    if (top < 0 || left < 0 || top > extra || left > extra) throw new Error(`crop ${top},${left} outside 0..${extra}`);
    // An end of 0 would mean "index 0", not "the end": use a huge end there, as ONNX exporters do.
    const end = (start: number): number => (start === extra ? 2 ** 62 : start - extra);
    const out = this.g.op("Slice", [x, this.g.ints([top, left]), this.g.ints([end(top), end(left)]), this.g.ints([2, 3])]);
    this.sliceCache.set(key, out);
    return out;
  }

  /** out(y, x) = in(y + dy, x + dx), zero outside. */
  shift(x: string, dy: number, dx: number): string {
    if (dy === 0 && dx === 0) return x;
    // Margins rounded up to a multiple of 8, so one padded copy serves many shifts of the same map.
    const m = Math.ceil(Math.max(Math.abs(dy), Math.abs(dx)) / 8) * 8;
    const key = `${x}:${m}`;
    const padded = this.padCache.get(key) ?? this.pad(x, [m, m, m, m]);
    this.padCache.set(key, padded);
    return this.crop(padded, m + dy, m + dx, 2 * m);
  }

  cumsum(x: string, axis: number, exclusive: boolean): string {
    return this.g.op("CumSum", [x, this.g.ints([axis], [])], { exclusive: exclusive ? 1 : 0 });
  }

  /** 1 where a equals m (m = a channel-wise max, so m >= a), 0 where it is clearly below. */
  isMax(a: string, m: string): string {
    return this.relu(this.sub(this.g.scalar(1), this.mul(this.sub(m, a), ARGMAX_SHARPNESS)));
  }

  /** Pixel-centre coordinates of a stride-s grid shaped like `like`: [x map, y map] in input pixels. */
  grid(like: string, stride: number): [string, string] {
    const ones = this.add(this.mul(like, 0), 1);
    const coord = (axis: number): string => this.mul(this.add(this.cumsum(ones, axis, true), 0.5), stride);
    return [coord(3), coord(2)];
  }

  private val(v: string | number): string {
    return typeof v === "number" ? this.g.scalar(v) : v;
  }
}
