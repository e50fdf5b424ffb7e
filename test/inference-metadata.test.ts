import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolveModelInfo } from "../src/inference/model-info.js";
import { ModelMetadataError, parseImgsz, parseMetadataYaml, parseOnnxMetadata, parsePythonNames } from "../src/inference/model-metadata.js";
import { OnnxFormatError, readOnnxMetadataProps } from "../src/inference/onnx-metadata.js";

describe("parsePythonNames", () => {
  it.each<[string, string, string[]]>([
    ["Ultralytics dict", "{0: 'crack', 1: 'pothole'}", ["crack", "pothole"]],
    ["double quotes (names with an apostrophe)", `{0: "driver's side", 1: 'curb'}`, ["driver's side", "curb"]],
    ["spaces, commas, colons and braces inside names", "{0: 'traffic light', 1: 'a, b: {c}'}", ["traffic light", "a, b: {c}"]],
    ["escapes", String.raw`{0: 'it\'s', 1: 'back\\slash', 2: 'caf\xe9', 3: '\u00e9t\u00e9'}`, ["it's", "back\\slash", "café", "été"]],
    ["unicode as is", "{0: 'выбоина', 1: '裂缝'}", ["выбоина", "裂缝"]],
    ["trailing comma and newlines", "{\n 0: 'a',\n 1: 'b',\n}", ["a", "b"]],
    ["gaps get placeholders", "{0: 'a', 2: 'c'}", ["a", "class1", "c"]],
    ["out of order keys", "{1: 'b', 0: 'a'}", ["a", "b"]],
    ["list form", "['crack', 'pothole']", ["crack", "pothole"]],
    ["empty dict", "{}", []],
  ])("%s", (_n, text, expected) => {
    expect(parsePythonNames(text)).toEqual(expected);
  });

  it.each([
    ["not a literal", "crack, pothole"],
    ["unterminated string", "{0: 'crack}"],
    ["missing colon", "{0 'crack'}"],
    ["string key", "{'a': 'crack'}"],
    ["duplicate id", "{0: 'a', 0: 'b'}"],
    ["huge id", "{99999999: 'a'}"],
    ["trailing garbage", "{0: 'a'} extra"],
    ["bad escape", String.raw`{0: '\q'}`],
    ["missing close", "{0: 'a'"],
  ])("refuses %s with a clear error", (_n, text) => {
    expect(() => parsePythonNames(text)).toThrow(ModelMetadataError);
    expect(() => parsePythonNames(text)).toThrow(/metadata 'names'/);
  });

  it("stays linear on adversarial input", () => {
    const start = performance.now();
    expect(() => parsePythonNames(`{0: '${"\\\\".repeat(200_000)}`)).toThrow(ModelMetadataError);
    expect(() => parsePythonNames("{".repeat(500_000))).toThrow(ModelMetadataError);
    expect(performance.now() - start).toBeLessThan(500);
  });
});

describe("imgsz, stride and the ONNX props", () => {
  it.each<[string, { width: number; height: number }]>([
    ["[640, 640]", { width: 640, height: 640 }],
    ["640", { width: 640, height: 640 }],
    ["[384, 640]", { width: 640, height: 384 }],
    ["(480, 640)", { width: 640, height: 480 }],
  ])("imgsz %s", (text, expected) => {
    expect(parseImgsz(text)).toEqual(expected);
  });

  it.each(["", "[0, 640]", "[640, 640, 3]", "big", "[-1, 640]", "[99999, 1]"])("refuses imgsz %j", (text) => {
    expect(() => parseImgsz(text)).toThrow(ModelMetadataError);
  });

  it("reads the keys Ultralytics writes and ignores the rest", () => {
    const props = new Map([
      ["names", "{0: 'crack', 1: 'pothole'}"],
      ["imgsz", "[640, 640]"],
      ["stride", "32"],
      ["description", "Ultralytics YOLOv8n model"],
      ["task", "detect"],
      ["args", "{'batch': 1}"],
    ]);
    expect(parseOnnxMetadata(props)).toEqual({
      classNames: ["crack", "pothole"],
      imgsz: { width: 640, height: 640 },
      stride: 32,
      description: "Ultralytics YOLOv8n model",
    });
    expect(parseOnnxMetadata(new Map())).toEqual({});
    expect(() => parseOnnxMetadata(new Map([["stride", "thirty-two"]]))).toThrow(/stride/);
  });
});

describe("metadata.yaml beside an OpenVINO IR", () => {
  it("parses what Ultralytics writes (yaml.safe_dump)", () => {
    const text = [
      "description: Ultralytics YOLOv8n model trained on /a/very/long/path/that/goes/on/and/on/to/make/the/line/wrap/data.yaml",
      "  continued here",
      "author: Ultralytics",
      "date: '2025-01-01T00:00:00.000000'",
      "stride: 32",
      "task: detect",
      "batch: 1",
      "imgsz:",
      "- 480",
      "- 640",
      "names:",
      "  0: crack",
      "  1: pothole",
      "  2: 'yes'",
      "  3: 'traffic: cone'",
      "args:",
      "  batch: 1",
    ].join("\n");
    expect(parseMetadataYaml(text)).toEqual({
      description: "Ultralytics YOLOv8n model trained on /a/very/long/path/that/goes/on/and/on/to/make/the/line/wrap/data.yaml continued here",
      stride: 32,
      imgsz: { width: 640, height: 480 },
      classNames: ["crack", "pothole", "yes", "traffic: cone"],
    });
  });

  it.each([
    ["not YAML", "names: [unclosed"],
    ["a list", "- a\n- b\n"],
    ["names of the wrong type", "names: 5\n"],
    ["an alias bomb", "a: &a [x, x]\nb: &b [*a, *a]\nnames: *b\n"],
  ])("refuses %s", (_n, text) => {
    expect(() => parseMetadataYaml(text)).toThrow(ModelMetadataError);
  });
});

describe("resolveModelInfo", () => {
  const base = { path: "m.onnx", metadata: {}, outputShape: ["batch", 6, "anchors"] };
  it("uses metadata imgsz for dynamic inputs and flags dynamic dims", () => {
    const info = resolveModelInfo({ ...base, metadata: { imgsz: { width: 640, height: 384 } }, inputShape: ["batch", 3, "height", "width"] });
    expect(info).toMatchObject({ inputWidth: 640, inputHeight: 384, dynamicInputSize: true, dynamicBatch: true, stride: 32 });
  });
  it("prefers the fixed input shape and names classes from the output channels", () => {
    const info = resolveModelInfo({ ...base, metadata: { imgsz: { width: 640, height: 640 } }, inputShape: [1, 3, 320, 416] });
    expect(info).toMatchObject({ inputWidth: 416, inputHeight: 320, dynamicInputSize: false, dynamicBatch: false });
    expect(info.classNames).toEqual(["class0", "class1"]);
  });
  it("falls back to 640 and no names for an end-to-end head without metadata", () => {
    const info = resolveModelInfo({ ...base, inputShape: [1, 3, -1, [32, 1024]], outputShape: [1, 300, 6] });
    expect(info).toMatchObject({ inputWidth: 640, inputHeight: 640, dynamicInputSize: true, classNames: [] });
  });
  it.each([
    ["3-D input", [1, 3, 640]],
    ["4 channels", [1, 4, 640, 640]],
  ])("refuses a %s", (_n, inputShape) => {
    expect(() => resolveModelInfo({ ...base, inputShape })).toThrow(/input/);
  });
});

/** Hand-encodes the protobuf of a tiny ModelProto: ir_version, a big graph to skip, metadata_props. */
function encodeModel(props: Array<[string, string]>, graphBytes: number): Buffer {
  const varint = (n: number): number[] => {
    const out: number[] = [];
    for (; n >= 0x80; n = Math.floor(n / 128)) out.push((n % 128) | 0x80);
    out.push(n);
    return out;
  };
  const field = (num: number, payload: Buffer): Buffer => Buffer.concat([Buffer.from([...varint(num * 8 + 2), ...varint(payload.length)]), payload]);
  const str = (num: number, s: string): Buffer => field(num, Buffer.from(s, "utf8"));
  const parts = [Buffer.from([0x08, 0x09]), field(7, Buffer.alloc(graphBytes, 0xab))];
  for (const [k, v] of props) parts.push(field(14, Buffer.concat([str(1, k), str(2, v)])));
  return Buffer.concat(parts);
}

describe("readOnnxMetadataProps", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "hazard-onnx-"));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("finds metadata_props after a large graph without parsing the graph", async () => {
    const file = join(dir, "m.onnx");
    await writeFile(file, encodeModel([["names", "{0: 'a'}"], ["imgsz", "[320, 320]"], ["ключ", "значение"]], 3_000_000));
    expect(await readOnnxMetadataProps(file)).toEqual(new Map([["names", "{0: 'a'}"], ["imgsz", "[320, 320]"], ["ключ", "значение"]]));
  });

  it.each([
    ["a truncated file", (b: Buffer) => b.subarray(0, b.length - 5)],
    ["a JPEG", () => Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46])],
    ["text", () => Buffer.from("<?xml version='1.0'?><net/>")],
  ])("refuses %s with OnnxFormatError", async (_n, mangle) => {
    const file = join(dir, "bad.onnx");
    await writeFile(file, mangle(encodeModel([["names", "{0: 'a'}"]], 100)));
    await expect(readOnnxMetadataProps(file)).rejects.toThrow(OnnxFormatError);
  });

  const real = fileURLToPath(new URL("../../shared/testdata/models/pothole-yolov8n-640-int8/best_dynamic_int8.onnx", import.meta.url));
  it.skipIf(!existsSync(real))("reads the real YOLOv8 export", async () => {
    const meta = parseOnnxMetadata(await readOnnxMetadataProps(real));
    expect(meta).toMatchObject({ classNames: ["obstacle", "pothole"], imgsz: { width: 640, height: 640 }, stride: 32 });
  });
});
