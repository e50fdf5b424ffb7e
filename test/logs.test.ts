import { Writable } from "node:stream";
import { create } from "@bufbuild/protobuf";
import http2 from "node:http2";
import { Code, createClient } from "@connectrpc/connect";
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

/** One call with `{client_id: "nope"}` over h2c, as sent on the wire; what came back, unparsed. */
function rawCall(
  baseUrl: string,
  path: string,
  contentType: string,
  requestId: string,
): Promise<{ head: http2.IncomingHttpHeaders; trailers?: http2.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(baseUrl);
    session.on("error", reject);
    const stream = session.request({ ":method": "POST", ":path": path, "content-type": contentType, te: "trailers", "x-request-id": requestId });
    let head: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders | undefined;
    const chunks: Buffer[] = [];
    stream.on("response", (h) => (head = h));
    stream.on("trailers", (t) => (trailers = t));
    stream.on("data", (d: Buffer) => chunks.push(d));
    stream.on("close", () => {
      session.close();
      resolve({ head, trailers, body: Buffer.concat(chunks) });
    });
    const msg = Buffer.concat([Buffer.from([0x0a, 4]), Buffer.from("nope")]);
    const envelope = Buffer.alloc(5);
    envelope.writeUInt32BE(msg.length, 1);
    stream.end(Buffer.concat([envelope, msg]));
  });
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

  it("a failed RPC carries its request id: Connect error headers, gRPC trailers, stream errors, calls Connect refuses itself", async () => {
    const base = server.baseUrl;
    // Connect unary, refused by the service (no such session): the error's response headers.
    const notFound = await fetch(`${base}/hazard.stream.v1.SessionService/GetSession`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "x-request-id": "fail-connect" },
      body: JSON.stringify({ clientId: "no-such-session" }),
    });
    expect(notFound.status).toBe(404);
    expect(notFound.headers.get("x-request-id")).toBe("fail-connect");
    // Refused by Connect before any interceptor (not JSON): still named, with a fresh id.
    const malformed = await fetch(`${base}/hazard.stream.v1.SessionService/GetSession`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: "{",
    });
    expect(malformed.status).toBe(400);
    expect(malformed.headers.get("x-request-id")).toMatch(/^[0-9a-f]{16}$/);

    // gRPC unary and streaming over h2: in the trailers, read off the wire (the response headers
    // carried the id before; the trailers, where the status is, did not).
    const grpcTrailers = async (method: string, id: string) => {
      const answer = await rawCall(base, `/hazard.stream.v1.SessionService/${method}`, "application/grpc", id);
      return answer.trailers ?? answer.head;
    };
    for (const [method, id] of [["GetSession", "fail-grpc"], ["WatchSession", "fail-grpc-stream"]] as const) {
      const trailers = await grpcTrailers(method, id);
      expect([method, trailers["grpc-status"], trailers["x-request-id"]]).toEqual([method, String(Code.NotFound), id]);
    }
    // Connect streaming: in the end-stream message's metadata.
    const connectStream = await rawCall(base, "/hazard.stream.v1.SessionService/WatchSession", "application/connect+proto", "fail-connect-stream");
    const end = JSON.parse(connectStream.body.subarray(5).toString("utf8")) as { error?: { code?: string }; metadata?: Record<string, string[]> };
    expect([end.error?.code, end.metadata?.["x-request-id"]]).toEqual(["not_found", ["fail-connect-stream"]]);
    await eventually(() => expect(logs.lines.some((l) => l.reqId === "fail-grpc-stream" && l.msg === "stream closed" && l.code === "NotFound")).toBe(true));
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
