/**
 * Builds the default model from fixed filters (no downloaded or trained weights):
 *   tsx scripts/build-default-model.ts [output=models/road-hazard-filter.onnx]
 * Deterministic: the same source always writes the same bytes (tests compare with the committed file).
 */
import { mkdir, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { buildDefaultModel } from "./default-model/model.js";

const output = process.argv[2] ?? "models/road-hazard-filter.onnx";
const bytes = buildDefaultModel();
await mkdir(dirname(output), { recursive: true });
await writeFile(output, bytes);
console.log(`wrote ${output} (${bytes.length} bytes)`);
