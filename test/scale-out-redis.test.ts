import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import net from "node:net";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DetectionService } from "../gen/hazard/stream/v1/detection_service_pb.js";
import { EndReason, SessionService, type WatchSessionResponse } from "../gen/hazard/stream/v1/session_service_pb.js";
import { ErrorCode, ErrorDetailSchema, FrameSchema, SessionConfigSchema } from "../gen/hazard/stream/v1/types_pb.js";
import { StreamReader } from "./support/async-queue.js";
import { eventually, RawSse } from "./support/http-clients.js";
import { sceneJpeg } from "./support/images.js";
import { startServer, type TestServer } from "./support/server.js";
import { clearRedisPrefix, redisAnswers } from "./support/redis.js";

const REDIS_URL = "redis://127.0.0.1:6379";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const errOf = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => ConnectError.from(e));


const sessionClient = (s: TestServer): Client<typeof SessionService> =>
  createClient(SessionService, createGrpcTransport({ baseUrl: s.baseUrl }));

describe.skipIf(!(await redisAnswers(REDIS_URL)))("two instances sharing one Redis", () => {
  const prefix = `hs-test:${randomBytes(4).toString("hex")}:`;
  let a: TestServer;
  let b: TestServer;
  let jpeg: Uint8Array;

  beforeAll(async () => {
    const env = { REDIS_URL, REDIS_KEY_PREFIX: prefix, STREAMING_SESSION_TIMEOUT: "3" };
    [a, b] = await Promise.all([startServer(env), startServer(env)]);
    jpeg = (await sceneJpeg(51)).bytes;
  });
  afterAll(async () => {
    await Promise.all([a?.close(), b?.close()]);
    await clearRedisPrefix(prefix);
  });

  it("create on A, watch on B, submit on A: the result arrives on B; config via B; delete on B ends A's watcher", async () => {
    const ca = sessionClient(a);
    const cb = sessionClient(b);
    const id = (await ca.createSession({})).session?.clientId ?? "";
    expect((await cb.getSession({ clientId: id })).session?.clientId).toBe(id);

    const onB = new StreamReader<WatchSessionResponse>(cb.watchSession({ clientId: id }));
    const onA = new StreamReader<WatchSessionResponse>(ca.watchSession({ clientId: id }));
    await sleep(200);
    await ca.submitFrame({ clientId: id, frame: create(FrameSchema, { frameId: "from-a", imageData: jpeg }) });
    const got = (await onB.until((m) => m.event.case === "result")).at(-1);
    expect(got?.event.case === "result" && got.event.value.frameId).toBe("from-a");
    expect(got?.eventId).toBeGreaterThan(0n);

    const upd = await cb.updateSessionConfig({ clientId: id, config: create(SessionConfigSchema, { confidenceThreshold: 0.5 }) });
    expect(upd.session?.configVersion).toBe(2);
    await sleep(100);
    await ca.submitFrame({ clientId: id, frame: create(FrameSchema, { frameId: "after-config", imageData: jpeg }) });
    const r2 = (await onA.until((m) => m.event.case === "result" && m.event.value.frameId === "after-config")).at(-1);
    expect(r2?.event.case === "result" && r2.event.value.configVersion).toBe(2);

    const stats = (await cb.getSessionStats({ clientId: id })).stats;
    expect(stats?.framesReceived).toBe(2n);
    expect(stats?.framesProcessed).toBe(2n);

    await cb.deleteSession({ clientId: id });
    const end = (await onA.until((m) => m.event.case === "ended")).at(-1);
    expect(end?.event.case === "ended" && end.event.value.reason).toBe(EndReason.DELETED);
    expect(await onA.next()).toBeUndefined();
    expect((await errOf(ca.getSession({ clientId: id })))?.code).toBe(Code.NotFound);
  });

  it("a watcher resuming on the other instance replays the events it missed", async () => {
    const ca = sessionClient(a);
    const cb = sessionClient(b);
    const id = (await ca.createSession({ config: create(SessionConfigSchema, { fpsLimit: 30 }) })).session?.clientId ?? "";
    const onA = new StreamReader<WatchSessionResponse>(ca.watchSession({ clientId: id }));
    await sleep(200);
    await ca.submitFrame({ clientId: id, frame: create(FrameSchema, { frameId: "r1", imageData: jpeg }) });
    const seen = (await onA.until((m) => m.event.case === "result")).at(-1);
    const lastSeen = seen?.eventId ?? 0n;
    await ca.submitFrame({ clientId: id, frame: create(FrameSchema, { frameId: "r2", imageData: jpeg }) });
    await onA.until((m) => m.event.case === "result" && m.event.value.frameId === "r2");
    // A client that lost its connection after r1 resumes on B from the last id it saw.
    const resumed = new StreamReader<WatchSessionResponse>(cb.watchSession({ clientId: id, afterEventId: lastSeen }));
    // A watch opens with a keepalive (so a refusal can still be a status); the replay follows it.
    const first = (await resumed.until((m) => m.event.case !== "keepalive")).at(-1);
    expect(first?.eventId).toBe(lastSeen + 1n);
    expect(first?.event.case === "result" && first.event.value.frameId).toBe("r2");
    await cb.deleteSession({ clientId: id });
  });

  it("lists sessions of both instances and aggregates service stats over both", async () => {
    const ca = sessionClient(a);
    const cb = sessionClient(b);
    const x = (await ca.createSession({})).session?.clientId ?? "";
    const y = (await cb.createSession({})).session?.clientId ?? "";
    const listed = (await ca.listSessions({})).sessions.map((s) => s.clientId);
    expect(listed).toEqual(expect.arrayContaining([x, y]));
    await sleep(2200); // one heartbeat period
    const stats = (await cb.getServiceStats({})).stats;
    expect(stats?.instances).toBe(2);
    expect(stats?.activeSessions).toBeGreaterThanOrEqual(2);
    await ca.deleteSession({ clientId: x });
    await ca.deleteSession({ clientId: y });
  });

  it("expires an idle session created on A for a watcher on B, and its keys go with it", async () => {
    const ca = sessionClient(a);
    const cb = sessionClient(b);
    const id = (await ca.createSession({})).session?.clientId ?? "";
    const onB = new StreamReader<WatchSessionResponse>(cb.watchSession({ clientId: id }));
    const end = (await onB.until((m) => m.event.case === "ended", 15_000)).at(-1);
    expect(end?.event.case === "ended" && end.event.value.reason).toBe(EndReason.EXPIRED);
    const r = new Redis(REDIS_URL);
    expect(await r.exists(`${prefix}s:${id}`)).toBe(0);
    r.disconnect();
  });
});

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function startRedis(port: number): Promise<ChildProcess> {
  const proc = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
    stdio: "ignore",
  });
  for (let i = 0; i < 100 && !(await redisAnswers(`redis://127.0.0.1:${port}`)); i++) await sleep(50);
  return proc;
}

describe.skipIf(!(await redisAnswers(REDIS_URL)))("Redis outage", () => {
  it("answers UNAVAILABLE while Redis is down, keeps serving Detect, and recovers when it returns", async () => {
    const port = await freePort();
    let redis = await startRedis(port);
    const server = await startServer({ REDIS_URL: `redis://127.0.0.1:${port}`, REDIS_KEY_PREFIX: "hs-outage:" });
    try {
      const sessions = sessionClient(server);
      const detect = createClient(DetectionService, createGrpcTransport({ baseUrl: server.baseUrl }));
      const jpeg = (await sceneJpeg(52)).bytes;
      const id = (await sessions.createSession({})).session?.clientId ?? "";
      expect(id).not.toBe("");

      redis.kill("SIGKILL");
      await new Promise((r) => redis.once("exit", r));
      await sleep(200);
      const err = await errOf(sessions.createSession({}));
      expect(err?.code).toBe(Code.Unavailable);
      expect(err?.findDetails(ErrorDetailSchema)[0]?.code).toBe(ErrorCode.SERVICE_UNAVAILABLE);
      expect(err?.rawMessage).not.toMatch(/ECONNREFUSED|127\.0\.0\.1/);
      const submit = sessions.submitFrame({ clientId: id, frame: create(FrameSchema, { imageData: jpeg }) });
      expect((await errOf(submit))?.code).toBe(Code.Unavailable);
      // Detection without a session does not need Redis.
      expect((await detect.detect({ frame: create(FrameSchema, { imageData: jpeg }) })).result?.imageWidth).toBe(640);

      redis = await startRedis(port);
      let recovered = false;
      for (let i = 0; i < 100 && !recovered; i++) {
        recovered = await sessions.createSession({}).then(() => true, () => false);
        if (!recovered) await sleep(100);
      }
      expect(recovered).toBe(true);
    } finally {
      await server.close();
      redis.kill("SIGKILL");
    }
  });
});

describe.skipIf(!(await redisAnswers(REDIS_URL)))("an instance whose Redis lost its sessions (restart without persistence)", () => {
  const prefix = `hs-test:${randomBytes(4).toString("hex")}:`;
  const REPLAY_BYTES = 256 * 1024;
  let server: TestServer;
  let jpeg: Uint8Array;

  beforeAll(async () => {
    server = await startServer({
      REDIS_URL,
      REDIS_KEY_PREFIX: prefix,
      STREAMING_MAX_SESSIONS: "3",
      STREAMING_DEFAULT_FPS: "30",
      STREAMING_REPLAY_WINDOW_BYTES: String(REPLAY_BYTES),
    });
    jpeg = (await sceneJpeg(53)).bytes;
  });
  afterAll(async () => {
    await server?.close();
    await clearRedisPrefix(prefix);
  });

  const json = async (path: string, init?: RequestInit) => {
    const res = await fetch(`${server.baseUrl}${path}`, init);
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const createRest = () => json("/stream/sessions", { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" });

  it("writes its live sessions back: GET, /stream/stats and the session quota agree again, event ids go on", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) ids.push(String((await createRest()).body.client_id));
    const sse = new RawSse(`${server.baseUrl}/stream/events/${ids[0]}`);
    await sse.headersReceived;
    const submit = (frameId: string) =>
      fetch(`${server.baseUrl}/stream/process/${ids[0]}?frame_id=${frameId}`, { method: "POST", headers: { "Content-Type": "image/jpeg" }, body: jpeg });
    expect((await submit("before")).status).toBe(202);
    await sse.waitFor((m) => m.type === "detection_result");
    const idBefore = Math.max(...sse.events.map((e) => Number(e.id)));
    expect((await json("/stream/stats")).body.active_sessions).toBe(2);

    // What a Redis restarted without persistence looks like to this instance: every key gone.
    await clearRedisPrefix(prefix);

    // The instance notices (heartbeat) and registers its two sessions again.
    await eventually(async () => expect((await json("/stream/stats")).body.active_sessions).toBe(2), 10_000);
    for (const id of ids) expect((await json(`/stream/sessions/${id}`)).status).toBe(200);
    const listed = await createClient(SessionService, createGrpcTransport({ baseUrl: server.baseUrl })).listSessions({});
    expect(listed.sessions.map((s) => s.clientId).sort()).toEqual([...ids].sort());
    // The quota (3) counts them: one more session fits, the next does not.
    const third = await createRest();
    expect(third.status).toBe(201);
    ids.push(String(third.body.client_id));
    const refused = await createRest();
    expect([refused.status, refused.body.error_code]).toEqual([429, "RESOURCE_EXHAUSTED"]);
    // The session's event ids go on from where they were (a resuming EventSource's Last-Event-ID stays valid).
    expect((await submit("after")).status).toBe(202);
    await sse.waitFor((m) => m.type === "detection_result" && (m.data as Record<string, unknown>).frame_id === "after");
    expect(Number(sse.events.at(-1)?.id)).toBeGreaterThan(idBefore);
    sse.close();
    for (const id of ids) expect((await json(`/stream/sessions/${id}`, { method: "DELETE" })).status).toBe(200);
  }, 30_000);

  it("keeps the replay list in Redis within STREAMING_REPLAY_WINDOW_BYTES, and deletes it with the session", async () => {
    const id = String((await createRest()).body.client_id);
    const sse = new RawSse(`${server.baseUrl}/stream/events/${id}`);
    await sse.headersReceived;
    const metadata = { camera: "front", pad: "x".repeat(60_000) };
    for (let i = 0; i < 10; i++) {
      await sleep(40); // past the 30 FPS limit
      const res = await fetch(`${server.baseUrl}/stream/process/${id}`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ image_data: Buffer.from(jpeg).toString("base64"), frame_id: `m${i}`, metadata }),
      });
      expect(res.status).toBe(202);
      await sse.waitFor((m) => m.type === "detection_result" && (m.data as Record<string, unknown>).frame_id === `m${i}`);
    }
    const redis = new Redis(REDIS_URL);
    try {
      const entries = await redis.lrangeBuffer(`${prefix}r:${id}`, 0, -1);
      const held = entries.reduce((n, e) => n + e.length, 0);
      console.log(`redis replay list after 10 results of ~60 kB: ${entries.length} entries, ${held} bytes (budget ${REPLAY_BYTES})`);
      expect(held).toBeLessThanOrEqual(REPLAY_BYTES);
      expect(entries.length).toBeGreaterThanOrEqual(2);
      expect(Number(await redis.hget(`${prefix}c:${id}`, "replayBytes"))).toBe(held);
      expect((await json(`/stream/sessions/${id}`, { method: "DELETE" })).status).toBe(200);
      await sse.done;
      expect(await redis.exists(`${prefix}r:${id}`, `${prefix}q:${id}`, `${prefix}c:${id}`, `${prefix}s:${id}`)).toBe(0);
    } finally {
      redis.disconnect();
    }
  }, 60_000);
});
