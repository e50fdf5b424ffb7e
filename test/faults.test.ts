import { spawn } from "node:child_process";
import { copyFile, mkdtemp, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus as S } from "../gen/grpc/health/v1/health_pb.js";
import {
  DetectionService,
  StreamDetectionsRequestSchema,
  type StreamDetectionsRequest,
  type StreamDetectionsResponse,
} from "../gen/hazard/stream/v1/detection_service_pb.js";
import { ErrorCode, ErrorDetailSchema, FrameSchema } from "../gen/hazard/stream/v1/types_pb.js";
import { RequestStream } from "../src/http/request-stream.js";
import { StreamReader } from "./support/async-queue.js";
import { eventually, getJson, postJson, RawSse, WsClient, type Json } from "./support/http-clients.js";
import { buildFaultModel, FAULT_MODEL_SIDE } from "./support/fault-model.js";
import { sceneJpeg } from "./support/images.js";
import { scrape } from "./support/metrics.js";
import { FILTER_MODEL, startServer, type TestServer } from "./support/server.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

const frameRequest = (frameId: string, imageData: Uint8Array): StreamDetectionsRequest =>
  create(StreamDetectionsRequestSchema, { message: { case: "frame", value: create(FrameSchema, { frameId, imageData }) } });
const startRequest = (): StreamDetectionsRequest => create(StreamDetectionsRequestSchema, { message: { case: "start", value: {} } });
type Outcome = Extract<StreamDetectionsResponse["message"], { case: "result" | "error" | "dropped" }>;
const outcomeOf = (m: StreamDetectionsResponse): Outcome | undefined =>
  m.message.case === "result" || m.message.case === "error" || m.message.case === "dropped" ? m.message : undefined;

/** A dark 64×64 PNG (no detections); with `poisoned`, its top-left corner is bright red, which makes the fault model throw. */
async function faultFrame(poisoned: boolean): Promise<Uint8Array> {
  const side = FAULT_MODEL_SIDE;
  let img = sharp({ create: { width: side, height: side, channels: 3, background: { r: 10, g: 10, b: 10 } } });
  if (poisoned) {
    const red = await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 255, g: 0, b: 0 } } }).png().toBuffer();
    img = img.composite([{ input: red, left: 0, top: 0 }]);
  }
  return new Uint8Array(await img.png().toBuffer());
}

function errorCodeOf(err: unknown): ErrorCode | undefined {
  return ConnectError.from(err).findDetails(ErrorDetailSchema)[0]?.code;
}

describe("faults: inference fails on one frame", () => {
  let dir: string;
  let server: TestServer;
  let ok: Uint8Array;
  let bad: Uint8Array;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "hazard-faults-"));
    await writeFile(join(dir, "fault.onnx"), buildFaultModel());
    server = await startServer({ MODEL_PATH: join(dir, "fault.onnx"), STREAMING_DEFAULT_FPS: "30", STREAMING_ENABLE_TRACKING: "false" });
    ok = await faultFrame(false);
    bad = await faultFrame(true);
  });
  afterAll(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("gRPC bidi: that frame gets INFERENCE_ERROR, the frames before and after get results, the stream goes on", async () => {
    const client = createClient(DetectionService, createGrpcTransport({ baseUrl: server.baseUrl }));
    const requests = new RequestStream<StreamDetectionsRequest>();
    const reader = new StreamReader(client.streamDetections(requests));
    requests.push(startRequest());
    const answers: Outcome[] = [];
    for (const [id, bytes] of [["f1", ok], ["f2", bad], ["f3", ok], ["f4", bad], ["f5", ok]] as const) {
      requests.push(frameRequest(id, bytes));
      const seen = await reader.until((m) => outcomeOf(m)?.value.frameId === id);
      const answer = outcomeOf(seen.at(-1) as StreamDetectionsResponse);
      if (answer) answers.push(answer);
      await pause(60); // a frame interval at 30 fps
    }
    expect(answers.map((a) => `${a.value.frameId}:${a.case}`)).toEqual(["f1:result", "f2:error", "f3:result", "f4:error", "f5:result"]);
    for (const a of answers) {
      if (a.case !== "error") continue;
      expect(a.value.code).toBe(ErrorCode.INFERENCE_ERROR);
      // What ORT said stays in the server log: the client learns which frame failed and how to branch.
      expect(a.value.message).toBe("inference failed");
    }
    requests.end();
    expect(await reader.next()).toBeUndefined(); // a clean end once every frame is answered
  });

  it("WebSocket and unary Detect: the same frame fails alone, with INFERENCE_ERROR; the failure is counted", async () => {
    const ws = new WsClient(`${server.baseUrl.replace("http", "ws")}/stream/detection?fps_limit=30`);
    await ws.opened;
    const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");
    ws.sendJson({ type: "frame", frame_id: "w1", image_data: b64(bad) });
    expect(await ws.next()).toMatchObject({ type: "error", error_code: "INFERENCE_ERROR", frame_id: "w1" });
    await pause(60);
    ws.sendJson({ type: "frame", frame_id: "w2", image_data: b64(ok) });
    expect(await ws.next()).toMatchObject({ type: "detection_result", data: { frame_id: "w2" } });
    ws.close();

    const detect = createClient(DetectionService, createConnectTransport({ baseUrl: server.baseUrl, httpVersion: "1.1" }));
    const err = await detect.detect({ frame: create(FrameSchema, { frameId: "u1", imageData: bad }) }).then(() => undefined, (e: unknown) => e);
    expect(ConnectError.from(err).code).toBe(Code.Internal);
    expect(errorCodeOf(err)).toBe(ErrorCode.INFERENCE_ERROR);
    const fine = await detect.detect({ frame: create(FrameSchema, { frameId: "u2", imageData: ok }) });
    expect(fine.result?.frameId).toBe("u2");

    const m = await scrape(server.baseUrl);
    expect(m.get("hazard_frames_failed_total", { door: "grpc_stream", code: "inference_error" })).toBe(2);
    expect(m.get("hazard_frames_failed_total", { door: "websocket", code: "inference_error" })).toBe(1);
    expect(m.get("hazard_frames_failed_total", { door: "detect", code: "inference_error" })).toBe(1);
  });
});

describe("faults: the model cannot be loaded", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "hazard-faults-"));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("a missing model: the server listens, health NOT_SERVING, every API call UNAVAILABLE with the reason; it loads once the file appears", async () => {
    const modelPath = join(dir, "arrives-later.onnx");
    const server = await startServer(
      { MODEL_PATH: modelPath, MODEL_LOAD_RETRY_MS: "50", MODEL_LOAD_RETRY_MAX_MS: "200" },
      { waitReady: false },
    );
    try {
      const grpc = createGrpcTransport({ baseUrl: server.baseUrl });
      const health = createClient(Health, grpc);
      await eventually(async () => expect((await scrape(server.baseUrl)).get("hazard_model_load_failures_total")).toBeGreaterThanOrEqual(2));
      expect((await health.check({ service: "" })).status).toBe(S.NOT_SERVING);

      // gRPC unary and bidi, Connect over HTTP/1.1: UNAVAILABLE, SERVICE_UNAVAILABLE, a message naming the cause.
      const detection = createClient(DetectionService, grpc);
      const unary = await detection.detect({ frame: create(FrameSchema, { imageData: new Uint8Array([1]) }) }).then(() => undefined, (e: unknown) => e);
      expect(ConnectError.from(unary).code).toBe(Code.Unavailable);
      expect(errorCodeOf(unary)).toBe(ErrorCode.SERVICE_UNAVAILABLE);
      const message = ConnectError.from(unary).rawMessage;
      expect(message).toMatch(/model is not loaded .*arrives-later\.onnx does not exist.*next attempt in/);
      expect(message).not.toContain(dir); // the model's directory is the operator's business (it is in the log)
      const stream = (async () => {
        const once = async function* () {
          yield startRequest();
        };
        for await (const _ of detection.streamDetections(once())) void _;
      })();
      await expect(stream).rejects.toMatchObject({ code: Code.Unavailable });

      // REST, SSE, WebSocket: the same refusal in the document's error format.
      const rest = await postJson(`${server.baseUrl}/stream/sessions`, {});
      expect(rest.status).toBe(503);
      expect(rest.json).toMatchObject({ type: "error", error_code: "SERVICE_UNAVAILABLE" });
      const healthJson = await getJson(`${server.baseUrl}/stream/health`);
      expect(healthJson.status).toBe(503);
      expect(healthJson.json).toMatchObject({ status: "unhealthy", serving_status: "NOT_SERVING", error_code: "SERVICE_UNAVAILABLE" });
      expect(String(healthJson.json.error)).toMatch(/does not exist/);
      const ws = new WsClient(`${server.baseUrl.replace("http", "ws")}/stream/detection`);
      expect(await ws.next()).toMatchObject({ type: "error", error_code: "SERVICE_UNAVAILABLE" });
      await ws.closedWith();

      // The file arrives: the next attempt loads it and the server starts serving, no restart.
      await copyFile(FILTER_MODEL, modelPath);
      await server.app.ready;
      expect((await health.check({ service: "" })).status).toBe(S.SERVING);
      const { bytes } = await sceneJpeg(5);
      const result = await detection.detect({ frame: create(FrameSchema, { frameId: "after", imageData: bytes }) });
      expect(result.result?.frameId).toBe("after");
      expect((await scrape(server.baseUrl)).get("hazard_model_ready")).toBe(1);
    } finally {
      await server.close();
    }
  });

  it("a corrupt model file: the process stays up answering NOT_SERVING and UNAVAILABLE, and stops cleanly on SIGTERM", async () => {
    const modelPath = join(dir, "corrupt.onnx");
    await writeFile(modelPath, Buffer.from("this is not a protobuf, let alone an ONNX model".repeat(100)));
    const proc = startProcess({ MODEL_PATH: modelPath, MODEL_LOAD_RETRY_MS: "100", MODEL_LOAD_RETRY_MAX_MS: "400" });
    const port = await proc.port;
    const baseUrl = `http://127.0.0.1:${port}`;
    // Several failed attempts later it is still there: no crash, no exit, no crash loop.
    await eventually(async () => expect((await scrape(baseUrl)).get("hazard_model_load_failures_total")).toBeGreaterThanOrEqual(3), 20_000);
    expect(proc.exitCode()).toBeUndefined();
    const health = createClient(Health, createGrpcTransport({ baseUrl }));
    expect((await health.check({ service: "" })).status).toBe(S.NOT_SERVING);
    const err = await createClient(DetectionService, createGrpcTransport({ baseUrl }))
      .detect({ frame: create(FrameSchema, { imageData: new Uint8Array([1]) }) })
      .then(() => undefined, (e: unknown) => e);
    expect(ConnectError.from(err).code).toBe(Code.Unavailable);
    expect(ConnectError.from(err).rawMessage).toMatch(/cannot load model corrupt\.onnx/);
    // The log has the full cause, with the path, once per attempt.
    expect(proc.logs.filter((l) => l.includes("model load failed")).length).toBeGreaterThanOrEqual(3);
    expect(proc.logs.join("\n")).toContain(modelPath);
    proc.child.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
  });
});

describe("faults: graceful shutdown with frames in flight", () => {
  it("in process: accepted frames are answered, late frames refused with SERVICE_UNAVAILABLE, every door is told, close() finishes", async () => {
    // A deadline far beyond the test's timeout: close() has to finish on its own (no keep-alive
    // connection or stream may hold it up), not by being cut off.
    const server = await startServer({ STREAMING_DEFAULT_FPS: "30", STREAMING_ENABLE_TRACKING: "false", SHUTDOWN_TIMEOUT_MS: "600000" });
    const base = server.baseUrl;
    // Large frames keep the pipeline busy for a while (decode + letterbox of 5 Mpx each), so the
    // late frames below certainly arrive while the accepted ones are still being processed.
    const big = (await sceneJpeg(3, 2560, 1920)).bytes;
    const b64 = Buffer.from(big).toString("base64");
    // Late frames are small, so they reach the server at once: refusal does not depend on content.
    const small = (await sceneJpeg(4, 64, 48)).bytes;
    const smallB64 = Buffer.from(small).toString("base64");

    // gRPC bidi
    const grpc = createClient(DetectionService, createGrpcTransport({ baseUrl: base }));
    const requests = new RequestStream<StreamDetectionsRequest>();
    const grpcSeen: StreamDetectionsResponse[] = [];
    const grpcDone = (async () => {
      for await (const m of grpc.streamDetections(requests)) grpcSeen.push(m);
    })();
    requests.push(startRequest());
    // WebSocket (notify: drops would be visible too)
    const ws = new WsClient(`${base.replace("http", "ws")}/stream/detection?notify=true`);
    await ws.opened;
    // REST + SSE
    const created = await postJson(`${base}/stream/sessions`, {});
    const id = String(created.json.client_id);
    const sse = new RawSse(`${base}/stream/events/${id}`);
    await sse.headersReceived;
    await eventually(() => expect(server.app.sessions.localSessions).toBe(3));

    requests.push(frameRequest("g1", big));
    ws.sendJson({ type: "frame", frame_id: "w1", image_data: b64 });
    expect((await postJson(`${base}/stream/process/${id}`, { frame_id: "s1", image_data: b64 })).json).toMatchObject({ accepted: true });
    // All three are on the server (counted at admission), and at least one is being processed.
    const received = async () => (await server.app.metrics.framesReceived.get()).values.reduce((n, v) => n + v.value, 0);
    await eventually(async () => expect(await received()).toBe(3), 20_000);
    await eventually(() => expect(server.app.sessions.inFlight).toBeGreaterThan(0));

    const closed = server.close();
    // Frames after shutdown began: each is answered with a refusal, not left in silence.
    requests.push(frameRequest("g2", small));
    ws.sendJson({ type: "frame", frame_id: "w2", image_data: smallB64 });
    const late = await postJson(`${base}/stream/process/${id}`, { frame_id: "s2", image_data: smallB64 }).catch(() => undefined);
    await closed;

    // gRPC: g1's result, g2 refused, then a clean end (no error).
    await grpcDone;
    const grpcOutcomes = grpcSeen.map(outcomeOf).filter((o) => o !== undefined);
    // The refusal of g2 is immediate, so it may come before g1's result.
    expect(grpcOutcomes.map((o) => `${o.value.frameId}:${o.case}`).sort()).toEqual(["g1:result", "g2:error"]);
    const refused = grpcOutcomes.find((o) => o.value.frameId === "g2");
    expect(refused?.case === "error" && refused.value.code).toBe(ErrorCode.SERVICE_UNAVAILABLE);
    expect(refused?.case === "error" && refused.value.message).toMatch(/shutting down/);

    // WebSocket: w1's result, w2 refused, close 1001 with a reason.
    const wsMessages: Json[] = [];
    for (;;) {
      const m = await ws.next().catch(() => undefined);
      if (!m) break;
      wsMessages.push(m);
    }
    const wsFrames = wsMessages.filter((m) => m.type === "detection_result" || m.type === "error" || m.type === "frame_dropped");
    expect(wsFrames.map((m) => `${String(m.frame_id ?? (m.data as Json | undefined)?.frame_id)}:${String(m.type)}`).sort()).toEqual([
      "w1:detection_result",
      "w2:error",
    ]);
    expect(wsFrames.find((m) => m.type === "error")).toMatchObject({ error_code: "SERVICE_UNAVAILABLE", frame_id: "w2" });
    expect(await ws.closedWith()).toEqual({ code: 1001, reason: "server shutting down" });

    // SSE: s1's result, then session_ended SHUTDOWN, then the stream ends. s2 was refused (503) or,
    // if its connection was already closed, failed to connect: either way the client knows.
    await sse.done;
    const events = sse.json();
    expect(events.filter((e) => e.type === "detection_result").map((e) => (e.data as Json).frame_id)).toEqual(["s1"]);
    expect(events.at(-1)).toEqual({ type: "session_ended", reason: "SHUTDOWN" });
    if (late) expect(late).toMatchObject({ status: 503, json: { error_code: "SERVICE_UNAVAILABLE", frame_id: "s2" } });
  });

  it("as a process on SIGTERM: every door is told, a stalled upload is cut at SHUTDOWN_TIMEOUT_MS, exit code 0", async () => {
    const proc = startProcess({
      MODEL_PATH: FILTER_MODEL,
      STREAMING_DEFAULT_FPS: "30",
      STREAMING_ENABLE_TRACKING: "false",
      SHUTDOWN_TIMEOUT_MS: "2000",
    });
    const port = await proc.port;
    await proc.ready;
    const base = `http://127.0.0.1:${port}`;
    const { bytes } = await sceneJpeg(9, 1280, 960);
    const b64 = Buffer.from(bytes).toString("base64");

    const requests = new RequestStream<StreamDetectionsRequest>();
    const grpcSeen: StreamDetectionsResponse[] = [];
    const grpcDone = (async () => {
      for await (const m of createClient(DetectionService, createGrpcTransport({ baseUrl: base })).streamDetections(requests)) grpcSeen.push(m);
    })();
    requests.push(frameRequest("g1", bytes));
    const ws = new WsClient(`ws://127.0.0.1:${port}/stream/detection?notify=true`);
    await ws.opened;
    ws.sendJson({ type: "frame", frame_id: "w1", image_data: b64 });
    const created = await postJson(`${base}/stream/sessions`, {});
    const id = String(created.json.client_id);
    const sse = new RawSse(`${base}/stream/events/${id}`);
    await sse.headersReceived;
    await postJson(`${base}/stream/process/${id}`, { frame_id: "s1", image_data: b64 });
    // An upload that never finishes: its connection is busy, so only the deadline closes it.
    const stalled = net.connect(port, "127.0.0.1");
    await new Promise((r) => stalled.once("connect", r));
    stalled.on("error", () => undefined);
    stalled.write(`POST /stream/process/${id} HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n`);
    stalled.write(bytes.subarray(0, 1000));
    await eventually(async () => expect(grpcSeen.some((m) => outcomeOf(m)?.value.frameId === "g1")).toBe(true), 20_000);
    await ws.until((m) => m.type === "detection_result");
    await sse.waitFor((m) => m.type === "detection_result");

    // Frames in flight at the signal: one more on each door.
    await pause(60);
    requests.push(frameRequest("g2", bytes));
    ws.sendJson({ type: "frame", frame_id: "w2", image_data: b64 });
    await postJson(`${base}/stream/process/${id}`, { frame_id: "s2", image_data: b64 });
    await pause(50); // g2 and w2 are on the server, not in our sockets
    proc.child.kill("SIGTERM");

    expect(await proc.exited).toBe(0);
    await grpcDone; // a clean end, not an error
    const answered = grpcSeen.map(outcomeOf).filter((o) => o !== undefined).map((o) => o.value.frameId);
    expect(answered).toEqual(["g1", "g2"]);
    expect(await ws.closedWith()).toEqual({ code: 1001, reason: "server shutting down" });
    await sse.done;
    const events = sse.json();
    const s2 = events.find((e) => (e.type === "detection_result" && (e.data as Json).frame_id === "s2") || e.frame_id === "s2");
    expect(s2).toBeDefined();
    expect(events.at(-1)).toEqual({ type: "session_ended", reason: "SHUTDOWN" });
    const log = proc.logs.join("\n");
    expect(log).toMatch(/SIGTERM: draining streams/);
    expect(log).toMatch(/shutdown complete/);
    expect(log).not.toMatch(/did not finish in time/);
    stalled.destroy();
  });
});

/** Starts `src/main.ts` as `npm start` does, on an ephemeral port; `port` resolves once it listens (ready or not). */
function startProcess(env: Record<string, string>) {
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
    cwd: ROOT,
    env: { ...process.env, PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: string[] = [];
  let code: number | null | undefined;
  let markReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  const port = new Promise<number>((resolve, reject) => {
    createInterface({ input: child.stdout }).on("line", (line) => {
      logs.push(line);
      if (line.includes("listening on")) markReady();
      const m = /"port":(\d+)/.exec(line);
      if (m && line.includes("open")) resolve(Number(m[1]));
    });
    child.stderr.on("data", (d: Buffer) => logs.push(d.toString()));
    child.once("exit", (c) => reject(new Error(`server exited early (${c}): ${logs.join("\n")}`)));
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (c) => {
      code = c;
      resolve(c);
    }),
  );
  return { child, port, ready, exited, logs, exitCode: () => code };
}
