import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DetectionService,
  StreamDetectionsRequestSchema,
  type StreamDetectionsRequest,
  type StreamDetectionsResponse,
} from "../gen/hazard/stream/v1/detection_service_pb.js";
import { SessionService } from "../gen/hazard/stream/v1/session_service_pb.js";
import { ErrorCode, FrameSchema } from "../gen/hazard/stream/v1/types_pb.js";
import { RequestStream } from "../src/http/request-stream.js";
import { StreamReader } from "./support/async-queue.js";
import { eventually, WsClient } from "./support/http-clients.js";
import { sceneJpeg } from "./support/images.js";
import { scrape, type Metrics } from "./support/metrics.js";
import { startServer, type TestServer } from "./support/server.js";

const STREAM = "hazard.stream.v1.DetectionService/StreamDetections";
const DETECT = "hazard.stream.v1.DetectionService/Detect";
/** Every label the service's own metrics may carry: closed sets only, nothing per client or frame. */
const ALLOWED_LABELS = new Set(["door", "reason", "code", "stage", "protocol", "kind", "method", "backend", "device", "model", "model_version", "le"]);

const frameRequest = (frameId: string, imageData: Uint8Array): StreamDetectionsRequest =>
  create(StreamDetectionsRequestSchema, { message: { case: "frame", value: create(FrameSchema, { frameId, imageData }) } });
const outcomeOf = (m: StreamDetectionsResponse) =>
  m.message.case === "result" || m.message.case === "error" || m.message.case === "dropped" ? m.message : undefined;
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("Prometheus /metrics on the main port", () => {
  let server: TestServer;
  let good: Uint8Array;
  beforeAll(async () => {
    // Tracking off: every frame's path is the plain pipeline; 30 fps and a pause between frames
    // keep the gRPC stream's frames clear of the FPS limit.
    server = await startServer({ STREAMING_DEFAULT_FPS: "30", STREAMING_ENABLE_TRACKING: "false" });
    good = (await sceneJpeg(41)).bytes;
  });
  afterAll(() => server.close());

  it("counters and histograms move with door, outcome and stage labels after traffic on several doors", async () => {
    const before = await scrape(server.baseUrl);
    const clientIds: string[] = [];

    // --- gRPC bidi: a good frame, an undecodable one, a good one; the stream stays open for now.
    const grpc = createClient(DetectionService, createGrpcTransport({ baseUrl: server.baseUrl }));
    const requests = new RequestStream<StreamDetectionsRequest>();
    const abortStream = new AbortController();
    const reader = new StreamReader(grpc.streamDetections(requests, { signal: abortStream.signal }));
    // The server answers once the first message arrives: an explicit start (defaults) opens the session.
    requests.push(create(StreamDetectionsRequestSchema, { message: { case: "start", value: {} } }));
    const opened = await reader.until((m) => m.message.case === "session");
    const session = opened.at(-1)?.message;
    if (session?.case === "session") clientIds.push(session.value.clientId);
    const answers: Array<NonNullable<ReturnType<typeof outcomeOf>>> = [];
    for (const [id, bytes] of [["g1", good], ["g2", new TextEncoder().encode("not an image")], ["g3", good]] as const) {
      requests.push(frameRequest(id, bytes));
      const seen = await reader.until((m) => outcomeOf(m)?.value.frameId === id);
      const answer = outcomeOf(seen.at(-1) as StreamDetectionsResponse);
      if (answer) answers.push(answer);
      await pause(60);
    }
    expect(answers.map((a) => [a.case, a.value.frameId])).toEqual([["result", "g1"], ["error", "g2"], ["result", "g3"]]);
    expect(answers[1]?.case === "error" && answers[1].value.code).toBe(ErrorCode.INVALID_IMAGE);

    // --- WebSocket at 1 fps: the first frame is processed, the second (sent at once) dropped.
    const wsUrl = `${server.baseUrl.replace("http", "ws")}/stream/detection?fps_limit=1&notify=true&session_info=true`;
    const ws = new WsClient(wsUrl);
    await ws.opened;
    const created = await ws.until((m) => m.type === "session_created");
    clientIds.push(String(created.client_id));
    ws.ws.send(good);
    await ws.until((m) => m.type === "detection_result");
    ws.ws.send(good);
    const dropped = await ws.until((m) => m.type === "frame_dropped");
    expect(dropped.reason).toBe("FPS_LIMIT");

    // --- Unary Detect over Connect on HTTP/1.1 (door "detect").
    const connect = createClient(DetectionService, createConnectTransport({ baseUrl: server.baseUrl, httpVersion: "1.1" }));
    await connect.detect({ frame: create(FrameSchema, { frameId: "u1", imageData: good }) });

    const during = await scrape(server.baseUrl);
    const delta = (name: string, labels: Record<string, string> = {}) => during.get(name, labels) - before.get(name, labels);

    expect(delta("hazard_frames_received_total", { door: "grpc_stream" })).toBe(3);
    expect(delta("hazard_frames_processed_total", { door: "grpc_stream" })).toBe(2);
    expect(delta("hazard_frames_failed_total", { door: "grpc_stream", code: "invalid_image" })).toBe(1);
    expect(delta("hazard_frames_received_total", { door: "websocket" })).toBe(2);
    expect(delta("hazard_frames_processed_total", { door: "websocket" })).toBe(1);
    expect(delta("hazard_frames_dropped_total", { door: "websocket", reason: "fps_limit" })).toBe(1);
    expect(delta("hazard_frames_received_total", { door: "detect" })).toBe(1);
    expect(delta("hazard_frames_processed_total", { door: "detect" })).toBe(1);

    // Stage histograms: one observation per processed frame (4); queue_wait only for session frames (3).
    for (const stage of ["preprocess", "inference", "postprocess"]) {
      expect(delta("hazard_frame_stage_seconds_count", { stage }), stage).toBe(4);
      expect(delta("hazard_frame_stage_seconds_sum", { stage }), stage).toBeGreaterThan(0);
    }
    expect(delta("hazard_frame_stage_seconds_count", { stage: "queue_wait" })).toBe(3);
    expect(delta("hazard_frame_latency_seconds_count", { door: "grpc_stream" })).toBe(2);
    expect(delta("hazard_frame_latency_seconds_count", { door: "websocket" })).toBe(1);
    expect(delta("hazard_frame_latency_seconds_count", { door: "detect" })).toBe(1);
    // Cumulative buckets: +Inf holds every observation.
    expect(delta("hazard_frame_latency_seconds_bucket", { door: "grpc_stream", le: "+Inf" })).toBe(2);
    expect(delta("hazard_rpc_handled_total", { method: DETECT, code: "ok" })).toBe(1);

    // Gauges read at scrape time, while the stream and the WebSocket are open.
    expect(during.get("hazard_sessions_active", { door: "grpc_stream" })).toBe(1);
    expect(during.get("hazard_sessions_active", { door: "websocket" })).toBe(1);
    expect(during.get("hazard_stream_subscribers", { kind: "websocket" })).toBe(1);
    expect(during.get("hazard_rpc_streams_active", { method: STREAM })).toBe(2); // the gRPC stream and the WebSocket's in-process one
    expect(during.get("hazard_connections_open", { protocol: "h2" })).toBeGreaterThanOrEqual(1);
    expect(during.get("hazard_connections_open", { protocol: "http1" })).toBeGreaterThanOrEqual(1);

    // Engine and model, process defaults.
    expect(during.get("hazard_model_ready")).toBe(1);
    const info = during.samples.find((s) => s.name === "hazard_engine_info");
    expect(info?.labels).toMatchObject({ backend: "onnxruntime", device: "cpu", model: "road-hazard-filter.onnx" });
    expect(info?.labels.model_version).toMatch(/^[0-9a-f]{12}$/);
    expect(during.get("hazard_engine_concurrency", { backend: "onnxruntime" })).toBe(server.app.engine.concurrency);
    for (const name of ["process_cpu_user_seconds_total", "process_resident_memory_bytes", "nodejs_eventloop_lag_seconds", "nodejs_heap_size_used_bytes"]) {
      expect(during.has(name), name).toBe(true);
    }

    // Bounded cardinality: only closed-set labels, no client id anywhere, a fixed handful of series.
    assertBoundedLabels(during, clientIds);

    // Closing both streams ends their sessions; the gauges follow.
    ws.close();
    requests.end();
    await eventually(async () => {
      const after = await scrape(server.baseUrl);
      expect(after.get("hazard_sessions_active", { door: "grpc_stream" })).toBe(0);
      expect(after.get("hazard_sessions_active", { door: "websocket" })).toBe(0);
      expect(after.get("hazard_stream_subscribers", { kind: "websocket" })).toBe(0);
      expect(after.get("hazard_rpc_streams_active", { method: STREAM })).toBe(0);
    });
    abortStream.abort();
  });

  it("RPC codes are labelled as Connect spells them (invalid_argument, not_found)", async () => {
    const sessions = createClient(SessionService, createGrpcTransport({ baseUrl: server.baseUrl }));
    const before = await scrape(server.baseUrl);
    const id = (await sessions.createSession({})).session?.clientId ?? "";
    const invalid = await sessions.updateSessionConfig({ clientId: id, config: { fpsLimit: 999 } }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e).code,
    );
    expect(invalid).toBe(Code.InvalidArgument);
    await sessions.getSession({ clientId: "no-such-session" }).catch(() => undefined);
    await sessions.deleteSession({ clientId: id });
    const after = await scrape(server.baseUrl);
    const delta = (method: string, code: string) =>
      after.get("hazard_rpc_handled_total", { method: `hazard.stream.v1.SessionService/${method}`, code }) -
      before.get("hazard_rpc_handled_total", { method: `hazard.stream.v1.SessionService/${method}`, code });
    expect(delta("UpdateSessionConfig", "invalid_argument")).toBe(1);
    expect(delta("GetSession", "not_found")).toBe(1);
    expect(delta("DeleteSession", "ok")).toBe(1);
    const codes = new Set(after.samples.filter((x) => x.name === "hazard_rpc_handled_total").map((x) => x.labels.code));
    for (const code of codes) expect(code, "a code label").toMatch(/^(ok|[a-z]+(_[a-z]+)*)$/);
    expect(codes.has("invalidargument")).toBe(false);
  });

  it("scraping is cheap to repeat and stable: a second scrape has the same series", async () => {
    const a = await scrape(server.baseUrl);
    const b = await scrape(server.baseUrl);
    const keys = (m: Metrics) =>
      m.samples.filter((s) => s.name.startsWith("hazard_")).map((s) => `${s.name}${JSON.stringify(s.labels)}`).sort();
    expect(keys(b)).toEqual(keys(a));
  });
});

function assertBoundedLabels(m: Metrics, clientIds: string[]): void {
  const own = m.samples.filter((s) => s.name.startsWith("hazard_"));
  for (const s of own) {
    for (const [k, v] of Object.entries(s.labels)) {
      expect(ALLOWED_LABELS.has(k), `${s.name} has label ${k}`).toBe(true);
      for (const id of clientIds) expect(v.includes(id), `${s.name}{${k}} carries a client id`).toBe(false);
    }
  }
  // Doors × outcomes × stages × buckets: a few hundred at most, however many clients came and went.
  expect(own.length).toBeLessThan(600);
}

describe("METRICS_PORT", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer({ METRICS_PORT: "0" });
  });
  afterAll(() => server.close());

  it("serves /metrics on its own port and no longer on the main (public) one", async () => {
    const port = server.app.server.metricsAddress()?.port;
    expect(port).toBeGreaterThan(0);
    expect(port).not.toBe(server.address.port);
    const own = await scrape(`http://127.0.0.1:${port}`);
    expect(own.get("hazard_model_ready")).toBe(1);
    expect((await fetch(`${server.baseUrl}/metrics`)).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${port}/stream/health`)).status).toBe(404);
  });
});
