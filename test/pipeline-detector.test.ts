import { crc32, deflateSync } from "node:zlib";
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import type { InferenceEngine, ModelInfo, Tensor } from "../src/inference/engine.js";
import { DEFAULT_DETECT_OPTIONS, Detector } from "../src/pipeline/detector.js";
import { PipelineError, type PipelineErrorKind } from "../src/pipeline/types.js";

const MODEL: ModelInfo = {
  path: "fake.onnx",
  classNames: ["obstacle", "pothole"],
  inputWidth: 64,
  inputHeight: 64,
  dynamicInputSize: true,
  dynamicBatch: false,
  stride: 32,
  description: "",
};

/** An engine that returns one fixed anchor-layout output: a box per given [cx, cy, w, h, s0, s1]. */
function fakeEngine(anchors: number[][], opts: { fail?: () => boolean; model?: Partial<ModelInfo> } = {}): InferenceEngine & { inputs: Tensor[] } {
  const inputs: Tensor[] = [];
  const n = anchors.length;
  const data = new Float32Array(6 * n);
  anchors.forEach((a, i) => a.forEach((v, c) => (data[c * n + i] = v)));
  return {
    backend: "onnxruntime",
    device: "cpu",
    model: { ...MODEL, ...opts.model },
    concurrency: 1,
    inputs,
    async run(input) {
      inputs.push(input);
      if (opts.fail?.()) throw new Error("native crash at /some/internal/path.cc:42");
      return { data, dims: [1, 6, n] };
    },
    async close() {},
  };
}

const LIMITS = { maxImageBytes: 1 << 20, maxImagePixels: 4_000_000 };

async function jpeg(width: number, height: number): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background: { r: 90, g: 90, b: 90 } } }).jpeg().toBuffer();
}

/** Noise compresses badly, so cutting the file really removes scan data. */
async function noisyJpeg(): Promise<Buffer> {
  const noise = { type: "gaussian" as const, mean: 128, sigma: 40 };
  return sharp({ create: { width: 320, height: 240, channels: 3, background: "black", noise } }).jpeg().toBuffer();
}

/** A PNG whose header claims 20000×20000 but whose data is a few bytes: decoding it would need 1.2 GB. */
function hugePngHeader(): Buffer {
  const chunk = (type: string, data: Buffer): Buffer => {
    const typed = Buffer.concat([Buffer.from(type, "ascii"), data]);
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    typed.copy(out, 4);
    out.writeUInt32BE(crc32(typed), 8 + data.length);
    return out;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(20000, 0);
  ihdr.writeUInt32BE(20000, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([signature, chunk("IHDR", ihdr), chunk("IDAT", deflateSync(Buffer.alloc(64))), chunk("IEND", Buffer.alloc(0))]);
}

async function expectPipelineError(p: Promise<unknown>, kind: PipelineErrorKind): Promise<PipelineError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PipelineError);
  expect((err as PipelineError).kind).toBe(kind);
  return err as PipelineError;
}

describe("Detector", () => {
  it("maps boxes from the letterboxed input back to source pixels and clips them", async () => {
    // 128×64 source → 64×64 input at scale 0.5 with 16 px padding above and below.
    const engine = fakeEngine([
      [32, 32, 16, 16, 0.9, 0.1], // centre of the image
      [2, 20, 8, 8, 0.1, 0.8], // pokes out of the left edge
      [50, 50, 10, 10, 0.2, 0.1], // below the confidence threshold
    ]);
    const r = await new Detector(engine, LIMITS).detect(await jpeg(128, 64));
    expect(r).toMatchObject({ imageWidth: 128, imageHeight: 64, inputWidth: 64, inputHeight: 64 });
    expect(r.detections).toEqual([
      { x1: 48, y1: 16, x2: 80, y2: 48, confidence: expect.closeTo(0.9, 6), classId: 0, className: "obstacle" },
      { x1: 0, y1: 0, x2: 12, y2: 16, confidence: expect.closeTo(0.8, 6), classId: 1, className: "pothole" },
    ]);
    expect(r.timings.preprocessMs).toBeGreaterThan(0);
    expect(engine.inputs[0].dims).toEqual([1, 3, 64, 64]);
  });

  it("applies the class filter, max detections and a dynamic input size", async () => {
    const engine = fakeEngine([
      [10, 10, 4, 4, 0.9, 0],
      [30, 30, 4, 4, 0.8, 0],
      [50, 50, 4, 4, 0, 0.7],
    ]);
    const detector = new Detector(engine, LIMITS);
    const onlyObstacles = await detector.detect(await jpeg(64, 64), { ...DEFAULT_DETECT_OPTIONS, classIds: new Set([0]), maxDetections: 1 });
    expect(onlyObstacles.detections.map((d) => d.confidence)).toEqual([expect.closeTo(0.9, 6)]);
    const r = await detector.detect(await jpeg(64, 64), { ...DEFAULT_DETECT_OPTIONS, inputSize: { width: 96, height: 32 } });
    expect(engine.inputs[1].dims).toEqual([1, 3, 32, 96]);
    expect(r).toMatchObject({ inputWidth: 96, inputHeight: 32 });
  });

  it.each([
    ["not a stride multiple", { width: 100, height: 64 }],
    ["zero", { width: 0, height: 64 }],
    ["huge", { width: 8192, height: 8192 }],
  ])("refuses an input size that is %s", async (_n, inputSize) => {
    const detector = new Detector(fakeEngine([]), LIMITS);
    await expectPipelineError(detector.detect(await jpeg(8, 8), { ...DEFAULT_DETECT_OPTIONS, inputSize }), "invalid_options");
  });

  it("refuses another input size when the model is static", async () => {
    const detector = new Detector(fakeEngine([], { model: { dynamicInputSize: false } }), LIMITS);
    const options = { ...DEFAULT_DETECT_OPTIONS, inputSize: { width: 32, height: 32 } };
    await expectPipelineError(detector.detect(await jpeg(8, 8), options), "invalid_options");
  });

  it("turns an engine failure into PipelineError('inference') without internals, and keeps working", async () => {
    let fail = true;
    const detector = new Detector(fakeEngine([[32, 32, 8, 8, 0.9, 0]], { fail: () => fail }), LIMITS);
    const err = await expectPipelineError(detector.detect(await jpeg(64, 64)), "inference");
    expect(err.message).not.toContain("/some/internal");
    fail = false;
    expect((await detector.detect(await jpeg(64, 64))).detections).toHaveLength(1);
  });
});

describe("Detector on bad images", () => {
  const good = jpeg(64, 48);
  const cases: Array<[string, () => Promise<Uint8Array>, PipelineErrorKind]> = [
    ["empty bytes", async () => new Uint8Array(0), "invalid_image"],
    ["a text file", async () => Buffer.from("this is not an image\n"), "invalid_image"],
    ["a JPEG cut in half", async () => (await noisyJpeg()).subarray(0, 18_000), "invalid_image"],
    // Only the EOI marker missing is not reliably detectable (libjpeg warns only if it still needed data),
    // so the short cut removes a little scan data too.
    ["a JPEG missing its last bytes", async () => (await noisyJpeg()).subarray(0, -200), "invalid_image"],
    ["a GIF", () => sharp({ create: { width: 4, height: 4, channels: 3, background: "red" } }).gif().toBuffer(), "invalid_image"],
    ["a TIFF", () => sharp({ create: { width: 4, height: 4, channels: 3, background: "red" } }).tiff().toBuffer(), "invalid_image"],
    ["an SVG", async () => Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>'), "invalid_image"],
    ["a PNG signature with garbage after it", async () => Buffer.concat([hugePngHeader().subarray(0, 8), Buffer.alloc(50, 7)]), "invalid_image"],
    ["a 20000×20000 PNG (header only)", async () => hugePngHeader(), "image_too_large"],
    ["more bytes than the limit", async () => Buffer.concat([await jpeg(8, 8), Buffer.alloc(LIMITS.maxImageBytes)]), "image_too_large"],
  ];

  it.each(cases)("refuses %s before inference, then handles a good image", async (_name, make, kind) => {
    const engine = fakeEngine([[32, 24, 8, 8, 0.9, 0]]);
    const detector = new Detector(engine, LIMITS);
    const bytes = await make();
    await expectPipelineError(detector.detect(bytes), kind);
    expect(engine.inputs).toHaveLength(0); // refused before any inference work

    expect((await detector.detect(await good)).detections).toHaveLength(1);
  });

  it("handles a one-pixel-high strip whose resize would round to zero rows", async () => {
    const detector = new Detector(fakeEngine([]), LIMITS);
    expect(await detector.detect(await jpeg(4000, 1))).toMatchObject({ imageWidth: 4000, imageHeight: 1, detections: [] });
  });

  it("accepts PNG and WebP and applies EXIF orientation", async () => {
    const detector = new Detector(fakeEngine([]), LIMITS);
    const base = sharp({ create: { width: 40, height: 20, channels: 3, background: "blue" } });
    expect((await detector.detect(await base.clone().png().toBuffer())).imageWidth).toBe(40);
    expect((await detector.detect(await base.clone().webp().toBuffer())).imageWidth).toBe(40);
    // Orientation 6 means "rotate 90° clockwise to display": the upright image is 20×40.
    const rotated = await base.clone().jpeg().withMetadata({ orientation: 6 }).toBuffer();
    expect(await detector.detect(rotated)).toMatchObject({ imageWidth: 20, imageHeight: 40 });
  });
});
