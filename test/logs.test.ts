import { Writable } from "node:stream";
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DetectionService,
  StreamDetectionsRequestSchema,
  type StreamDetectionsRequest,
} from "../gen/hazard/stream/v1/detection_service_pb.js";
import { FrameSchema } from "../gen/hazard/stream/v1/types_pb.js";
import { RequestStream } from "../src/http/request-stream.js";
import { createLogger, scrub } from "../src/logger.js";
import { StreamReader } from "./support/async-queue.js";
import { eventually, postJson, WsClient } from "./support/http-clients.js";
import { sceneJpeg } from "./support/images.js";
import { startServer, type TestServer } from "./support/server.js";

type Line = Record<string, unknown>;

/** Every JSON line the server logs, at debug level, kept in memory. */
class LogCapture extends Writable {
  readonly lines: Line[] = [];
  readonly text: string[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    for (const l of chunk.toString("utf8").split("\n")) {
      if (l === "") continue;
      this.text.push(l);
      this.lines.push(JSON.parse(l) as Line);
    }
    done();
  }
}

describe("structured logs", () => {
  let server: TestServer;
  const logs = new LogCapture();
  let jpeg: Uint8Array;
  let b64: string;
  beforeAll(async () => {
    server = await startServer({ STREAMING_DEFAULT_FPS: "30", MAX_FRAME_BYTES: "200000" }, { logger: createLogger("debug", logs) });
    jpeg = (await sceneJpeg(21)).bytes;
    b64 = Buffer.from(jpeg).toString("base64");
  });
  afterAll(() => server.close());

  it("a stream's lines carry its request id, method, client id and door; the id is returned to the client", async () => {
    const client = createClient(DetectionService, createGrpcTransport({ baseUrl: server.baseUrl }));
    const requests = new RequestStream<StreamDetectionsRequest>();
    let header: Headers | undefined;
    const reader = new StreamReader(
      client.streamDetections(requests, { headers: { "x-request-id": "trace-abc.123" }, onHeader: (h) => (header = h) }),
    );
    requests.push(create(StreamDetectionsRequestSchema, { message: { case: "frame", value: create(FrameSchema, { frameId: "a", imageData: jpeg }) } }));
    await reader.until((m) => m.message.case === "result");
    requests.end();
    while ((await reader.next()) !== undefined);
    expect(header?.get("x-request-id")).toBe("trace-abc.123");
    await eventually(() => expect(logs.lines.some((l) => l.msg === "stream closed" && l.reqId === "trace-abc.123")).toBe(true));
    const mine = logs.lines.filter((l) => l.reqId === "trace-abc.123");
    const started = mine.find((l) => l.msg === "stream started");
    expect(started).toMatchObject({ rpc: "hazard.stream.v1.DetectionService/StreamDetections", via: "network", door: "GRPC_STREAM" });
    expect(typeof started?.clientId).toBe("string");
    expect(mine.find((l) => l.msg === "stream closed")).toMatchObject({ code: "ok", clientId: started?.clientId, door: "GRPC_STREAM" });
    expect(logs.lines.find((l) => l.msg === "session created" && l.clientId === started?.clientId)).toMatchObject({ door: "GRPC_STREAM" });
  });

  it("a client id that could forge log content is not reused: the server makes its own", async () => {
    const res = await fetch(`${server.baseUrl}/hazard.stream.v1.SessionService/ListSessions`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "x-request-id": 'x" , "level": 60' },
      body: "{}",
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-request-id")).toMatch(/^[0-9a-f]{16}$/);
  });

  it("no image data or base64 reaches the log, on any error path", async () => {
    const start = logs.text.length;
    // Connect JSON with broken base64 in image_data, and with a non-image in it.
    const rpc = (body: unknown) =>
      fetch(`${server.baseUrl}/hazard.stream.v1.DetectionService/Detect`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
    await rpc({ frame: { imageData: `${b64.slice(0, 5000)}!!!`, frameId: "bad-b64" } });
    await rpc({ frame: { imageData: Buffer.from("not an image at all ".repeat(200)).toString("base64"), frameId: "not-image" } });
    // REST: a truncated JPEG as base64 JSON, bad base64, an oversized body.
    const { json } = await postJson(`${server.baseUrl}/stream/sessions`, {});
    const id = String(json.client_id);
    await postJson(`${server.baseUrl}/stream/process/${id}`, { image_data: b64.slice(0, b64.length / 2), frame_id: "half" });
    await postJson(`${server.baseUrl}/stream/process/${id}`, { image_data: `${b64.slice(0, 3000)}$$$`, frame_id: "junk" });
    await postJson(`${server.baseUrl}/stream/process/${id}`, { image_data: b64.repeat(3), frame_id: "big" });
    // WebSocket: invalid JSON around base64, a bad frame, an oversized message.
    const ws = new WsClient(`${server.baseUrl.replace("http", "ws")}/stream/detection`);
    await ws.opened;
    ws.ws.send(`{"type":"frame","image_data":"${b64.slice(0, 4000)}`);
    await ws.next();
    ws.sendJson({ type: "frame", frame_id: "w-half", image_data: b64.slice(0, b64.length / 2) });
    await ws.next();
    ws.sendJson({ type: "nope", image_data: b64 });
    await ws.next();
    ws.close();
    await postJson(`${server.baseUrl}/stream/sessions/${id}`, {}, "DELETE");
    await new Promise((r) => setTimeout(r, 200)); // late lines (stream closed, session ended)

    const written = logs.text.slice(start).join("\n");
    expect(written.length).toBeGreaterThan(0);
    // No 40-character slice of the frame's base64 (nor of its raw bytes as latin1) appears anywhere.
    for (let i = 0; i + 40 <= Math.min(b64.length, 20_000); i += 997) {
      expect(written.includes(b64.slice(i, i + 40)), `base64 at ${i}`).toBe(false);
    }
    expect(/[A-Za-z0-9+/]{96,}/.test(written)).toBe(false);
  });

  it("scrub: long base64-like runs are replaced by their length, ordinary text is kept", () => {
    expect(scrub("short message")).toBe("short message");
    const run = "A".repeat(200);
    expect(scrub(`cannot decode ${run} from JSON`)).toBe("cannot decode [200 base64-like chars removed] from JSON");
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _e, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const log = createLogger("info", sink);
    log.info({ frame: { imageData: new Uint8Array([1, 2, 3]) }, image_data: "x", note: run }, `message with ${run}`);
    log.error({ err: new Error(`parse failed near ${run}`) }, "failed");
    // Call sites also log a message as `err`; that must neither throw nor skip the scrub.
    log.warn({ err: `store unavailable near ${run}` }, "not published");
    const out = lines.join("");
    expect(out).not.toContain(run);
    expect(out).toContain("[image data]");
    expect(out).toContain("[200 base64-like chars removed]");
    expect(out).toContain("store unavailable near [200 base64-like chars removed]");
  });
});
