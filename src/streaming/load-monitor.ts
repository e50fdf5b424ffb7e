import { Quality } from "../../gen/hazard/stream/v1/types_pb.js";

/** Scale factor of the model's native input size for each quality mode. */
export const QUALITY_SCALE: Record<Exclude<Quality, Quality.AUTO>, number> = {
  [Quality.UNSPECIFIED]: 1,
  [Quality.HIGH]: 1,
  [Quality.BALANCED]: 0.75,
  [Quality.FAST]: 0.5,
};

/** AUTO steps through these, from best to cheapest. */
const AUTO_LEVELS = [Quality.HIGH, Quality.BALANCED, Quality.FAST] as const;

/** Input size for a quality, rounded to a multiple of the model's stride (never below one stride). */
export function inputSizeFor(
  quality: Exclude<Quality, Quality.AUTO>,
  model: { inputWidth: number; inputHeight: number; stride: number },
): { width: number; height: number } {
  const scale = QUALITY_SCALE[quality];
  const round = (v: number) => Math.max(model.stride, Math.round((v * scale) / model.stride) * model.stride);
  return { width: round(model.inputWidth), height: round(model.inputHeight) };
}

/** A capacity sample needs this many finished frames; fewer (a slow model) extend it into the next tick. */
const MIN_SAMPLE_FRAMES = 6;
/** ...or this long, whatever the count. */
const MAX_SAMPLE_MS = 5000;
/** A sample counts as saturated when the slots were at least this busy on average. */
const SATURATED_FRACTION = 0.9;
/** An unsaturated sample only extrapolates, so it may raise the estimate by this factor at most. */
const MAX_RISE_PER_SAMPLE = 1.15;

/** One capacity sample, for logs and tests. */
export interface CapacitySample {
  /** Frames finished per second over the sample. */
  throughputFps: number;
  /** Time-weighted mean of the frames in flight (0..slots). */
  meanInFlight: number;
  /** Frames per second the slots would deliver if all were busy: throughput × slots / meanInFlight. */
  capacityFps: number;
  saturated: boolean;
}

/**
 * Watches this instance's load: whether frames wait longer than they take to process, or are
 * superseded because the engine cannot keep up. From that it derives the pipeline's capacity
 * (frames per second) and the input size AUTO sessions use — lowered after sustained overload,
 * raised again after sustained calm.
 *
 * Capacity comes from what the slots actually deliver, not from a per-frame time multiplied by a
 * nominal parallelism: a frame's time in its slot includes waiting for a free engine worker and
 * competing for the cores, so "1000 / time × concurrency" settled at ≈2/3 of the real throughput
 * with three slots on two workers. Instead the monitor integrates the frames in flight over time
 * (Little's law: throughput = mean in flight / mean time in slot) and scales the measured
 * throughput to all slots busy. When every slot was busy the sample *is* the measured throughput;
 * below that it is an extrapolation, trusted for decreases at once and for increases in steps of
 * MAX_RISE_PER_SAMPLE, so the allowance probes upward when there is headroom.
 */
export class LoadMonitor {
  private inFlight = 0;
  private lastChangeMs: number | undefined;
  // The current one-second window (AUTO quality).
  private processed = 0;
  private processingMsSum = 0;
  private queueMsSum = 0;
  private overloadDrops = 0;
  private overloadedFor = 0;
  private calmFor = 0;
  private levelIndex = 0;
  // The current capacity sample (one tick, or several for slow models).
  private sampleStartMs: number | undefined;
  private sampleFrames = 0;
  private sampleBusyMs = 0;
  /** Smoothed capacity estimate in frames per second; Infinity until the first sample. */
  capacityFps = Number.POSITIVE_INFINITY;
  lastSample: CapacitySample | undefined;

  constructor(
    private readonly slots: number,
    private readonly stepDownAfter = 2,
    private readonly stepUpAfter = 5,
  ) {}

  /** A frame took a processing slot. */
  frameStarted(nowMs: number): void {
    this.advance(nowMs);
    this.inFlight++;
  }

  /** A frame left its slot (processed or failed: either way the slot did the work). */
  frameFinished(nowMs: number): void {
    this.advance(nowMs);
    this.inFlight = Math.max(0, this.inFlight - 1);
    this.sampleFrames++;
  }

  /**
   * Times of a processed frame, for AUTO quality: `processingMs` is its pipeline time without
   * waits, `queueMs` every wait (in the session's queue, for a slot, for a free engine worker).
   */
  recordFrame(processingMs: number, queueMs: number): void {
    this.processed++;
    this.processingMsSum += processingMs;
    this.queueMsSum += queueMs;
  }

  /** A frame dropped because the engine fell behind (superseded, queue full). */
  recordOverloadDrop(): void {
    this.overloadDrops++;
  }

  get autoQuality(): Exclude<Quality, Quality.AUTO> {
    return AUTO_LEVELS[this.levelIndex] ?? Quality.HIGH;
  }

  /** Closes a one-second window. Returns true when the AUTO level changed. */
  tick(nowMs: number): boolean {
    this.advance(nowMs);
    this.sampleCapacity(nowMs);
    const n = this.processed;
    const meanProc = n > 0 ? this.processingMsSum / n : 0;
    const meanQueue = n > 0 ? this.queueMsSum / n : 0;
    const overloaded = this.overloadDrops > 0 || (n > 0 && meanQueue > meanProc);
    const calm = this.overloadDrops === 0 && meanQueue < 0.25 * Math.max(meanProc, 1);
    this.processed = this.processingMsSum = this.queueMsSum = this.overloadDrops = 0;
    this.overloadedFor = overloaded ? this.overloadedFor + 1 : 0;
    this.calmFor = calm ? this.calmFor + 1 : 0;
    const before = this.levelIndex;
    if (this.overloadedFor >= this.stepDownAfter && this.levelIndex < AUTO_LEVELS.length - 1) {
      this.levelIndex++;
      this.overloadedFor = 0;
    } else if (this.calmFor >= this.stepUpAfter && this.levelIndex > 0) {
      this.levelIndex--;
      this.calmFor = 0;
    }
    return this.levelIndex !== before;
  }

  /** Adds the slot time since the last change: in-flight count × elapsed ms. */
  private advance(nowMs: number): void {
    this.sampleStartMs ??= nowMs;
    const last = this.lastChangeMs ?? nowMs;
    if (nowMs > last) this.sampleBusyMs += this.inFlight * (nowMs - last);
    this.lastChangeMs = Math.max(nowMs, last);
  }

  private sampleCapacity(nowMs: number): void {
    const start = this.sampleStartMs ?? nowMs;
    const elapsed = nowMs - start;
    const frames = this.sampleFrames;
    if (frames === 0 && this.sampleBusyMs === 0) {
      // Idle: nothing to learn; start the next sample now so idle time does not dilute it.
      this.sampleStartMs = nowMs;
      return;
    }
    if (elapsed <= 0 || frames === 0 || (frames < MIN_SAMPLE_FRAMES && elapsed < MAX_SAMPLE_MS)) return;
    const meanInFlight = this.sampleBusyMs / elapsed;
    const throughputFps = (frames * 1000) / elapsed;
    const capacityFps = (frames * 1000 * this.slots) / this.sampleBusyMs;
    const saturated = meanInFlight >= SATURATED_FRACTION * this.slots;
    this.lastSample = { throughputFps, meanInFlight, capacityFps, saturated };
    const prev = this.capacityFps;
    if (!Number.isFinite(prev)) this.capacityFps = capacityFps;
    else if (saturated || capacityFps < prev) this.capacityFps = 0.5 * prev + 0.5 * capacityFps;
    else this.capacityFps = Math.min(prev * MAX_RISE_PER_SAMPLE, 0.5 * prev + 0.5 * capacityFps);
    this.sampleStartMs = nowMs;
    this.sampleFrames = 0;
    this.sampleBusyMs = 0;
  }
}
