import http2 from "node:http2";
import net from "node:net";
import { gzipSync } from "node:zlib";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { errorFromJsonBytes } from "@connectrpc/connect/protocol-connect";
import { findTrailerError } from "@connectrpc/connect/protocol-grpc";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import {
  DetectionService,
  StreamDetectionsRequestSchema,
  StreamStartSchema,
  type StreamDetectionsRequest,
} from "../gen/hazard/stream/v1/detection_service_pb.js";
import { SessionService, WatchSessionResponseSchema } from "../gen/hazard/stream/v1/session_service_pb.js";
import { ErrorCode, ErrorDetailSchema, FrameSchema } from "../gen/hazard/stream/v1/types_pb.js";
import { RequestStream } from "../src/http/request-stream.js";
import type { MemoryStore } from "../src/store/memory-store.js";
import { eventually, RawSse, WsClient, type Json } from "./support/http-clients.js";
import { sceneJpeg } from "./support/images.js";
import { scrape } from "./support/metrics.js";
import { DETECT, envelope } from "./support/raw-rpc.js";
import { startServer, type TestServer } from "./support/server.js";

/**
 * Each limit is hit with a real client and answered with its documented error; the server goes on
 * serving frames afterwards. No timing is asserted: only that what should close does close.
 */

const KEY_A = "limits-key-A-7c3e9a1f";
const KEY_B = "limits-key-B-2b8d4f6a";

const withKey =
  (key: string): Interceptor =>
  (next) =>
  (req) => {
    req.header.set("authorization", `Bearer ${key}`);
    return next(req);
  };

const errOf = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: unknown) => ConnectError.from(e),
  );
const detailOf = (e: ConnectError | undefined) => (e ? ErrorCode[e.findDetails(ErrorDetailSchema)[0]?.code ?? 0] : undefined);

async function rest(url: string, init: RequestInit = {}): Promise<{ status: number; json: Json; headers: Headers }> {
  const res = await fetch(url, init);
  const text = await res.text();
  return { status: res.status, json: (text ? JSON.parse(text) : {}) as Json, headers: res.headers };
}
const createRest = (baseUrl: string, key: string) =>
  rest(`${baseUrl}/stream/sessions`, { method: "POST", headers: { "Content-Type": "application/json", authorization: `Bearer ${key}` }, body: "{}" });

async function streamError(stream: AsyncIterable<unknown>): Promise<ConnectError | undefined> {
  try {
    for await (const _ of stream) return undefined;
    return undefined;
  } catch (e) {
    return ConnectError.from(e);
  }
}

/** A frame through REST + SSE: the service still does its job. */
async function goodFrame(baseUrl: string, key: string | undefined, jpeg: Uint8Array): Promise<void> {
  const auth: Record<string, string> = key ? { authorization: `Bearer ${key}` } : {};
  const created = await rest(`${baseUrl}/stream/sessions`, { method: "POST", headers: { "Content-Type": "application/json", ...auth }, body: "{}" });
  expect(created.status).toBe(201);
  const id = String(created.json.client_id);
  const sse = new RawSse(`${baseUrl}/stream/events/${id}`, auth);
  await sse.headersReceived;
  expect(sse.status).toBe(200);
  const sub = await rest(`${baseUrl}/stream/process/${id}?frame_id=good`, { method: "POST", headers: { "Content-Type": "image/jpeg", ...auth }, body: jpeg });
  expect(sub.status).toBe(202);
  const result = await sse.waitFor((m) => m.type === "detection_result");
  expect((result.data as Json).frame_id).toBe("good");
  expect(((result.data as Json).detections as Json[]).length).toBeGreaterThan(0);
  sse.close();
  expect((await rest(`${baseUrl}/stream/sessions/${id}`, { method: "DELETE", headers: auth })).status).toBe(200);
}

describe("session and watcher limits", () => {
  let server: TestServer;
  let jpeg: Uint8Array;

  beforeAll(async () => {
    server = await startServer({
      STREAMING_API_KEYS: `${KEY_A},${KEY_B}`,
      STREAMING_MAX_SESSIONS: "3",
      STREAMING_MAX_SESSIONS_PER_KEY: "2",
      STREAMING_MAX_WATCHERS_PER_SESSION: "2",
      STREAMING_DEFAULT_FPS: "30",
    });
    jpeg = (await sceneJpeg(31)).bytes;
  });
  afterAll(() => server.close());

  it("sessions per key and in all: RESOURCE_EXHAUSTED on every door that creates one; room again after a delete", async () => {
    const base = server.baseUrl;
    const a = createClient(SessionService, createGrpcTransport({ baseUrl: base, interceptors: [withKey(KEY_A)] }));
    const ids = [(await createRest(base, KEY_A)).json.client_id, (await a.createSession({})).session?.clientId];
    expect(ids.every((id) => typeof id === "string")).toBe(true);

    // Key A is at its own limit; key B is not.
    const perKey = await createRest(base, KEY_A);
    expect(perKey.status).toBe(429);
    expect(perKey.json).toMatchObject({ type: "error", error_code: "RESOURCE_EXHAUSTED" });
    expect(String(perKey.json.error)).toContain("STREAMING_MAX_SESSIONS_PER_KEY");
    const grpcErr = await errOf(a.createSession({}));
    expect([grpcErr?.code, detailOf(grpcErr)]).toEqual([Code.ResourceExhausted, "RESOURCE_EXHAUSTED"]);

    const b = createClient(SessionService, createGrpcTransport({ baseUrl: base, interceptors: [withKey(KEY_B)] }));
    const idB = (await b.createSession({})).session?.clientId ?? "";
    // Now the service is full (3): key B is refused too, by the other limit.
    const full = await createRest(base, KEY_B);
    expect(full.status).toBe(429);
    expect(String(full.json.error)).toContain("STREAMING_MAX_SESSIONS");
    expect(String(full.json.error)).not.toContain("PER_KEY");

    // Doors that open a session with their stream: WebSocket and gRPC bidi.
    const ws = new WsClient(`${base.replace("http", "ws")}/stream/detection?api_key=${KEY_B}`);
    await ws.opened;
    expect(await ws.next()).toMatchObject({ type: "error", error_code: "RESOURCE_EXHAUSTED" });
    expect((await ws.closedWith()).code).toBe(1013);
    const detection = createClient(DetectionService, createGrpcTransport({ baseUrl: base, interceptors: [withKey(KEY_B)] }));
    const requests = new RequestStream<StreamDetectionsRequest>();
    requests.push(create(StreamDetectionsRequestSchema, { message: { case: "start", value: create(StreamStartSchema, {}) } }));
    expect((await streamError(detection.streamDetections(requests)))?.code).toBe(Code.ResourceExhausted);
    requests.end();

    // Ending sessions makes room; a frame goes through.
    await b.deleteSession({ clientId: idB });
    await a.deleteSession({ clientId: String(ids[0]) });
    await goodFrame(base, KEY_B, jpeg);
    await a.deleteSession({ clientId: String(ids[1]) });
  });

  it("watchers per session: SSE 429, WatchSession and a joining WebSocket RESOURCE_EXHAUSTED; room again when one leaves", async () => {
    const base = server.baseUrl;
    const id = String((await createRest(base, KEY_A)).json.client_id);
    const auth = { authorization: `Bearer ${KEY_A}` };
    const first = new RawSse(`${base}/stream/events/${id}`, auth);
    const second = new RawSse(`${base}/stream/events/${id}?api_key=${KEY_A}`);
    await Promise.all([first.headersReceived, second.headersReceived]);
    expect([first.status, second.status]).toEqual([200, 200]);

    const third = new RawSse(`${base}/stream/events/${id}`, auth);
    await third.done;
    expect(third.status).toBe(429);
    const a = createClient(SessionService, createGrpcTransport({ baseUrl: base, interceptors: [withKey(KEY_A)] }));
    const watchErr = await streamError(a.watchSession({ clientId: id }));
    expect([watchErr?.code, detailOf(watchErr)]).toEqual([Code.ResourceExhausted, "RESOURCE_EXHAUSTED"]);
    expect(watchErr?.rawMessage).toContain("STREAMING_MAX_WATCHERS_PER_SESSION");
    const ws = new WsClient(`${base.replace("http", "ws")}/stream/detection?client_id=${id}&api_key=${KEY_A}`);
    await ws.opened;
    expect(await ws.next()).toMatchObject({ type: "error", error_code: "RESOURCE_EXHAUSTED" });
    expect((await ws.closedWith()).code).toBe(1013);

    // One leaves; a new watcher gets in and sees the next frame's result.
    second.close();
    let again: RawSse | undefined;
    await eventually(async () => {
      again?.close();
      again = new RawSse(`${base}/stream/events/${id}`, auth);
      await again.headersReceived;
      expect(again.status).toBe(200);
    });
    const sub = await rest(`${base}/stream/process/${id}?frame_id=w1`, { method: "POST", headers: { "Content-Type": "image/jpeg", ...auth }, body: jpeg });
    expect(sub.status).toBe(202);
    expect(await again?.waitFor((m) => m.type === "detection_result")).toMatchObject({ data: { frame_id: "w1" } });
    again?.close();
    first.close();
    await rest(`${base}/stream/sessions/${id}`, { method: "DELETE", headers: auth });
  });
});

describe("connections per address", () => {
  let server: TestServer;
  let jpeg: Uint8Array;

  beforeAll(async () => {
    // Long first-bytes timeout: the held connections below send nothing and must stay open.
    server = await startServer({ MAX_CONNECTIONS_PER_IP: "4", HTTP_HEADERS_TIMEOUT_MS: "60000" });
    jpeg = (await sceneJpeg(32)).bytes;
  });
  afterAll(() => server.close());

  /** Opens `n` silent connections from 127.0.0.1: with MAX_CONNECTIONS_PER_IP 4, the next one is refused. */
  const holdConnections = (n: number) =>
    Promise.all(
      Array.from(
        { length: n },
        () =>
          new Promise<net.Socket>((resolve, reject) => {
            const s = net.connect(server.address.port, "127.0.0.1", () => resolve(s));
            s.on("error", reject);
          }),
      ),
    );

  it("past MAX_CONNECTIONS_PER_IP: 429 JSON on HTTP/1.1, RESOURCE_EXHAUSTED on gRPC, gRPC-Web and Connect, 429 on a WebSocket upgrade", async () => {
    const base = server.baseUrl;
    // All four allowed: the clients below come from the same address and are each one too many.
    const held = await holdConnections(4);

    const r = await rest(`${base}/stream/stats`);
    expect(r.status).toBe(429);
    expect(r.json).toMatchObject({ type: "error", error_code: "RESOURCE_EXHAUSTED" });
    expect(String(r.json.error)).toContain("MAX_CONNECTIONS_PER_IP");

    const grpc = createClient(SessionService, createGrpcTransport({ baseUrl: base }));
    const grpcErr = await errOf(grpc.getServiceStats({}));
    expect([grpcErr?.code, detailOf(grpcErr)]).toEqual([Code.ResourceExhausted, "RESOURCE_EXHAUSTED"]);
    const connect = createClient(SessionService, createConnectTransport({ baseUrl: base, httpVersion: "1.1" }));
    const connectErr = await errOf(connect.getServiceStats({}));
    expect([connectErr?.code, detailOf(connectErr)]).toEqual([Code.ResourceExhausted, "RESOURCE_EXHAUSTED"]);
    expect(connectErr?.metadata.get("x-request-id")).toMatch(/^[0-9a-f]{16}$/);
    const grpcWeb = createClient(SessionService, createGrpcWebTransport({ baseUrl: base, httpVersion: "1.1" }));
    const webErr = await errOf(grpcWeb.getServiceStats({}));
    expect([webErr?.code, detailOf(webErr)]).toEqual([Code.ResourceExhausted, "RESOURCE_EXHAUSTED"]);
    // Connect streaming over h2: the refusal is its end-stream message.
    const watch = createClient(SessionService, createConnectTransport({ baseUrl: base, httpVersion: "2" }));
    const watchErr = await streamError(watch.watchSession({ clientId: "any" }));
    expect([watchErr?.code, detailOf(watchErr)]).toEqual([Code.ResourceExhausted, "RESOURCE_EXHAUSTED"]);

    const upgrade = await new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(`${base.replace("http", "ws")}/stream/detection`);
      ws.on("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
      ws.on("open", () => reject(new Error("the upgrade was accepted")));
      ws.on("error", () => undefined);
    });
    expect(upgrade).toBe(429);

    for (const s of held) s.destroy();
    await eventually(async () => expect((await rest(`${base}/stream/stats`)).status).toBe(200));
    await goodFrame(base, undefined, jpeg);
    const detection = createClient(DetectionService, createGrpcTransport({ baseUrl: base }));
    expect((await detection.detect({ frame: create(FrameSchema, { frameId: "after", imageData: jpeg }) })).result?.frameId).toBe("after");
  });
  it("a refused connection is answered from its headers: a gzip bomb's body is neither awaited nor inflated (gRPC over h2, Connect over HTTP/1.1)", async () => {
    const held = await holdConnections(4);
    // 64 MiB of zeros gzip to ~64 KiB: five times readMaxBytes once inflated. Only the first half
    // is sent, and the rest never: a server that reads (and inflates) the body before refusing
    // would wait for it until its request timeout, long after the bound below.
    const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024));
    const half = (b: Uint8Array) => b.subarray(0, Math.floor(b.length / 2));
    const bound = 30_000;

    const grpc = await new Promise<{ head: http2.IncomingHttpHeaders; stillSending: boolean }>((resolve, reject) => {
      const session = http2.connect(server.baseUrl);
      session.on("error", () => undefined);
      const stream = session.request({
        ":method": "POST",
        ":path": DETECT,
        "content-type": "application/grpc",
        "grpc-encoding": "gzip",
        te: "trailers",
        "x-request-id": "bomb-1",
      });
      stream.on("error", () => undefined);
      stream.on("response", (head) => {
        resolve({ head, stillSending: !stream.writableEnded });
        session.destroy();
      });
      stream.write(half(envelope(bomb, 1)));
      setTimeout(() => reject(new Error("no answer while the gRPC body was still arriving")), bound).unref();
    });
    expect(grpc.stillSending).toBe(true);
    // Trailers-only: the status is in the one header block.
    const headers = new Headers(Object.entries(grpc.head).filter((e): e is [string, string] => typeof e[1] === "string" && !e[0].startsWith(":")));
    const grpcErr = findTrailerError(headers);
    expect([grpcErr?.code, detailOf(grpcErr)]).toEqual([Code.ResourceExhausted, "RESOURCE_EXHAUSTED"]);
    expect(headers.get("x-request-id")).toBe("bomb-1");

    const connectBomb = gzipSync(Buffer.alloc(64 * 1024 * 1024, "a"));
    const h1 = await new Promise<string>((resolve, reject) => {
      let got = "";
      const s = net.connect(server.address.port, "127.0.0.1", () => {
        s.write(
          `POST ${DETECT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: ${connectBomb.length}\r\n\r\n`,
        );
        s.write(half(connectBomb));
      });
      s.on("data", (d: Buffer) => {
        got += d.toString("latin1");
        const end = got.indexOf("\r\n\r\n");
        const length = /content-length: (\d+)/i.exec(got)?.[1];
        if (end >= 0 && length !== undefined && got.length >= end + 4 + Number(length)) {
          s.destroy();
          resolve(got);
        }
      });
      s.on("error", () => undefined);
      setTimeout(() => reject(new Error("no answer while the Connect body was still arriving")), bound).unref();
    });
    expect(h1).toMatch(/^HTTP\/1\.1 429 /);
    expect(h1).toMatch(/\r\nconnection: close\r\n/i);
    const body = h1.slice(h1.indexOf("\r\n\r\n") + 4);
    const connectErr = errorFromJsonBytes(Buffer.from(body), undefined, new ConnectError("not a Connect error", Code.Unknown));
    expect([connectErr.code, detailOf(connectErr)]).toEqual([Code.ResourceExhausted, "RESOURCE_EXHAUSTED"]);

    for (const s of held) s.destroy();
    await eventually(async () => expect((await rest(`${server.baseUrl}/stream/stats`)).status).toBe(200));
  });
});

describe("HTTP/2 rapid reset", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer({ MAX_CONNECTIONS_PER_IP: "3" });
  });
  afterAll(() => server.close());

  /** Opens streams and resets each at once (CVE-2023-44487) until the server ends the connection. */
  const rapidReset = () =>
    new Promise<number[]>((resolve, reject) => {
      const session = http2.connect(server.baseUrl);
      const goaways: number[] = [];
      session.on("goaway", (code) => goaways.push(code));
      session.on("error", () => undefined);
      session.on("close", () => resolve(goaways));
      session.on("connect", async () => {
        for (let i = 0; i < 20_000 && !session.closed && !session.destroyed; i++) {
          const stream = session.request({ ":method": "POST", ":path": DETECT, "content-type": "application/grpc" }, { endStream: false });
          stream.on("error", () => undefined);
          stream.close(http2.constants.NGHTTP2_CANCEL);
          if (i % 50 === 49) await new Promise((r) => setImmediate(r));
        }
        if (!session.destroyed) reject(new Error("the server let 20000 reset streams through"));
      });
    });

  it("each attacking connection is closed and frees its slot: the gauge returns to baseline, a real client from the address gets in", async () => {
    const h2Open = async () => (await scrape(server.baseUrl)).get("hazard_connections_open", { protocol: "h2" });
    const baseline = await h2Open();
    // As many attacks as MAX_CONNECTIONS_PER_IP: sockets left open would leave the address no slot.
    const codes: number[][] = [];
    for (let i = 0; i < 3; i++) codes.push(await rapidReset());
    await eventually(async () => expect(await h2Open()).toBe(baseline), 20_000);

    const detection = createClient(SessionService, createGrpcTransport({ baseUrl: server.baseUrl }));
    expect((await detection.getServiceStats({})).stats).toBeDefined();
    // The server's own verdict, not nghttp2's silent GOAWAY(INTERNAL_ERROR) that left the socket open.
    for (const c of codes) expect(c).toContain(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
  });
});

describe("idle and slow connections are closed", () => {
  let server: TestServer;
  let jpeg: Uint8Array;

  beforeAll(async () => {
    server = await startServer({ HTTP_HEADERS_TIMEOUT_MS: "1000", HTTP_KEEPALIVE_TIMEOUT_MS: "200", HTTP2_IDLE_TIMEOUT_MS: "1000" });
    jpeg = (await sceneJpeg(33)).bytes;
  });
  afterAll(() => server.close());

  /** Opens a raw connection, writes `first` (if any), and resolves with everything read once the server closes it. */
  const rawUntilClosed = (first?: string) =>
    new Promise<string>((resolve, reject) => {
      let got = "";
      const s = net.connect(server.address.port, "127.0.0.1", () => {
        if (first !== undefined) s.write(first);
      });
      s.on("data", (d: Buffer) => (got += d.toString("latin1")));
      s.on("close", () => resolve(got));
      s.on("error", reject);
      // Far beyond every timeout configured above: a connection still open then is the failure.
      setTimeout(() => {
        s.destroy();
        reject(new Error("the server left the connection open"));
      }, 60_000).unref();
    });

  it("a connection that sends nothing, a request whose headers never end, an idle keep-alive, an idle HTTP/2 connection", async () => {
    const [silent, slowHeaders, keepAlive] = await Promise.all([
      rawUntilClosed(),
      rawUntilClosed("GET /stream/stats HTTP/1.1\r\nHost: x\r\nX-Slow: "),
      rawUntilClosed("GET /stream/stats HTTP/1.1\r\nHost: x\r\n\r\n"),
    ]);
    expect(silent).toBe("");
    expect(slowHeaders).toMatch(/^HTTP\/1\.1 408 /);
    expect(keepAlive).toMatch(/^HTTP\/1\.1 200 /);

    const goaway = await new Promise<number>((resolve, reject) => {
      const session = http2.connect(server.baseUrl);
      session.on("goaway", (code) => resolve(code));
      session.on("error", reject);
      setTimeout(() => reject(new Error("no GOAWAY")), 60_000).unref();
    });
    expect(goaway).toBe(http2.constants.NGHTTP2_NO_ERROR);

    await goodFrame(server.baseUrl, undefined, jpeg);
  });

  it("an HTTP/2 connection nghttp2 gave up on without telling Node is closed, even with a stream open", async () => {
    // nghttp2 counts resets of streams that are already closed, which Node never shows: past its
    // limit it sends GOAWAY(INTERNAL_ERROR) and goes silent. A stream left open keeps the idle
    // GOAWAY away; the unanswered PING closes the connection instead.
    const frame = (type: number, flags: number, id: number, payload: Buffer) => {
      const head = Buffer.alloc(9);
      head.writeUIntBE(payload.length, 0, 3);
      head[3] = type;
      head[4] = flags;
      head.writeUInt32BE(id, 5);
      return Buffer.concat([head, payload]);
    };
    // HPACK literals without indexing, name from the static table.
    const literal = (index: number, value: string) => Buffer.concat([Buffer.from([index, value.length]), Buffer.from(value)]);
    // content-type is static-table entry 31: 0x0f 0x10 is its 4-bit-prefix index (15 + 16).
    const post = Buffer.concat([Buffer.from([0x83, 0x86]), literal(0x04, DETECT), literal(0x01, "localhost"), Buffer.from([0x0f, 0x10, 16]), Buffer.from("application/grpc")]);
    const get = Buffer.concat([Buffer.from([0x82, 0x86, 0x84]), literal(0x01, "localhost")]);
    const h2Open = async () => (await scrape(server.baseUrl)).get("hazard_connections_open", { protocol: "h2" });
    const baseline = await h2Open();

    let received = Buffer.alloc(0);
    const socket = net.connect(server.address.port, "127.0.0.1");
    socket.on("data", (d: Buffer) => (received = Buffer.concat([received, d])));
    socket.on("error", () => undefined);
    await new Promise((r) => socket.once("connect", r));
    // Stream 1: a Detect whose body never comes (stays open); stream 3: a GET that completes.
    socket.write(Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), frame(4, 0, 0, Buffer.alloc(0)), frame(1, 0x4, 1, post), frame(1, 0x5, 3, get)]));
    await eventually(async () => expect(await h2Open()).toBe(baseline + 1));
    const resetClosed = frame(3, 0, 3, Buffer.from([0, 0, 0, 8]));
    for (let i = 0; i < 1500; i++) socket.write(resetClosed);
    // Idle check (1 s here) plus the 20 s PING deadline, with room for a loaded machine.
    await eventually(async () => expect(await h2Open()).toBe(baseline), 60_000);
    socket.destroy();
  }, 90_000);

  it("an HTTP/2 connection with an open stream is not idle, however quiet", async () => {
    const a = createClient(SessionService, createGrpcTransport({ baseUrl: server.baseUrl }));
    const id = (await a.createSession({})).session?.clientId ?? "";
    const abort = new AbortController();
    const events: string[] = [];
    const watching = (async () => {
      for await (const ev of a.watchSession({ clientId: id }, { signal: abort.signal })) {
        events.push(ev.event.case ?? "");
        if (ev.event.case === "result") return;
      }
    })().catch(() => undefined);
    await eventually(() => expect(events).toContain("keepalive"));
    // Longer than HTTP2_IDLE_TIMEOUT_MS without a byte on the connection (keepalives come every 15 s).
    await new Promise((r) => setTimeout(r, 2500));
    await a.submitFrame({ clientId: id, frame: create(FrameSchema, { frameId: "quiet", imageData: jpeg }) });
    await watching;
    expect(events).toContain("result");
    abort.abort();
    await a.deleteSession({ clientId: id });
  });
});

describe("memory a session holds is bounded in bytes, not only in events", () => {
  const REPLAY_BYTES = 256 * 1024;
  const WATCHER_BYTES = 512 * 1024;
  let server: TestServer;
  let image: string;
  // Results echo the frame's metadata: ~60 kB each, under the 64 KiB metadata limit.
  const metadata = { camera: "front", pad: "x".repeat(60_000) };

  beforeAll(async () => {
    server = await startServer({
      STREAMING_REPLAY_WINDOW_BYTES: String(REPLAY_BYTES),
      STREAMING_WATCHER_BUFFER_BYTES: String(WATCHER_BYTES),
      STREAMING_MAX_FPS: "240",
      STREAMING_DEFAULT_FPS: "240",
    });
    image = Buffer.from((await sceneJpeg(11, 160, 96)).bytes).toString("base64");
  });
  afterAll(() => server.close());

  /** A REST session with an SSE reader that reads everything; `send` waits for each frame's result. */
  async function session() {
    const created = await rest(`${server.baseUrl}/stream/sessions`, { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" });
    const id = String(created.json.client_id);
    const sse = new RawSse(`${server.baseUrl}/stream/events/${id}`);
    await sse.headersReceived;
    const send = async (frameId: string) => {
      const res = await rest(`${server.baseUrl}/stream/process/${id}`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ image_data: image, frame_id: frameId, metadata }),
      });
      expect(res.status).toBe(202);
      await sse.waitFor((m) => m.type === "detection_result" && (m.data as Json).frame_id === frameId);
    };
    return { id, sse, send };
  }

  it("the replay window keeps at most STREAMING_REPLAY_WINDOW_BYTES (the newest events), and nothing once the session is deleted", async () => {
    const { id, sse, send } = await session();
    for (let i = 0; i < 20; i++) await send(`r${i}`);
    const store = server.app.sessions.store as MemoryStore;
    const replay = await store.replay(id, 0n);
    const held = replay.reduce((n, m) => n + toBinary(WatchSessionResponseSchema, m).byteLength, 0);
    console.log(`replay window after 20 results of ~60 kB: ${replay.length} events, ${held} bytes (budget ${REPLAY_BYTES})`);
    expect(held).toBeLessThanOrEqual(REPLAY_BYTES);
    expect(store.replayBytes(id)).toBe(held);
    // The newest events stay, so a client that just lost its connection still resumes.
    const last = replay.at(-1)?.event;
    expect(last?.case === "result" ? last.value.frameId : "").toBe("r19");
    expect(replay.length).toBeGreaterThanOrEqual(2);

    const live = await server.app.sessions.get(id);
    expect((await rest(`${server.baseUrl}/stream/sessions/${id}`, { method: "DELETE" })).status).toBe(200);
    await sse.done;
    expect(store.replayBytes(id)).toBe(0);
    expect(await store.replay(id, 0n)).toEqual([]);
    expect([live.subscriberCount, live.subscriberBytes]).toEqual([0, 0]);
  }, 60_000);

  it("a watcher that stops reading is cut off once STREAMING_WATCHER_BUFFER_BYTES of events wait for it", async () => {
    const { id, sse, send } = await session();
    const live = await server.app.sessions.get(id);
    // A watcher that never reads (as a stalled SSE or WatchSession stream leaves its queue), with the
    // server's budget; 30 results of ~60 kB are far under the 256-event bound.
    const stalled = live.subscribe(256, WATCHER_BYTES);
    let most = 0;
    for (let i = 0; i < 30; i++) {
      await send(`w${i}`);
      most = Math.max(most, stalled.bytes);
    }
    console.log(`stalled watcher: cut off=${stalled.overflowed}, ${stalled.length} events / ${stalled.bytes} bytes held, at most ${most}`);
    expect(stalled.overflowed).toBe(true);
    expect(most).toBeLessThanOrEqual(WATCHER_BYTES);
    // The reading watcher was not affected.
    expect(sse.json().filter((m) => m.type === "detection_result")).toHaveLength(30);
    live.unsubscribe(stalled);
    sse.close();
    expect((await rest(`${server.baseUrl}/stream/sessions/${id}`, { method: "DELETE" })).status).toBe(200);
  }, 60_000);

  it("an SSE reader that stops reading is cut off with RESOURCE_EXHAUSTED before its queue passes the budget", async () => {
    const { id, sse, send } = await session();
    const live = await server.app.sessions.get(id);
    const socket = net.connect(server.address.port, "127.0.0.1");
    await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
    socket.write(`GET /stream/events/${id} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n`);
    socket.pause();
    await eventually(() => expect(live.subscriberCount).toBe(2));
    // Loopback socket buffers take several MB before the server's queue fills: send well past them.
    let most = 0;
    for (let i = 0; i < 120 && live.subscriberCount === 2; i++) {
      await send(`s${i}`);
      most = Math.max(most, live.subscriberBytes);
    }
    let text = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => (text += chunk));
    socket.resume();
    await eventually(() => expect(text.endsWith("\r\n0\r\n\r\n")).toBe(true), 20_000);
    socket.destroy();
    const data = text.split("\n").filter((l) => l.startsWith("data: "));
    console.log(`slow SSE reader: cut after ${data.length} data lines; queue held at most ${most} bytes`);
    expect(most).toBeLessThanOrEqual(WATCHER_BYTES);
    expect(JSON.parse((data.at(-1) ?? "").slice(6))).toMatchObject({ type: "error", error_code: "RESOURCE_EXHAUSTED" });
    sse.close();
    expect((await rest(`${server.baseUrl}/stream/sessions/${id}`, { method: "DELETE" })).status).toBe(200);
  }, 120_000);
});
