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

/**
 * Watches this instance's load once a second: whether frames wait longer than they take to
 * process, or are superseded because the engine cannot keep up. From that it derives the engine's
 * capacity (frames per second), each active session's fair share of it, and the input size AUTO
 * sessions use — lowered after sustained overload, raised again after sustained calm.
 */
export class LoadMonitor {
  private processed = 0;
  private processingMsSum = 0;
  private queueMsSum = 0;
  private overloadDrops = 0;
  private overloadedFor = 0;
  private calmFor = 0;
  private levelIndex = 0;
  /** Mean processing time of recent frames (ms), smoothed. */
  meanProcessingMs = 0;

  constructor(
    private readonly concurrency: number,
    private readonly stepDownAfter = 2,
    private readonly stepUpAfter = 5,
  ) {}

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

  /** Frames per second the engine sustains at the current mean processing time. */
  get capacityFps(): number {
    return this.meanProcessingMs > 0 ? (1000 / this.meanProcessingMs) * this.concurrency : Number.POSITIVE_INFINITY;
  }

  /** Closes a one-second window. Returns true when the AUTO level changed. */
  tick(): boolean {
    const n = this.processed;
    const meanProc = n > 0 ? this.processingMsSum / n : 0;
    const meanQueue = n > 0 ? this.queueMsSum / n : 0;
    if (n > 0) this.meanProcessingMs = this.meanProcessingMs === 0 ? meanProc : 0.7 * this.meanProcessingMs + 0.3 * meanProc;
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
}
