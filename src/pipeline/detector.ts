import type { InferenceEngine, RgbImage, RunOptions, Tensor } from "../inference/engine.js";
import { openImage, type ImageLimits } from "./decode-image.js";
import { chwTensor, letterbox, letterboxRgb, type Letterbox } from "./letterbox.js";
import { nonMaxSuppression, type ScoredBox } from "./nms.js";
import { PipelineError, type DetectOptions, type FrameDetections, type PixelDetection } from "./types.js";
import { decodeYoloOutput, detectLayout } from "./yolo-output.js";

/** Ultralytics `predict` defaults, which users validated their models with. */
export const DEFAULT_DETECT_OPTIONS: Readonly<DetectOptions> = Object.freeze({
  confidenceThreshold: 0.25,
  iouThreshold: 0.7,
  maxDetections: 300,
});

/** Larger inputs cost quadratically more and no road model is trained beyond this. */
export const MAX_INPUT_SIDE = 4096;

/**
 * Image bytes in, detections in source pixels out: decode → letterbox → engine → YOLO decode →
 * class-aware NMS → back to source pixels. Safe to call concurrently; the engine queues runs.
 */
export class Detector {
  constructor(
    readonly engine: InferenceEngine,
    readonly limits: ImageLimits,
  ) {}

  async detect(image: Uint8Array, options: DetectOptions = DEFAULT_DETECT_OPTIONS): Promise<FrameDetections> {
    const t0 = performance.now();
    const { width: inputWidth, height: inputHeight } = this.#inputSize(options);
    const opened = await openImage(image, this.limits);
    const box = letterbox(opened.width, opened.height, inputWidth, inputHeight);
    let input: RgbImage;
    try {
      input = await letterboxRgb(opened.image, box, inputWidth, inputHeight);
    } catch (e) {
      throw new PipelineError("invalid_image", "the image data is corrupt or truncated", { cause: e });
    }

    const t1 = performance.now();
    let started = t1;
    let output: Tensor;
    try {
      const run: RunOptions = { transferInput: true, onStart: () => (started = performance.now()) };
      // The engine makes the float tensor where it can: off the event loop, into memory it reuses.
      output = this.engine.runImage ? await this.engine.runImage(input, run) : await this.engine.run(chwTensor(input), run);
    } catch (e) {
      throw new PipelineError("inference", "inference failed", { cause: e });
    }

    const t2 = performance.now();
    const detections = this.#postprocess(output, options, box, opened.width, opened.height);
    const t3 = performance.now();
    return {
      detections,
      imageWidth: opened.width,
      imageHeight: opened.height,
      inputWidth,
      inputHeight,
      timings: { preprocessMs: t1 - t0, engineWaitMs: started - t1, inferenceMs: t2 - started, postprocessMs: t3 - t2 },
    };
  }

  #inputSize(options: DetectOptions): { width: number; height: number } {
    const m = this.engine.model;
    const size = options.inputSize;
    if (size === undefined || (size.width === m.inputWidth && size.height === m.inputHeight)) {
      return { width: m.inputWidth, height: m.inputHeight };
    }
    if (!m.dynamicInputSize) {
      throw new PipelineError(
        "invalid_options",
        `this model only accepts ${m.inputWidth}×${m.inputHeight} input, not ${size.width}×${size.height}`,
      );
    }
    for (const side of [size.width, size.height]) {
      if (!Number.isInteger(side) || side < m.stride || side > MAX_INPUT_SIDE || side % m.stride !== 0) {
        throw new PipelineError(
          "invalid_options",
          `input size ${size.width}×${size.height} is invalid: each side must be a multiple of ${m.stride} up to ${MAX_INPUT_SIDE}`,
        );
      }
    }
    return { width: size.width, height: size.height };
  }

  #postprocess(
    output: Tensor,
    options: DetectOptions,
    box: Letterbox,
    imageWidth: number,
    imageHeight: number,
  ): PixelDetection[] {
    const names = this.engine.model.classNames;
    let candidates: ScoredBox[];
    try {
      const layout = detectLayout(output.dims, names.length);
      candidates = decodeYoloOutput(output, layout, options);
      // End-to-end heads already ran NMS in the graph; this pass then only sorts and caps.
      candidates = nonMaxSuppression(
        candidates,
        layout.kind === "anchors" ? options.iouThreshold : Number.POSITIVE_INFINITY,
        options.maxDetections,
      );
    } catch (e) {
      throw new PipelineError("inference", "the model output cannot be decoded", { cause: e });
    }
    const clamp = (v: number, max: number): number => Math.min(Math.max(v, 0), max);
    // Same mapping as Ultralytics scale_boxes: undo the padding, then the scale, then clip.
    const toX = (x: number): number => clamp((x - box.left) / box.scale, imageWidth);
    const toY = (y: number): number => clamp((y - box.top) / box.scale, imageHeight);
    return candidates.map((c) => ({
      x1: toX(c.x1),
      y1: toY(c.y1),
      x2: toX(c.x2),
      y2: toY(c.y2),
      confidence: c.score,
      classId: c.classId,
      className: names[c.classId] ?? `class${c.classId}`,
    }));
  }
}
