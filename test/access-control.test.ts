import { randomBytes } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus } from "../gen/grpc/health/v1/health_pb.js";
import { ServerReflection, ServerReflectionRequestSchema, type ServerReflectionRequest } from "../gen/grpc/reflection/v1/reflection_pb.js";
import {
  DetectionService,
  StreamDetectionsRequestSchema,
  StreamStartSchema,
  type StreamDetectionsRequest,
} from "../gen/hazard/stream/v1/detection_service_pb.js";
import { SessionService } from "../gen/hazard/stream/v1/session_service_pb.js";
import { ErrorCode, ErrorDetailSchema, FrameSchema, SessionConfigSchema } from "../gen/hazard/stream/v1/types_pb.js";
import { RequestStream } from "../src/http/request-stream.js";
import { StreamReader } from "./support/async-queue.js";
import { RawSse, WsClient, type Json } from "./support/http-clients.js";
import { sceneJpeg } from "./support/images.js";
import { startServer, type TestServer } from "./support/server.js";
import { clearRedisPrefix, redisAnswers } from "./support/redis.js";

/**
 * STREAMING_API_KEYS on every door, with real clients against a real server: no key (or a wrong
 * one) is UNAUTHENTICATED everywhere; a session belongs to the key that created it, and another
 * key sees NOT_FOUND, exactly as for a session that does not exist.
 */

const KEY_A = "key-A-3f9c1e7a5b2d4c6e";
const KEY_B = "key-B-8d0a2f4c6e1b3a5d";
const REDIS_URL = "redis://127.0.0.1:6379";

const withKey =
  (key: string, header: "authorization" | "x-api-key" = "authorization"): Interceptor =>
  (next) =>
  (req) => {
    req.header.set(header, header === "authorization" ? `Bearer ${key}` : key);
    return next(req);
  };

type Door = "gRPC" | "Connect" | "gRPC-Web";
function transport(door: Door, baseUrl: string, key?: string): Transport {
  const interceptors = key ? [withKey(key, door === "Connect" ? "x-api-key" : "authorization")] : [];
  if (door === "gRPC") return createGrpcTransport({ baseUrl, interceptors });
  if (door === "Connect") return createConnectTransport({ baseUrl, httpVersion: "1.1", interceptors });
  return createGrpcWebTransport({ baseUrl, httpVersion: "1.1", interceptors });
}

const errOf = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: unknown) => ConnectError.from(e),
  );
const codeOf = async (p: Promise<unknown>) => (await errOf(p))?.code;
const detailOf = (e: ConnectError | undefined) => (e ? ErrorCode[e.findDetails(ErrorDetailSchema)[0]?.code ?? 0] : undefined);

/** Reads a whole server stream; its error (if any) as a ConnectError. */
async function streamError(stream: AsyncIterable<unknown>): Promise<ConnectError | undefined> {
  try {
    for await (const _ of stream) {
      // A live watch never ends by itself: its first message is enough to know it was allowed.
      return undefined;
    }
    return undefined;
  } catch (e) {
    return ConnectError.from(e);
  }
}

async function rest(url: string, init: RequestInit = {}): Promise<{ status: number; json: Json; headers: Headers }> {
  const res = await fetch(url, init);
  const text = await res.text();
  return { status: res.status, json: (text ? JSON.parse(text) : {}) as Json, headers: res.headers };
}
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
const jsonHeaders = (key?: string) => ({ "Content-Type": "application/json", ...(key ? bearer(key) : {}) });

async function restSession(baseUrl: string, key: string): Promise<string> {
  const r = await rest(`${baseUrl}/stream/sessions`, { method: "POST", headers: jsonHeaders(key), body: "{}" });
  expect(r.status).toBe(201);
  return String(r.json.client_id);
}

function frameJson(frameId: string, jpeg: Uint8Array): string {
  return JSON.stringify({ type: "frame", frame_id: frameId, timestamp: Date.now() / 1000, image_data: Buffer.from(jpeg).toString("base64") });
}

describe("API keys on every door (memory store)", () => {
  let server: TestServer;
  let jpeg: Uint8Array;

  beforeAll(async () => {
    server = await startServer({ STREAMING_API_KEYS: `${KEY_A}, ${KEY_B}`, STREAMING_DEFAULT_FPS: "30" });
    jpeg = (await sceneJpeg(21)).bytes;
  });
  afterAll(() => server.close());

  it("no key is UNAUTHENTICATED on gRPC, Connect and gRPC-Web; a wrong key too", async () => {
    for (const door of ["gRPC", "Connect", "gRPC-Web"] as const) {
      for (const key of [undefined, "key-X-0000000000000000"]) {
        const sessions = createClient(SessionService, transport(door, server.baseUrl, key));
        const detection = createClient(DetectionService, transport(door, server.baseUrl, key));
        const err = await errOf(sessions.createSession({}));
        expect([door, key, err?.code]).toEqual([door, key, Code.Unauthenticated]);
        expect(detailOf(err)).toBe("UNAUTHENTICATED");
        expect(await codeOf(detection.detect({ frame: create(FrameSchema, { imageData: jpeg }) }))).toBe(Code.Unauthenticated);
        expect(await codeOf(sessions.getServiceStats({}))).toBe(Code.Unauthenticated);
        expect((await streamError(sessions.watchSession({ clientId: "whatever" })))?.code).toBe(Code.Unauthenticated);
      }
    }
    // Bidi streaming (HTTP/2 only).
    const detection = createClient(DetectionService, transport("gRPC", server.baseUrl));
    const requests = new RequestStream<StreamDetectionsRequest>();
    requests.push(create(StreamDetectionsRequestSchema, { message: { case: "start", value: create(StreamStartSchema, {}) } }));
    expect((await streamError(detection.streamDetections(requests)))?.code).toBe(Code.Unauthenticated);
    requests.end();
  });

  it("no key is 401 with the error JSON on REST and SSE", async () => {
    const id = await restSession(server.baseUrl, KEY_A);
    const base = server.baseUrl;
    const calls: Array<[string, RequestInit]> = [
      [`${base}/stream/sessions`, { method: "POST", headers: jsonHeaders(), body: "{}" }],
      [`${base}/stream/sessions/${id}`, {}],
      [`${base}/stream/sessions/${id}/config`, { method: "PATCH", headers: jsonHeaders(), body: '{"fps_limit":5}' }],
      [`${base}/stream/process/${id}`, { method: "POST", headers: { "Content-Type": "image/jpeg" }, body: jpeg }],
      [`${base}/stream/sessions/${id}/stats`, {}],
      [`${base}/stream/stats`, {}],
      [`${base}/stream/sessions/${id}`, { method: "DELETE" }],
      [`${base}/stream/sessions/${id}?api_key=key-X-0000000000000000`, {}],
      [`${base}/stream/sessions/${id}`, { headers: { "x-api-key": "key-X-0000000000000000" } }],
    ];
    for (const [url, init] of calls) {
      const r = await rest(url, init);
      expect([init.method ?? "GET", url, r.status]).toEqual([init.method ?? "GET", url, 401]);
      expect(r.json).toMatchObject({ type: "error", error_code: "UNAUTHENTICATED", frame_id: null });
      expect(r.headers.get("www-authenticate")).toMatch(/^Bearer/);
    }
    const sse = new RawSse(`${base}/stream/events/${id}`);
    await sse.done;
    expect(sse.status).toBe(401);
    // The session is untouched: its owner still sees it with the config it was created with.
    const own = await rest(`${base}/stream/sessions/${id}`, { headers: bearer(KEY_A) });
    expect(own.status).toBe(200);
    expect(own.json).toMatchObject({ client_id: id, config_version: 1 });
  });

  it("no key on the WebSocket: an error message, then close 1008 (JSON and binary frames)", async () => {
    for (const binary of [false, true]) {
      const ws = new WsClient(`${server.baseUrl.replace("http", "ws")}/stream/detection?fps_limit=10`);
      await ws.opened;
      if (binary) ws.ws.send(jpeg);
      else ws.ws.send(frameJson("f1", jpeg));
      const msg = await ws.next().catch(() => undefined);
      // The refusal may be sent before the frame arrives; either way the client reads it.
      expect(msg).toMatchObject({ type: "error", error_code: "UNAUTHENTICATED" });
      expect((await ws.closedWith()).code).toBe(1008);
    }
  });

  it("health stays open; reflection needs a key", async () => {
    const health = createClient(Health, transport("gRPC", server.baseUrl));
    expect((await health.check({ service: "" })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    const open = await rest(`${server.baseUrl}/stream/health`);
    expect(open.status).toBe(200);
    // Without a key only the verdict; the details (model, sessions) need one.
    expect(open.json).toEqual({ status: "healthy" });
    const detailed = await rest(`${server.baseUrl}/stream/health`, { headers: bearer(KEY_B) });
    expect(detailed.json).toMatchObject({ status: "healthy", classes: ["crack", "pothole"] });

    const reflect = async (key?: string) => {
      const client = createClient(ServerReflection, transport("gRPC", server.baseUrl, key));
      const requests = new RequestStream<ServerReflectionRequest>();
      requests.push(create(ServerReflectionRequestSchema, { messageRequest: { case: "listServices", value: "" } }));
      requests.end();
      const out: string[] = [];
      for await (const res of client.serverReflectionInfo(requests)) {
        if (res.messageResponse.case === "listServicesResponse") out.push(...res.messageResponse.value.service.map((s) => s.name));
      }
      return out;
    };
    expect((await errOf(reflect()))?.code).toBe(Code.Unauthenticated);
    expect(await reflect(KEY_A)).toContain("hazard.stream.v1.SessionService");
  });

  it("key A cannot watch, feed, configure, delete or read stats of key B's session on any door (NOT_FOUND)", async () => {
    const base = server.baseUrl;
    const idB = await restSession(base, KEY_B);
    const frame = create(FrameSchema, { frameId: "intruder", imageData: jpeg });

    for (const door of ["gRPC", "Connect", "gRPC-Web"] as const) {
      const a = createClient(SessionService, transport(door, base, KEY_A));
      // Thunks, called one at a time: each call's answer is checked before the next is made.
      const attempts: Array<[string, () => Promise<unknown>]> = [
        ["getSession", () => a.getSession({ clientId: idB })],
        ["updateSessionConfig", () => a.updateSessionConfig({ clientId: idB, config: create(SessionConfigSchema, { fpsLimit: 1 }) })],
        ["submitFrame", () => a.submitFrame({ clientId: idB, frame })],
        ["getSessionStats", () => a.getSessionStats({ clientId: idB })],
        ["deleteSession", () => a.deleteSession({ clientId: idB })],
      ];
      for (const [name, call] of attempts) {
        const err = await errOf(call());
        expect([door, name, err?.code, detailOf(err)]).toEqual([door, name, Code.NotFound, "SESSION_NOT_FOUND"]);
      }
      expect((await streamError(a.watchSession({ clientId: idB })))?.code).toBe(Code.NotFound);
      const listed = await a.listSessions({});
      expect(listed.sessions.map((s) => s.clientId)).not.toContain(idB);
    }
    // Joining B's session with a bidi stream.
    const detection = createClient(DetectionService, transport("gRPC", base, KEY_A));
    const requests = new RequestStream<StreamDetectionsRequest>();
    requests.push(create(StreamDetectionsRequestSchema, { message: { case: "start", value: create(StreamStartSchema, { clientId: idB }) } }));
    expect((await streamError(detection.streamDetections(requests)))?.code).toBe(Code.NotFound);
    requests.end();

    // REST and SSE, with the key as a header and as a query parameter.
    const restCalls: Array<[string, RequestInit]> = [
      [`${base}/stream/sessions/${idB}`, { headers: bearer(KEY_A) }],
      [`${base}/stream/sessions/${idB}/config`, { method: "PATCH", headers: jsonHeaders(KEY_A), body: '{"fps_limit":1}' }],
      [`${base}/stream/process/${idB}?api_key=${KEY_A}`, { method: "POST", headers: { "Content-Type": "image/jpeg" }, body: jpeg }],
      [`${base}/stream/process/${idB}`, { method: "POST", headers: jsonHeaders(KEY_A), body: frameJson("x", jpeg) }],
      [`${base}/stream/sessions/${idB}/stats`, { headers: { "x-api-key": KEY_A } }],
      [`${base}/stream/sessions/${idB}?api_key=${KEY_A}`, { method: "DELETE" }],
    ];
    for (const [url, init] of restCalls) {
      const r = await rest(url, init);
      expect([init.method ?? "GET", url, r.status, r.json.error_code]).toEqual([init.method ?? "GET", url, 404, "SESSION_NOT_FOUND"]);
    }
    const sse = new RawSse(`${base}/stream/events/${idB}?api_key=${KEY_A}`);
    await sse.done;
    expect(sse.status).toBe(404);

    // WebSocket: joining B's session with A's key.
    const ws = new WsClient(`${base.replace("http", "ws")}/stream/detection?client_id=${idB}&api_key=${KEY_A}`);
    await ws.opened;
    expect(await ws.next()).toMatchObject({ type: "error", error_code: "SESSION_NOT_FOUND" });
    expect((await ws.closedWith()).code).toBe(1008);

    // B's session saw none of it: config unchanged, no frame counted, still there.
    const b = createClient(SessionService, transport("gRPC", base, KEY_B));
    const { session } = await b.getSession({ clientId: idB });
    expect([session?.configVersion, session?.config?.fpsLimit]).toEqual([1, 30]);
    const { stats } = await b.getSessionStats({ clientId: idB });
    expect(stats?.framesReceived).toBe(0n);
    await b.deleteSession({ clientId: idB });
  });

  it("each key works on its own sessions on every door; the key in the query works for WebSocket and SSE", async () => {
    const base = server.baseUrl;
    // WebSocket with ?api_key=, JSON and binary frames.
    const ws = new WsClient(`${base.replace("http", "ws")}/stream/detection?fps_limit=30&api_key=${KEY_A}`);
    await ws.opened;
    ws.ws.send(frameJson("wa1", jpeg));
    expect(await ws.next()).toMatchObject({ type: "detection_result", data: { frame_id: "wa1" } });
    ws.ws.send(jpeg);
    expect(await ws.next()).toMatchObject({ type: "detection_result" });
    ws.close();

    // WebSocket with the key as a header (non-browser clients).
    const wsHeader = new WsClient(`${base.replace("http", "ws")}/stream/detection?fps_limit=30`, { headers: { "x-api-key": KEY_B } });
    await wsHeader.opened;
    wsHeader.ws.send(frameJson("wb1", jpeg));
    expect(await wsHeader.next()).toMatchObject({ type: "detection_result", data: { frame_id: "wb1" } });
    wsHeader.close();

    // REST + SSE with ?api_key= on the event stream, x-api-key on the upload.
    const idB = await restSession(base, KEY_B);
    const sse = new RawSse(`${base}/stream/events/${idB}?api_key=${KEY_B}`);
    await sse.headersReceived;
    expect(sse.status).toBe(200);
    const sub = await rest(`${base}/stream/process/${idB}`, { method: "POST", headers: { "Content-Type": "application/json", "x-api-key": KEY_B }, body: frameJson("sb1", jpeg) });
    expect(sub.status).toBe(202);
    expect(await sse.waitFor((m) => m.type === "detection_result")).toMatchObject({ data: { frame_id: "sb1" } });
    sse.close();

    // gRPC, Connect and gRPC-Web: each key creates, reads and deletes its own session.
    for (const door of ["gRPC", "Connect", "gRPC-Web"] as const) {
      for (const key of [KEY_A, KEY_B]) {
        const c: Client<typeof SessionService> = createClient(SessionService, transport(door, base, key));
        const id = (await c.createSession({})).session?.clientId ?? "";
        expect((await c.getSession({ clientId: id })).session?.clientId).toBe(id);
        expect((await c.listSessions({})).sessions.map((s) => s.clientId)).toContain(id);
        await c.deleteSession({ clientId: id });
      }
    }
    // Unary Detect and a bidi stream with a key.
    const detection = createClient(DetectionService, transport("gRPC", base, KEY_A));
    expect((await detection.detect({ frame: create(FrameSchema, { frameId: "d1", imageData: jpeg }) })).result?.frameId).toBe("d1");
    const requests = new RequestStream<StreamDetectionsRequest>();
    const reader = new StreamReader(detection.streamDetections(requests));
    requests.push(create(StreamDetectionsRequestSchema, { message: { case: "frame", value: create(FrameSchema, { frameId: "g1", imageData: jpeg }) } }));
    const got = await reader.until((m) => m.message.case === "result");
    expect(got.at(-1)?.message.value).toMatchObject({ frameId: "g1" });
    requests.end();
    await reader.until(() => false).catch(() => undefined);
  });
});


describe.skipIf(!(await redisAnswers(REDIS_URL)))("API keys with the Redis store (two instances, two keys)", () => {
  const prefix = `hs-test:${randomBytes(4).toString("hex")}:`;
  let one: TestServer;
  let two: TestServer;

  beforeAll(async () => {
    const env = { REDIS_URL, REDIS_KEY_PREFIX: prefix, STREAMING_API_KEYS: `${KEY_A},${KEY_B}` };
    [one, two] = await Promise.all([startServer(env), startServer(env)]);
  });
  afterAll(async () => {
    await Promise.all([one?.close(), two?.close()]);
    await clearRedisPrefix(prefix);
  });

  it("a session created on one instance with key A is NOT_FOUND for key B on the other, and A's there", async () => {
    const jpeg = (await sceneJpeg(22)).bytes;
    const aOnOne = createClient(SessionService, transport("gRPC", one.baseUrl, KEY_A));
    const aOnTwo = createClient(SessionService, transport("gRPC", two.baseUrl, KEY_A));
    const bOnTwo = createClient(SessionService, transport("gRPC", two.baseUrl, KEY_B));
    const id = (await aOnOne.createSession({})).session?.clientId ?? "";

    // The record holds a hash of the key, never the key.
    const r = new Redis(REDIS_URL);
    const owner = await r.hget(`${prefix}s:${id}`, "owner");
    r.disconnect();
    expect(owner).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(owner).not.toContain(KEY_A);

    const frame = create(FrameSchema, { frameId: "x", imageData: jpeg });
    for (const [name, call] of [
      ["getSession", () => bOnTwo.getSession({ clientId: id })],
      ["updateSessionConfig", () => bOnTwo.updateSessionConfig({ clientId: id, config: create(SessionConfigSchema, { fpsLimit: 1 }) })],
      ["submitFrame", () => bOnTwo.submitFrame({ clientId: id, frame })],
      ["getSessionStats", () => bOnTwo.getSessionStats({ clientId: id })],
      ["deleteSession", () => bOnTwo.deleteSession({ clientId: id })],
    ] as const) {
      expect([name, await codeOf(call())]).toEqual([name, Code.NotFound]);
    }
    expect((await streamError(bOnTwo.watchSession({ clientId: id })))?.code).toBe(Code.NotFound);
    expect((await bOnTwo.listSessions({})).sessions.map((s) => s.clientId)).not.toContain(id);
    const sse = new RawSse(`${two.baseUrl}/stream/events/${id}?api_key=${KEY_B}`);
    await sse.done;
    expect(sse.status).toBe(404);

    // Key A on the other instance: its session, with B's attempts leaving no trace.
    const watch = new RawSse(`${two.baseUrl}/stream/events/${id}?api_key=${KEY_A}`);
    await watch.headersReceived;
    expect(watch.status).toBe(200);
    expect((await aOnTwo.getSession({ clientId: id })).session?.configVersion).toBe(1);
    await aOnOne.submitFrame({ clientId: id, frame: create(FrameSchema, { frameId: "a1", imageData: jpeg }) });
    expect(await watch.waitFor((m) => m.type === "detection_result")).toMatchObject({ data: { frame_id: "a1" } });
    watch.close();
    const { stats } = await aOnTwo.getSessionStats({ clientId: id });
    expect(stats?.framesReceived).toBe(1n);

    // Key B's own session works on both instances; A cannot see it.
    const idB = (await bOnTwo.createSession({})).session?.clientId ?? "";
    const bOnOne = createClient(SessionService, transport("gRPC", one.baseUrl, KEY_B));
    expect((await bOnOne.getSession({ clientId: idB })).session?.clientId).toBe(idB);
    expect(await codeOf(aOnOne.getSession({ clientId: idB }))).toBe(Code.NotFound);
    await bOnOne.deleteSession({ clientId: idB });
    await aOnTwo.deleteSession({ clientId: id });
  });
});
