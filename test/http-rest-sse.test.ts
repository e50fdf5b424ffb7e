import { EventSource } from "eventsource";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually, getJson, postJson, RawSse, type Json } from "./support/http-clients.js";
import { sceneJpeg } from "./support/images.js";
import { clearRedisPrefix, redisAnswers, TEST_REDIS_URL } from "./support/redis.js";
import { startServer, type TestServer } from "./support/server.js";

const MAX_FRAME_BYTES = 150_000;
const MAX_REQUEST_BYTES = 400_000;

/** The document's detection fields (track_id and track_confirmed only appear when tracking is on). */
const DETECTION_KEYS = ["area", "bbox", "center_x", "center_y", "class_id", "class_name", "confidence", "height", "width"];

describe("REST + SSE routes (real server, real clients)", () => {
  let server: TestServer;
  let base: string;
  let jpeg: Uint8Array;
  let b64: string;

  beforeAll(async () => {
    server = await startServer({
      STREAMING_DEFAULT_FPS: "30",
      MAX_FRAME_BYTES: String(MAX_FRAME_BYTES),
      MAX_REQUEST_BYTES: String(MAX_REQUEST_BYTES),
    });
    base = server.baseUrl;
    jpeg = (await sceneJpeg(11)).bytes;
    b64 = Buffer.from(jpeg).toString("base64");
  });
  afterAll(() => server.close());

  async function newSession(config: Json = {}): Promise<{ id: string; sse: RawSse }> {
    const { status, json } = await postJson(`${base}/stream/sessions`, config);
    expect(status).toBe(201);
    const id = String(json.client_id);
    const sse = new RawSse(`${base}${String(json.sse_endpoint)}`);
    await sse.headersReceived;
    return { id, sse };
  }

  const submit = (id: string, body: Json) => postJson(`${base}/stream/process/${id}`, body);
  const frameBody = (frameId: string, extra: Json = {}) => ({ image_data: b64, frame_id: frameId, timestamp: Date.now() / 1000, ...extra });
  const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

  /** A good frame after whatever came before: accepted, and its result arrives on SSE. */
  async function expectGoodFrame(id: string, sse: RawSse, frameId: string): Promise<Json> {
    await pause(100); // a frame interval, so the FPS limit cannot drop it
    const res = await submit(id, frameBody(frameId));
    expect(res.status).toBe(202);
    expect(res.json).toMatchObject({ frame_id: frameId, accepted: true });
    const ev = await sse.waitFor((m) => m.type === "detection_result" && (m.data as Json).frame_id === frameId);
    expect(((ev.data as Json).detections as unknown[]).length).toBeGreaterThan(0);
    return ev.data as Json;
  }

  it("serves the document's REST + SSE flow (fetch + EventSource) with the document's field names", async () => {
    // --- as in the document, with the server's address in front of the relative paths
    const response = await fetch(`${base}/stream/sessions`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ fps_limit: 15, confidence_threshold: 0.6 }),
    });
    const session = (await response.json()) as Json;
    const detections: Json[][] = [];
    const messages: Json[] = [];
    const processDetections = (d: Json[]) => detections.push(d);
    const eventSource = new EventSource(`${base}${String(session.sse_endpoint)}`);
    const got = new Promise<void>((resolve) => {
      eventSource.onmessage = (event) => {
        const data = JSON.parse(event.data) as Json;
        messages.push(data);
        if (data.type === "detection_result") {
          processDetections((data.data as Json).detections as Json[]);
          resolve();
        }
      };
    });
    await new Promise<void>((resolve) => (eventSource.onopen = () => resolve()));
    const sendFrame = async (imageData: string) => {
      return fetch(`${base}${String(session.upload_endpoint)}`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({
          image_data: imageData,
          frame_id: Date.now().toString(),
          timestamp: Date.now() / 1000,
        }),
      });
    };
    const upload = await sendFrame(b64);
    await got;
    eventSource.close();

    expect(response.status).toBe(201);
    expect(session.session_id).toBe(session.client_id);
    expect(session.sse_endpoint).toBe(`/stream/events/${String(session.client_id)}`);
    expect(session.upload_endpoint).toBe(`/stream/process/${String(session.client_id)}`);
    // Every field filled in with the value in effect; the default quality is HIGH (the model's native size).
    expect(session.config).toMatchObject({ fps_limit: 15, confidence_threshold: 0.6, iou_threshold: 0.7, max_detections: 300, classes: [], quality: "HIGH" });
    expect(response.headers.get("location")).toBe(`/stream/sessions/${String(session.client_id)}`);
    expect(upload.status).toBe(202);
    const accepted = (await upload.json()) as Json;
    expect(Object.keys(accepted).sort()).toEqual(["accepted", "allowed_fps", "frame_id", "queue_depth"]);
    expect(accepted).toMatchObject({ accepted: true, allowed_fps: 15 });

    expect(messages).toHaveLength(1);
    const result = messages[0] as Json;
    expect(Object.keys(result).sort()).toEqual(["data", "type"]);
    const data = result.data as Json;
    for (const key of ["frame_id", "detections", "processing_time_ms", "timestamp"]) expect(data).toHaveProperty(key);
    expect(data.frame_id).toBe(accepted.frame_id);
    const found = detections[0] ?? [];
    expect(found.length).toBeGreaterThan(0);
    for (const d of found) {
      expect(Object.keys(d).filter((k) => k !== "track_id" && k !== "track_confirmed").sort()).toEqual(DETECTION_KEYS);
      expect(d.confidence as number).toBeGreaterThanOrEqual(0.6);
    }
  });

  it("writes SSE with ids, retry, keepalive-able comments and no event names; resumes from Last-Event-ID", async () => {
    const { id, sse } = await newSession();
    expect(sse.status).toBe(200);
    expect(sse.contentType).toMatch(/^text\/event-stream/);
    await expectGoodFrame(id, sse, "e1");
    await expectGoodFrame(id, sse, "e2");
    expect(sse.retry).toBe(3000);
    expect(sse.comments).toContain("connected");
    expect(sse.events.every((e) => e.event === undefined)).toBe(true);
    const ids = sse.events.map((e) => Number(e.id));
    expect(ids.every((n) => Number.isInteger(n) && n > 0)).toBe(true);
    expect([...ids].sort((a, b) => a - b)).toEqual(ids);
    sse.close();

    // A reconnecting EventSource sends the last id it saw: the events after it are replayed.
    const firstResult = sse.events.find((e) => (JSON.parse(e.data) as Json).type === "detection_result");
    const resumed = new RawSse(`${base}/stream/events/${id}`, { "Last-Event-ID": String(firstResult?.id) });
    const replayed = await resumed.waitFor((m) => m.type === "detection_result");
    expect((replayed.data as Json).frame_id).toBe("e2");
    expect(Number(resumed.events[0]?.id)).toBeGreaterThan(Number(firstResult?.id));
    resumed.close();
  });

  it("accepts a raw image body with frame_id and timestamp in the query", async () => {
    const { id, sse } = await newSession();
    const res = await fetch(`${base}/stream/process/${id}?frame_id=raw-1&timestamp=1641234567.5`, {
      method: "POST",
      headers: { "Content-Type": "image/jpeg" },
      body: jpeg,
    });
    expect(res.status).toBe(202);
    const ev = await sse.waitFor((m) => m.type === "detection_result");
    expect(ev.data).toMatchObject({ frame_id: "raw-1", timestamp: 1641234567.5, image_width: 640, image_height: 480 });
    sse.close();
  });

  it("reports session stats, changes config with PATCH (seen on SSE), and DELETE ends the SSE stream", async () => {
    const { id, sse } = await newSession({ fps_limit: 30 });
    await expectGoodFrame(id, sse, "s1");

    // Counters may trail the result event by a moment (they go through the session store).
    await eventually(async () => {
      const stats = await getJson(`${base}/stream/sessions/${id}/stats`);
      expect(stats.status).toBe(200);
      expect(stats.json).toMatchObject({ client_id: id, frames_received: 1, frames_processed: 1, frames_dropped: 0, frames_failed: 0, allowed_fps: 30 });
      expect(stats.json.processing_time_ms).toMatchObject({ samples: 1 });
    });

    const patched = await postJson(`${base}/stream/sessions/${id}/config`, { classes: ["pothole"], confidence_threshold: 0.5 }, "PATCH");
    expect(patched.status).toBe(200);
    expect(patched.json).toMatchObject({ client_id: id, config_version: 2, config: { classes: ["pothole"], confidence_threshold: 0.5 } });
    expect(await sse.waitFor((m) => m.type === "config_applied")).toMatchObject({ config_version: 2 });
    const after = await expectGoodFrame(id, sse, "s2");
    expect(after.config_version).toBe(2);
    expect((after.detections as Json[]).every((d) => d.class_name === "pothole")).toBe(true);

    const got = await getJson(`${base}/stream/sessions/${id}`);
    expect(got.json).toMatchObject({ client_id: id, config_version: 2, door: "SESSION_API" });

    const del = await fetch(`${base}/stream/sessions/${id}`, { method: "DELETE" });
    expect([del.status, await del.json()]).toEqual([200, { client_id: id, deleted: true }]);
    expect(await sse.waitFor((m) => m.type === "session_ended")).toEqual({ type: "session_ended", reason: "DELETED" });
    await sse.done; // the stream ends after the last event
    // Every event has an id, the last one too (a resume point after everything else).
    const ids = sse.events.map((e) => Number(e.id));
    expect(ids.every((n) => Number.isInteger(n) && n > 0)).toBe(true);
    expect(ids.at(-1)).toBe(Math.max(...ids));
    // What a reconnecting EventSource then gets: a 404, which stops it for good.
    const again = new RawSse(`${base}/stream/events/${id}`);
    await again.done;
    expect(again.status).toBe(404);
  });

  it("DELETE answers every accepted frame before session_ended: the one being processed with its result, the queued one as dropped", () =>
    expectDeleteAnswersEveryFrame(server, b64));

  it("frees the watch when the SSE client goes away", async () => {
    const { id, sse } = await newSession();
    const live = await server.app.sessions.get(id);
    await eventually(() => expect(live.subscriberCount).toBe(1));
    sse.close();
    await eventually(() => expect(live.subscriberCount).toBe(0));

    // The same through the EventSource client.
    const es = new EventSource(`${base}/stream/events/${id}`);
    await new Promise<void>((resolve) => (es.onopen = () => resolve()));
    await eventually(() => expect(live.subscriberCount).toBe(1));
    es.close();
    await eventually(() => expect(live.subscriberCount).toBe(0));
  });

  // A reader that stops reading is cut off before its queue passes STREAMING_WATCHER_BUFFER_BYTES:
  // test/limits.test.ts ("memory a session holds is bounded in bytes").

  it("service stats are current when asked: a processed frame counts at once", async () => {
    const before = await getJson(`${base}/stream/stats`);
    const { id, sse } = await newSession({ fps_limit: 30 });
    await expectGoodFrame(id, sse, "st1");
    const del = await fetch(`${base}/stream/sessions/${id}`, { method: "DELETE" });
    expect(del.status).toBe(200);
    sse.close();
    // No waiting: the totals are this instance's as of now, not as of its last heartbeat.
    const after = await getJson(`${base}/stream/stats`);
    expect(after.json.frames_processed).toBe(Number(before.json.frames_processed) + 1);
    expect(after.json.active_sessions).toBe(before.json.active_sessions);
  });

  it("reports health and service stats", async () => {
    const health = await getJson(`${base}/stream/health`);
    expect(health.status).toBe(200);
    expect(health.json).toMatchObject({ status: "healthy", backend: "onnxruntime", classes: ["crack", "pothole"] });
    const stats = await getJson(`${base}/stream/stats`);
    expect(stats.status).toBe(200);
    expect(stats.json).toMatchObject({ instances: 1, engine: { classes: ["crack", "pothole"] } });
    expect(typeof stats.json.active_sessions).toBe("number");
    expect(typeof stats.json.frames_processed).toBe("number");
  });

  describe("bad input: the error JSON with the right status and code, then a good frame still works", () => {
    const withSession = async (fn: (id: string, sse: RawSse) => Promise<void>) => {
      const { id, sse } = await newSession();
      try {
        await fn(id, sse);
        await expectGoodFrame(id, sse, "good-after");
      } finally {
        sse.close();
      }
    };
    const expectError = (res: { status: number; json: Json }, status: number, expected: Json) => {
      expect(res.status).toBe(status);
      expect(res.json).toMatchObject({ type: "error", ...expected });
      expect(typeof res.json.error).toBe("string");
      expect(typeof res.json.timestamp).toBe("number");
    };
    const raw = (id: string, body: string | Uint8Array, type = "application/json") =>
      fetch(`${base}/stream/process/${id}`, { method: "POST", headers: { "Content-Type": type }, body }).then(async (r) => ({
        status: r.status,
        json: (await r.json()) as Json,
      }));

    it("invalid base64 → 400 INVALID_MESSAGE", () =>
      withSession(async (id) => expectError(await submit(id, frameBody("b", { image_data: "***" })), 400, { error_code: "INVALID_MESSAGE", field: "image_data", frame_id: "b" })));

    it("bytes that are not an image → 202, then INVALID_IMAGE for that frame on SSE", () =>
      withSession(async (id, sse) => {
        const res = await submit(id, frameBody("t", { image_data: Buffer.from("plain text").toString("base64") }));
        expect(res.status).toBe(202);
        expect(await sse.waitFor((m) => m.type === "error")).toMatchObject({ error_code: "INVALID_IMAGE", frame_id: "t" });
      }));

    it("an empty image → 400 INVALID_IMAGE", () =>
      withSession(async (id) => expectError(await submit(id, frameBody("e", { image_data: "" })), 400, { error_code: "INVALID_IMAGE", frame_id: "e" })));

    it("malformed JSON → 400 INVALID_MESSAGE", () =>
      withSession(async (id) => expectError(await raw(id, '{"image_data": '), 400, { error_code: "INVALID_MESSAGE" })));

    it("wrong field types → 400 INVALID_MESSAGE naming the field", () =>
      withSession(async (id) => {
        expectError(await submit(id, frameBody("x", { frame_id: 5 })), 400, { error_code: "INVALID_MESSAGE", field: "frame_id" });
        expectError(await submit(id, frameBody("y", { timestamp: "soon" })), 400, { error_code: "INVALID_MESSAGE", field: "timestamp", frame_id: "y" });
        expectError(await raw(id, "[1]"), 400, { error_code: "INVALID_MESSAGE" });
      }));

    it("an unsupported Content-Type → 415", () =>
      withSession(async (id) => expectError(await raw(id, "<frame/>", "application/xml"), 415, { error_code: "INVALID_MESSAGE" })));

    it("a JSON body labelled text/plain, as a form, or not at all → 415 on every JSON route (no preflight-free posts from other sites)", async () => {
      const send = async (url: string, method: string, body: string, type?: string) => {
        // A Uint8Array body, so that fetch adds no Content-Type of its own.
        const r = await fetch(url, { method, headers: type ? { "Content-Type": type } : {}, body: new TextEncoder().encode(body) });
        return { status: r.status, json: (await r.json()) as Json };
      };
      await withSession(async (id) => {
        const routes: Array<[string, string, string]> = [
          [`${base}/stream/sessions`, "POST", JSON.stringify({ fps_limit: 10 })],
          [`${base}/stream/sessions/${id}/config`, "PATCH", JSON.stringify({ fps_limit: 10 })],
          [`${base}/stream/process/${id}`, "POST", JSON.stringify(frameBody("plain"))],
        ];
        for (const [url, method, body] of routes) {
          for (const type of ["text/plain", "application/x-www-form-urlencoded", undefined]) {
            expectError(await send(url, method, body, type), 415, { error_code: "INVALID_MESSAGE", field: "content-type" });
          }
          // What the seed document's clients send (fetch with application/json; Python requests' json=).
          expect((await send(url, method, body, "application/json; charset=utf-8")).status).toBeLessThan(300);
        }
      });
      // Creating a session with all defaults needs no body, nor a type for it.
      const bare = await fetch(`${base}/stream/sessions`, { method: "POST" });
      expect(bare.status).toBe(201);
      await fetch(`${base}/stream/sessions/${String(((await bare.json()) as Json).client_id)}`, { method: "DELETE" });
    });

    it("an image over MAX_FRAME_BYTES in a body under MAX_REQUEST_BYTES → 413 MESSAGE_TOO_LARGE from the service", () =>
      withSession(async (id) =>
        expectError(await submit(id, frameBody("big", { image_data: Buffer.alloc(MAX_FRAME_BYTES + 1).toString("base64") })), 413, {
          error_code: "MESSAGE_TOO_LARGE",
          frame_id: "big",
        })));

    it("a body over MAX_REQUEST_BYTES (Content-Length) → 413 without reading it", () =>
      withSession(async (id) => expectError(await raw(id, new Uint8Array(MAX_REQUEST_BYTES + 1), "image/jpeg"), 413, { error_code: "MESSAGE_TOO_LARGE" })));

    it("a chunked body over MAX_REQUEST_BYTES → 413 once the limit is passed", () =>
      withSession(async (id) => {
        const chunk = new Uint8Array(64 * 1024);
        let n = 0;
        // Endless: the server has to stop it.
        const body = new ReadableStream<Uint8Array>({
          pull(controller) {
            n++;
            controller.enqueue(chunk);
          },
        });
        const res = await fetch(`${base}/stream/process/${id}`, {
          method: "POST",
          headers: { "Content-Type": "image/jpeg" },
          body,
          duplex: "half",
        } as RequestInit);
        // The body never ends, so an answer at all means the server stopped reading it.
        expectError({ status: res.status, json: (await res.json()) as Json }, 413, { error_code: "MESSAGE_TOO_LARGE" });
        expect(n).toBeGreaterThan(MAX_REQUEST_BYTES / chunk.length);
      }));

    it("an unknown client_id → 404 SESSION_NOT_FOUND on every session route", async () => {
      expectError(await submit("nope", frameBody("n1")), 404, { error_code: "SESSION_NOT_FOUND", frame_id: "n1" });
      expectError(await getJson(`${base}/stream/sessions/nope/stats`), 404, { error_code: "SESSION_NOT_FOUND" });
      expectError(await getJson(`${base}/stream/sessions/nope`), 404, { error_code: "SESSION_NOT_FOUND" });
      expectError(await postJson(`${base}/stream/sessions/nope/config`, { fps_limit: 5 }, "PATCH"), 404, { error_code: "SESSION_NOT_FOUND" });
      expectError(await getJson(`${base}/stream/sessions/nope`, { method: "DELETE" }), 404, { error_code: "SESSION_NOT_FOUND" });
      expectError(await getJson(`${base}/stream/events/nope`), 404, { error_code: "SESSION_NOT_FOUND" });
    });

    it("invalid configs → 400 INVALID_CONFIG naming the field, on create and on PATCH", async () => {
      const cases: Array<[Json, string]> = [
        [{ fps_limit: 100 }, "fps_limit"],
        [{ fps_limit: "fast" }, "fps_limit"],
        [{ confidence_threshold: 1.5 }, "confidence_threshold"],
        [{ classes: ["giraffe"] }, "class_filter"],
        [{ fps_limt: 10 }, "fps_limt"],
      ];
      for (const [config, field] of cases) {
        expectError(await postJson(`${base}/stream/sessions`, config), 400, { error_code: "INVALID_CONFIG", field });
      }
      await withSession(async (id) => {
        for (const [config, field] of cases) {
          expectError(await postJson(`${base}/stream/sessions/${id}/config`, config, "PATCH"), 400, { error_code: "INVALID_CONFIG", field });
        }
        expectError(await postJson(`${base}/stream/sessions/${id}/config`, [1], "PATCH"), 400, { error_code: "INVALID_MESSAGE" });
      });
      const malformed = await fetch(`${base}/stream/sessions`, { method: "POST", headers: { "Content-Type": "application/json" }, body: "{" });
      expectError({ status: malformed.status, json: (await malformed.json()) as Json }, 400, { error_code: "INVALID_MESSAGE" });
    });

    it("a bad Last-Event-ID → 400; wrong method → 405 with Allow; unknown /stream path → 404", async () => {
      const { id, sse } = await newSession();
      sse.close();
      expectError(await getJson(`${base}/stream/events/${id}`, { headers: { "Last-Event-ID": "abc" } }), 400, { error_code: "INVALID_MESSAGE" });
      const put = await getJson(`${base}/stream/sessions/${id}`, { method: "PUT" });
      expectError(put, 405, { error_code: "INVALID_MESSAGE" });
      expect(put.headers.get("allow")).toBe("GET, DELETE");
      expectError(await getJson(`${base}/stream/nothing-here`), 404, {});
    });
  });
});

describe.skipIf(!(await redisAnswers()))("REST + SSE with the sessions in Redis", () => {
  const prefix = `hs-test-rest-end-${process.pid}:`;
  let server: TestServer;
  let b64: string;

  beforeAll(async () => {
    server = await startServer({ REDIS_URL: TEST_REDIS_URL, REDIS_KEY_PREFIX: prefix, STREAMING_DEFAULT_FPS: "30" });
    b64 = Buffer.from((await sceneJpeg(11)).bytes).toString("base64");
  });
  afterAll(async () => {
    await server.close();
    await clearRedisPrefix(prefix);
  });

  // The answers travel through the Redis bus while `ended` is also given to the streams directly.
  it("DELETE answers every accepted frame before session_ended", () => expectDeleteAnswersEveryFrame(server, b64));
});

/** The frame an SSE message answers (flat, or under `data`); undefined for session-wide messages. */
function frameIdOf(m: Json): string | undefined {
  const id = m.frame_id ?? (m.data as Json | undefined)?.frame_id;
  return typeof id === "string" ? id : undefined;
}

/**
 * REST frames r1 (in the engine) and r2 (queued) when the session is DELETEd: r2 is dropped
 * (SESSION_CLOSED) and r1 gets its result, both on SSE before session_ended, each exactly once.
 */
async function expectDeleteAnswersEveryFrame(server: TestServer, b64: string): Promise<void> {
  const base = server.baseUrl;
  const submit = (id: string, frameId: string) => postJson(`${base}/stream/process/${id}`, { image_data: b64, frame_id: frameId });
  // The engine held on a gate: r1 stays in it, so r2 is certainly still queued when DELETE comes.
  type Run = (...args: unknown[]) => Promise<unknown>;
  const engine = server.app.engine as unknown as { run: Run; runImage?: Run };
  const { run, runImage } = engine;
  let release = () => undefined as void;
  const gate = new Promise<void>((r) => (release = r));
  let entered = () => undefined as void;
  const held = new Promise<void>((r) => (entered = r));
  const gated = (fn: Run): Run => async (...args) => {
    entered();
    await gate;
    return fn.apply(engine, args);
  };
  engine.run = gated(run);
  if (runImage) engine.runImage = gated(runImage);
  try {
    const created = await postJson(`${base}/stream/sessions`, { fps_limit: 30 });
    const id = String(created.json.client_id);
    const sse = new RawSse(`${base}/stream/events/${id}`);
    await sse.headersReceived;
    expect((await submit(id, "r1")).json).toMatchObject({ frame_id: "r1", accepted: true });
    await held;
    await new Promise((r) => setTimeout(r, 100)); // a frame interval, so the FPS limit cannot drop it
    expect((await submit(id, "r2")).json).toMatchObject({ frame_id: "r2", accepted: true, queue_depth: 1 });
    const del = fetch(`${base}/stream/sessions/${id}`, { method: "DELETE" });
    // The queued frame is answered while r1 is still in the engine ...
    await sse.waitFor((m) => m.type === "frame_dropped" && frameIdOf(m) === "r2");
    release();
    expect((await del).status).toBe(200);
    await sse.waitFor((m) => m.type === "session_ended");
    // ... and the one being processed gets its result, both before the end, each exactly once.
    const seen = sse.json().filter((m) => frameIdOf(m) !== undefined || m.type === "session_ended");
    expect(seen.map((m) => `${String(m.type)}:${frameIdOf(m) ?? ""}`)).toEqual(["frame_dropped:r2", "detection_result:r1", "session_ended:"]);
    expect(seen[0]).toMatchObject({ reason: "SESSION_CLOSED" });
    sse.close();
  } finally {
    release();
    engine.run = run;
    if (runImage) engine.runImage = runImage;
  }
}
