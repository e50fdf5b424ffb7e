import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DetectionService,
  StreamDetectionsRequestSchema,
  type StreamDetectionsRequest,
  type StreamDetectionsResponse,
} from "../gen/hazard/stream/v1/detection_service_pb.js";
import { ClassFilterSchema, ErrorCode, ErrorDetailSchema, FrameSchema, SessionConfigSchema } from "../gen/hazard/stream/v1/types_pb.js";
import { RequestStream as PushStream } from "../src/http/request-stream.js";
import { StreamReader } from "./support/async-queue.js";
import { badFrames, sceneJpeg } from "./support/images.js";
import { startServer, type TestServer } from "./support/server.js";

const frameMsg = (frameId: string, imageData: Uint8Array): StreamDetectionsRequest =>
  create(StreamDetectionsRequestSchema, {
    message: { case: "frame", value: create(FrameSchema, { frameId, imageData, timestamp: Date.now() / 1000 }) },
  });

const isOutcome = (id: string) => (m: StreamDetectionsResponse) =>
  (m.message.case === "result" || m.message.case === "error" || m.message.case === "dropped") &&
  m.message.value.frameId === id;

describe("gRPC bidi StreamDetections (h2c, real server)", () => {
  let server: TestServer;
  let client: Client<typeof DetectionService>;

  beforeAll(async () => {
    // A high FPS allowance: these tests send frames back to back and are not about rate limits.
    server = await startServer({ STREAMING_MAX_FPS: "240", STREAMING_DEFAULT_FPS: "240" });
    client = createClient(DetectionService, createGrpcTransport({ baseUrl: server.baseUrl }));
  });
  afterAll(() => server.close());

  it("streams detections and applies a mid-stream config change from the next frame on", async () => {
    const { bytes, boxes } = await sceneJpeg(11);
    expect(boxes.some((b) => b.className === "crack") && boxes.some((b) => b.className === "pothole")).toBe(true);
    const requests = new PushStream<StreamDetectionsRequest>();
    const reader = new StreamReader(client.streamDetections(requests));

    // The session opens with the first request (it may be a StreamStart), so send a frame first.
    requests.push(frameMsg("f1", bytes));
    const first = await reader.next();
    expect(first?.message.case).toBe("session");
    const session = first?.message.case === "session" ? first.message.value : undefined;
    expect(session?.clientId).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(session?.configVersion).toBe(1);

    const before = (await reader.until(isOutcome("f1"))).at(-1);
    expect(before?.message.case).toBe("result");
    const r1 = before?.message.case === "result" ? before.message.value : undefined;
    expect(r1?.configVersion).toBe(1);
    expect(r1?.imageWidth).toBe(640);
    expect(r1?.imageHeight).toBe(480);
    const classes1 = new Set(r1?.detections.map((d) => d.className));
    expect(classes1).toEqual(new Set(["crack", "pothole"]));

    requests.push(
      create(StreamDetectionsRequestSchema, {
        message: {
          case: "configUpdate",
          value: create(SessionConfigSchema, { classFilter: create(ClassFilterSchema, { classNames: ["pothole"] }) }),
        },
      }),
    );
    const applied = (await reader.until((m) => m.message.case === "configApplied")).at(-1);
    expect(applied?.message.case === "configApplied" && applied.message.value.configVersion).toBe(2);

    requests.push(frameMsg("f2", bytes));
    const after = (await reader.until(isOutcome("f2"))).at(-1);
    const r2 = after?.message.case === "result" ? after.message.value : undefined;
    expect(r2?.configVersion).toBe(2);
    expect(r2?.detections.length).toBeGreaterThan(0);
    expect(r2?.detections.every((d) => d.className === "pothole")).toBe(true);

    requests.end();
    // Clean end once every frame is answered (flow-control notices may still come first).
    for (let m = await reader.next(); m !== undefined; m = await reader.next()) expect(m.message.case).not.toBe("result");
  });

  it("answers each bad frame with INVALID_IMAGE and keeps serving the stream", async () => {
    const requests = new PushStream<StreamDetectionsRequest>();
    const reader = new StreamReader(client.streamDetections(requests));

    const bad = [{ name: "empty", bytes: new Uint8Array() }, ...(await badFrames())];
    for (const { name, bytes } of bad) {
      await new Promise((r) => setTimeout(r, 20)); // stay under the 240-FPS limit: bad frames are answered in ~1 ms
      requests.push(frameMsg(name, bytes));
      const out = (await reader.until(isOutcome(name))).at(-1);
      expect(out?.message.case, `${name}: ${JSON.stringify(out?.message.value, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v))}`).toBe("error");
      if (out?.message.case === "error") {
        expect(out.message.value.code, name).toBe(ErrorCode.INVALID_IMAGE);
        expect(out.message.value.message, name).not.toMatch(/\/work|node_modules|at .*\.ts/);
      }
    }
    requests.push(frameMsg("good", (await sceneJpeg(3)).bytes));
    const good = (await reader.until(isOutcome("good"))).at(-1);
    expect(good?.message.case).toBe("result");
    requests.end();
    for (let m = await reader.next(); m !== undefined; m = await reader.next()) expect(m.message.case).not.toBe("error");
  });

  it("refuses an invalid config update with a field-level error and keeps the stream", async () => {
    const requests = new PushStream<StreamDetectionsRequest>();
    const reader = new StreamReader(client.streamDetections(requests));
    requests.push(
      create(StreamDetectionsRequestSchema, {
        message: { case: "configUpdate", value: create(SessionConfigSchema, { fpsLimit: 500 }) },
      }),
    );
    const err = (await reader.until((m) => m.message.case === "error")).at(-1);
    expect(err?.message.case === "error" && err.message.value.code).toBe(ErrorCode.INVALID_CONFIG);
    expect(err?.message.case === "error" && err.message.value.message).toMatch(/fps_limit/);
    requests.push(frameMsg("after", (await sceneJpeg(4)).bytes));
    const out = (await reader.until(isOutcome("after"))).at(-1);
    expect(out?.message.case === "result" && out.message.value.configVersion).toBe(1);
    requests.end();
  });

  it("also serves bidi over the Connect protocol on HTTP/2", async () => {
    const connectClient = createClient(
      DetectionService,
      createConnectTransport({ baseUrl: server.baseUrl, httpVersion: "2" }),
    );
    const requests = new PushStream<StreamDetectionsRequest>();
    const reader = new StreamReader(connectClient.streamDetections(requests));
    requests.push(frameMsg("c1", (await sceneJpeg(5)).bytes));
    const out = (await reader.until(isOutcome("c1"))).at(-1);
    expect(out?.message.case).toBe("result");
    requests.end();
  });
});

describe("unary Detect shares the processing slots (bounded queue)", () => {
  let server: TestServer;
  let client: Client<typeof DetectionService>;

  beforeAll(async () => {
    server = await startServer({ INFERENCE_SLOTS: "1", DETECT_QUEUE_SIZE: "2", STREAMING_MAX_FPS: "240", STREAMING_DEFAULT_FPS: "240" });
    client = createClient(DetectionService, createGrpcTransport({ baseUrl: server.baseUrl }));
  });
  afterAll(() => server.close());

  it("refuses a flood beyond the queue with RESOURCE_EXHAUSTED and a retry hint, while a session keeps its turns", async () => {
    const { bytes } = await sceneJpeg(12);
    const requests = new PushStream<StreamDetectionsRequest>();
    const reader = new StreamReader(client.streamDetections(requests));
    requests.push(frameMsg("s1", bytes));
    // One frame in the slot, two calls waiting: the rest of the burst is refused at once, not queued.
    const calls = Array.from({ length: 16 }, (_, i) =>
      client.detect({ frame: create(FrameSchema, { frameId: `u${i}`, imageData: bytes }) }).then(
        (r) => ({ ok: r.result?.frameId }),
        (e: unknown) => ({ err: ConnectError.from(e) }),
      ),
    );
    requests.push(frameMsg("s2", bytes));
    const outcomes = await Promise.all(calls);
    const refused = outcomes.flatMap((o) => ("err" in o ? [o.err] : []));
    expect(outcomes.filter((o) => "ok" in o).length).toBeGreaterThanOrEqual(2);
    expect(refused.length).toBeGreaterThan(0);
    for (const err of refused) {
      expect(err.code).toBe(Code.ResourceExhausted);
      expect(err.findDetails(ErrorDetailSchema)[0]?.code).toBe(ErrorCode.RESOURCE_EXHAUSTED);
      expect(Number(err.metadata.get("grpc-retry-pushback-ms"))).toBeGreaterThanOrEqual(100);
      expect(Number(err.metadata.get("retry-after"))).toBeGreaterThanOrEqual(1);
    }
    // The session's frames were processed in turn with the unary calls, not after all of them.
    const s2 = (await reader.until(isOutcome("s2"))).at(-1);
    expect(s2?.message.case).toBe("result");
    requests.end();
    for (let m = await reader.next(); m !== undefined; m = await reader.next()) expect(m.message.case).not.toBe("result");
  });
});
