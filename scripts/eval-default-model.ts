/**
 * Recall and precision of a model on generated road scenes, through the service's own pipeline:
 *   tsx scripts/eval-default-model.ts [model=models/road-hazard-filter.onnx] [count=40] [firstSeed=1000] [WxH=640x480] [inputWxH]
 * inputWxH sets the model input size (dynamic models only; multiples of 32), default the model's own.
 */
import { loadEngine } from "../src/inference/load-engine.js";
import { DEFAULT_DETECT_OPTIONS, Detector } from "../src/pipeline/detector.js";
import { evaluateOnScenes } from "./default-model/evaluate.js";

const [model = "models/road-hazard-filter.onnx", count = "40", first = "1000", size = "640x480", input] = process.argv.slice(2);
const parseSize = (text: string): { width: number; height: number } => {
  const [width, height] = text.split("x").map(Number);
  if (!width || !height) throw new Error(`sizes look like 640x480, not ${text}`);
  return { width, height };
};
const { width, height } = parseSize(size);
const options = input ? { ...DEFAULT_DETECT_OPTIONS, inputSize: parseSize(input) } : DEFAULT_DETECT_OPTIONS;

const { engine } = await loadEngine({ modelPath: model, backend: "onnxruntime", threads: 1, concurrency: 1 });
try {
  const detector = new Detector(engine, { maxImageBytes: 64 << 20, maxImagePixels: 64_000_000 });
  const seeds = Array.from({ length: Number(count) }, (_, i) => Number(first) + i);
  const result = await evaluateOnScenes(detector, { seeds, width, height, quality: 90 }, options);
  const inputText = options.inputSize ? `${options.inputSize.width}x${options.inputSize.height}` : "native";
  console.log(
    `${model}: ${seeds.length} scenes ${width}x${height} (seeds ${seeds[0]}..${seeds.at(-1)}), JPEG q90, input ${inputText}, conf ${options.confidenceThreshold}, NMS IoU ${options.iouThreshold}`,
  );
  for (const c of result.classes) {
    console.log(
      `  ${c.className.padEnd(8)} IoU>=${c.iouThreshold}  TP ${c.tp}  FP ${c.fp}  FN ${c.fn}  recall ${c.recall.toFixed(3)}  precision ${c.precision.toFixed(3)}`,
    );
  }
  console.log(`  mean inference ${result.meanInferenceMs.toFixed(1)} ms (onnxruntime, 1 thread)`);
} finally {
  await engine.close();
}
