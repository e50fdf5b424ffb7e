/**
 * Scores a model on a labelled YOLO data set through the service's own pipeline: it starts the
 * server (its own process, MODEL_PATH=<model>) on 127.0.0.1 and sends every image over gRPC Detect,
 * exactly as a client would, then prints per-class precision/recall at --conf and AP50.
 *
 *   npm run eval -- --model models/road-hazard-yolo.onnx --data ../shared/testdata/train/road-damage-br
 *   npm run eval -- --url http://127.0.0.1:8080 --data ../shared/testdata/images/potholes-67
 *
 * Options: --split FILE (default val.txt when the data set has one, else every image in images/),
 * --conf 0.25 (P/R threshold), --iou 0.7 (NMS IoU, the service default), --max-det 300,
 * --concurrency 2, --json FILE (write the report as JSON too).
 */
import { writeFile } from "node:fs/promises";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { startServer } from "../bench/server-child.js";
import { defaultSplit, openYoloDataset } from "../src/eval/dataset.js";
import { evaluateDataset, formatReport } from "../src/eval/evaluate.js";
import { serviceDetector } from "../src/eval/service-detector.js";

const { values: args } = parseArgs({
  options: {
    model: { type: "string" },
    url: { type: "string" },
    data: { type: "string" },
    split: { type: "string" },
    conf: { type: "string", default: "0.25" },
    iou: { type: "string", default: "0.7" },
    "max-det": { type: "string", default: "300" },
    concurrency: { type: "string", default: "2" },
    json: { type: "string" },
  },
});

async function main(): Promise<void> {
  if (!args.data || (!args.model && !args.url)) {
    throw new Error("usage: npm run eval -- (--model MODEL.onnx | --url http://host:port) --data YOLO_DATASET_DIR [--split val.txt]");
  }
  const root = resolve(args.data);
  const ds = await openYoloDataset(root, args.split ?? defaultSplit(root));
  const server = args.model ? await startServer(resolve(args.model)) : undefined;
  try {
    const baseUrl = server?.baseUrl ?? args.url ?? "";
    // A low threshold so AP sees the whole ranking; P/R are then counted at --conf.
    const detect = serviceDetector(baseUrl, { confidence: 0.001, iou: Number(args.iou), maxDetections: Number(args["max-det"]) });
    const t0 = performance.now();
    const report = await evaluateDataset(ds, {
      conf: Number(args.conf),
      concurrency: Number(args.concurrency),
      detect,
      onProgress: (done, total) => {
        if (done % 50 === 0 || done === total) process.stderr.write(`  ${done}/${total} images\n`);
      },
    });
    const seconds = (performance.now() - t0) / 1000;
    console.log(`model: ${args.model ?? `server at ${baseUrl}`}; data: ${root}${args.split ?? defaultSplit(root) ? ` (${args.split ?? defaultSplit(root)})` : ""}; NMS IoU ${args.iou}`);
    console.log(formatReport(report));
    console.log(`\n${(report.images / seconds).toFixed(1)} images/s end to end (${args.concurrency} in flight)`);
    if (args.json) await writeFile(args.json, JSON.stringify(report, null, 2) + "\n");
  } finally {
    await server?.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
