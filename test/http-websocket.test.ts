import { execFile, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { eventually, getJson, postJson, WsClient, type Json } from "./support/http-clients.js";
import { sceneJpeg } from "./support/images.js";
import { SHARED_DIR, startServer, type TestServer } from "./support/server.js";

const run = promisify(execFile);

/** Debian's python3-websockets installs for /usr/bin/python3, not for the `python3` first on PATH. */
const PYTHON = "/usr/bin/python3";
const hasPythonWebsockets = spawnSync(PYTHON, ["-c", "import websockets"], { stdio: "ignore" }).status === 0;

/**
 * The seed document's Python client, verbatim. The document forgot `import time`; the test adds
 * it, substitutes the port and runs the script where its test_frame.jpg is — nothing else changes.
 */
const DOC_PYTHON_CLIENT = `import asyncio
import websockets
import json
import base64

async def stream_detection():
    uri = "ws://localhost:8080/stream/detection?fps_limit=10"
    
    async with websockets.connect(uri) as websocket:
        # Send frame
        with open("test_frame.jpg", "rb") as f:
            image_data = base64.b64encode(f.read()).decode()
        
        frame_data = {
            "type": "frame",
            "image_data": image_data,
            "frame_id": "test_frame_1",
            "timestamp": time.time()
        }
        
        await websocket.send(json.dumps(frame_data))
        
        # Receive result
        result = await websocket.recv()
        detection_result = json.loads(result)
        print("Detections:", detection_result['data']['detections'])

asyncio.run(stream_detection())
`;
const SEED_DOC = join(SHARED_DIR, "seed/live-detection-streaming-api.md");

/** The document's detection fields (track_id and track_confirmed only appear when tracking is on). */
const DETECTION_KEYS = ["area", "bbox", "center_x", "center_y", "class_id", "class_name", "confidence", "height", "width"];

const MAX_WS_MESSAGE_BYTES = 300_000;
const MAX_FRAME_BYTES = 150_000;

describe("WebSocket /stream/detection (real server, real clients)", () => {
  let server: TestServer;
  let wsUrl: string;
  let jpeg: Uint8Array;
  let b64: string;

  beforeAll(async () => {
    server = await startServer({
      STREAMING_DEFAULT_FPS: "30",
      MAX_FRAME_BYTES: String(MAX_FRAME_BYTES),
      MAX_WS_MESSAGE_BYTES: String(MAX_WS_MESSAGE_BYTES),
      WS_PING_INTERVAL_MS: "400",
    });
    wsUrl = `ws://127.0.0.1:${server.address.port}/stream/detection`;
    jpeg = (await sceneJpeg(11)).bytes;
    b64 = Buffer.from(jpeg).toString("base64");
  });
  afterAll(() => server.close());

  const frame = (frameId: string, extra: Json = {}) => ({
    type: "frame",
    image_data: b64,
    frame_id: frameId,
    timestamp: Date.now() / 1000,
    ...extra,
  });

  /**
   * Sends a good frame and expects its result: the connection survived whatever came before. Waits
   * a frame interval first: a frame the FPS limit drops gets no answer unless the client asked for
   * notices (?notify=true), so a frame sent right after a failed one would wait forever.
   */
  async function expectGoodFrame(c: WsClient, frameId: string): Promise<Json> {
    await new Promise((r) => setTimeout(r, 100));
    c.sendJson(frame(frameId));
    const msg = await c.next();
    expect(msg.type).toBe("detection_result");
    const data = msg.data as Json;
    expect(data.frame_id).toBe(frameId);
    expect((data.detections as unknown[]).length).toBeGreaterThan(0);
    return data;
  }

  it.skipIf(!hasPythonWebsockets)("runs the seed document's Python client as written: it prints detections", async () => {
    if (existsSync(SEED_DOC)) {
      // Proves the embedded copy is the document's code, not a version adapted to the server.
      const doc = readFileSync(SEED_DOC, "utf8");
      const block = /```python\n([\s\S]*?)```/.exec(doc)?.[1];
      expect(block).toBe(DOC_PYTHON_CLIENT);
    }
    const dir = await mkdtemp(join(tmpdir(), "hazard-py-ws-"));
    try {
      const script = DOC_PYTHON_CLIENT.replace("import base64\n", "import base64\nimport time\n").replace(
        "ws://localhost:8080/",
        `ws://localhost:${server.address.port}/`,
      );
      await writeFile(join(dir, "client.py"), script);
      await writeFile(join(dir, "test_frame.jpg"), jpeg);
      const { stdout } = await run(PYTHON, ["client.py"], { cwd: dir, timeout: 30_000 });
      expect(stdout).toMatch(/^Detections: \[\{'bbox': \[/);
      expect(stdout).toContain("'class_name': 'pothole'");
      expect(stdout).toContain("'confidence': ");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("serves the document's JavaScript flow (Node ws with the browser API) with the document's field names", async () => {
    const detections: Json[][] = [];
    const ws = new WebSocket(`ws://localhost:${server.address.port}/stream/detection?fps_limit=15`);
    const processDetections = (d: Json[]) => detections.push(d);
    const messages: Json[] = [];
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => {
        // --- as in the document
        const sendFrame = (imageData: string) => {
          ws.send(
            JSON.stringify({
              type: "frame",
              image_data: imageData,
              frame_id: Date.now().toString(),
              timestamp: Date.now() / 1000,
            }),
          );
        };
        sendFrame(b64);
      };
      ws.onmessage = (event) => {
        const data = JSON.parse(String(event.data)) as Json;
        messages.push(data);
        if (data.type === "detection_result") {
          processDetections((data.data as Json).detections as Json[]);
          resolve();
        }
      };
      ws.onerror = (e) => reject(new Error(e.message));
    });
    // ws offers permessage-deflate as browsers do; the server declines it unless WS_PERMESSAGE_DEFLATE.
    expect(ws.extensions).toBe("");
    ws.close();

    expect(messages).toHaveLength(1); // nothing unprompted before the result
    const msg = messages[0] as Json;
    expect(Object.keys(msg).sort()).toEqual(["data", "type"]);
    const data = msg.data as Json;
    for (const key of ["frame_id", "detections", "processing_time_ms", "timestamp"]) expect(data).toHaveProperty(key);
    expect(typeof data.processing_time_ms).toBe("number");
    expect(typeof data.timestamp).toBe("number");
    expect(data.frame_id).toMatch(/^\d+$/);
    expect([data.image_width, data.image_height]).toEqual([640, 480]);
    const found = detections[0] ?? [];
    expect(found.length).toBeGreaterThan(0);
    for (const d of found) {
      expect(Object.keys(d).filter((k) => k !== "track_id" && k !== "track_confirmed").sort()).toEqual(DETECTION_KEYS);
      const [x1, y1, x2, y2] = d.bbox as number[];
      expect(d.width).toBeCloseTo((x2 ?? 0) - (x1 ?? 0), 0);
      expect(d.height).toBeCloseTo((y2 ?? 0) - (y1 ?? 0), 0);
      // Rounded to 0.1 px and 4 digits: no float32 noise in the JSON.
      for (const v of d.bbox as number[]) expect(Math.round(v * 10) / 10).toBe(v);
      expect(Math.round((d.confidence as number) * 1e4) / 1e4).toBe(d.confidence);
      expect(["crack", "pothole"]).toContain(d.class_name);
    }
  });

  it("sends session_created and notices only when asked, answers ping, applies config_update", async () => {
    const c = new WsClient(`${wsUrl}?fps_limit=2&session_info=true&notify=true`);
    await c.opened;
    const created = await c.next();
    expect(created.type).toBe("session_created");
    expect(created.client_id).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(created.resumed).toBe(false);
    expect((created.config as Json).fps_limit).toBe(2);
    expect(created.sse_endpoint).toBe(`/stream/events/${String(created.client_id)}`);
    expect(await c.next()).toMatchObject({ type: "flow_control", allowed_fps: 2 });

    // The pong's timestamp is the server's clock in float seconds (this machine's clock): taken
    // between the ping leaving and the pong arriving.
    const pingSentSec = Date.now() / 1000;
    c.sendJson({ type: "ping" });
    const pong = await c.next();
    const pongReadSec = Date.now() / 1000;
    expect(pong.type).toBe("pong");
    expect(pong.timestamp as number).toBeGreaterThanOrEqual(Math.floor(pingSentSec * 1000) / 1000);
    expect(pong.timestamp as number).toBeLessThanOrEqual(pongReadSec + 0.001);

    // Two frames at once at 2 FPS: the second is dropped, and with notify=true the client hears why.
    c.sendJson(frame("a1"));
    c.sendJson(frame("a2"));
    const outcomes = [await c.next(), await c.next()];
    expect(outcomes).toContainEqual({ type: "frame_dropped", frame_id: "a2", reason: "FPS_LIMIT" });
    expect(outcomes.find((m) => m.type === "detection_result")).toBeDefined();

    c.sendJson({ type: "config_update", config: { fps_limit: 30, classes: ["pothole"] } });
    const applied = await c.until((m) => m.type === "config_applied");
    expect(applied.config_version).toBe(2);
    expect((applied.config as Json).classes).toEqual(["pothole"]);
    // The limiter had scheduled the next frame at 2 FPS (500 ms after a1); let that slot pass.
    await new Promise((r) => setTimeout(r, 600));
    c.sendJson(frame("a4"));
    const after = (await c.until((m) => m.type === "detection_result" && (m.data as Json).frame_id === "a4")).data as Json;
    expect(after.config_version).toBe(2);
    expect((after.detections as Json[]).every((d) => d.class_name === "pothole")).toBe(true);
    c.close();
  });

  it("sends nothing unprompted by default, and results come in frame order", async () => {
    const c = new WsClient(wsUrl);
    await c.opened;
    await c.expectSilence(300);
    await expectGoodFrame(c, "o1");
    await expectGoodFrame(c, "o2");
    c.close();
  });

  it("accepts a binary message with raw image bytes as a frame with a server-assigned id", async () => {
    const c = new WsClient(wsUrl);
    await c.opened;
    c.ws.send(jpeg, { binary: true });
    const msg = await c.next();
    expect(msg.type).toBe("detection_result");
    expect((msg.data as Json).frame_id).toMatch(/.+-\d+$/);
    expect(((msg.data as Json).detections as unknown[]).length).toBeGreaterThan(0);
    c.close();
  });

  describe("bad input: an error message with the right code, then the next good frame still works", () => {
    const cases: Array<[string, (c: WsClient) => void, Json]> = [
      ["malformed JSON", (c) => c.ws.send("{not json"), { error_code: "INVALID_MESSAGE", frame_id: null }],
      ["a JSON array", (c) => c.ws.send("[1,2]"), { error_code: "INVALID_MESSAGE" }],
      ["an unknown message type", (c) => c.sendJson({ type: "video", frame_id: "u1" }), { error_code: "INVALID_MESSAGE", field: "type", frame_id: "u1" }],
      ["a missing type", (c) => c.sendJson({ image_data: "AAAA" }), { error_code: "INVALID_MESSAGE", field: "type" }],
      ["invalid base64", (c) => c.sendJson(frame("b64", { image_data: "%%% not base64 %%%" })), { error_code: "INVALID_MESSAGE", field: "image_data", frame_id: "b64" }],
      [
        "bytes that are not an image",
        (c) => c.sendJson(frame("txt", { image_data: Buffer.from("just text, not a JPEG").toString("base64") })),
        { error_code: "INVALID_IMAGE", frame_id: "txt" },
      ],
      ["an empty image", (c) => c.sendJson(frame("empty", { image_data: "" })), { error_code: "INVALID_IMAGE", frame_id: "empty" }],
      ["a numeric frame_id", (c) => c.sendJson(frame("x", { frame_id: 17 })), { error_code: "INVALID_MESSAGE", field: "frame_id" }],
      ["a string timestamp", (c) => c.sendJson(frame("ts", { timestamp: "now" })), { error_code: "INVALID_MESSAGE", field: "timestamp", frame_id: "ts" }],
      ["metadata that is not an object", (c) => c.sendJson(frame("md", { metadata: "gps" })), { error_code: "INVALID_MESSAGE", field: "metadata", frame_id: "md" }],
      // The stream's FrameError has no field, so the service's message is what names it here.
      ["an out-of-range config_update", (c) => c.sendJson({ type: "config_update", config: { fps_limit: 100 } }), { error_code: "INVALID_CONFIG", error: expect.stringContaining("fps_limit") }],
      ["a wrongly typed config_update", (c) => c.sendJson({ type: "config_update", config: { confidence_threshold: "high" } }), { error_code: "INVALID_CONFIG", field: "confidence_threshold" }],
      ["a config_update without config", (c) => c.sendJson({ type: "config_update" }), { error_code: "INVALID_MESSAGE", field: "config" }],
      [
        "an image over MAX_FRAME_BYTES (the service's limit)",
        (c) => c.sendJson(frame("big", { image_data: Buffer.alloc(MAX_FRAME_BYTES + 1, 7).toString("base64") })),
        { error_code: "MESSAGE_TOO_LARGE", frame_id: "big" },
      ],
      [
        "a message over MAX_WS_MESSAGE_BYTES",
        (c) => c.ws.send("x".repeat(MAX_WS_MESSAGE_BYTES + 10)),
        { error_code: "MESSAGE_TOO_LARGE" },
      ],
    ];
    it.each(cases)("%s", async (_name, send, expected) => {
      const c = new WsClient(wsUrl);
      await c.opened;
      send(c);
      const err = await c.next();
      expect(err).toMatchObject({ type: "error", ...expected });
      expect(typeof err.error).toBe("string");
      expect(typeof err.timestamp).toBe("number");
      await expectGoodFrame(c, "after");
      c.close();
    });
  });

  it("closes with 1009 on a message beyond twice MAX_WS_MESSAGE_BYTES, and a new connection works", async () => {
    const c = new WsClient(wsUrl);
    await c.opened;
    c.ws.send(Buffer.alloc(MAX_WS_MESSAGE_BYTES * 2 + 1));
    expect((await c.closedWith()).code).toBe(1009);
    const d = new WsClient(wsUrl);
    await d.opened;
    await expectGoodFrame(d, "fresh");
    d.close();
  });

  it.each([
    ["fps_limit=100", "INVALID_CONFIG", "fps_limit"],
    ["fps_limit=fast", "INVALID_CONFIG", "fps_limit"],
    ["fps_limt=10", "INVALID_MESSAGE", "fps_limt"],
    ["client_id=nope", "SESSION_NOT_FOUND", undefined],
  ])("refuses ?%s with %s, then closes with 1008", async (query, code, field) => {
    const c = new WsClient(`${wsUrl}?${query}`);
    await c.opened;
    const err = await c.next();
    expect(err).toMatchObject({ type: "error", error_code: code });
    if (field) expect(err.field).toBe(field);
    expect((await c.closedWith()).code).toBe(1008);
  });

  it("resumes a REST session with ?client_id= and ends only the sessions it opened", async () => {
    const created = await postJson(`${server.baseUrl}/stream/sessions`, { fps_limit: 30, classes: ["pothole"] });
    const id = String(created.json.client_id);
    const c = new WsClient(`${wsUrl}?client_id=${id}&session_info=1`);
    await c.opened;
    const info = await c.next();
    expect(info).toMatchObject({ type: "session_created", client_id: id, resumed: true });
    const data = await expectGoodFrame(c, "r1");
    expect((data.detections as Json[]).every((d) => d.class_name === "pothole")).toBe(true);
    c.close();
    await c.closedWith();
    // The REST session outlives the WebSocket that borrowed it...
    await new Promise((r) => setTimeout(r, 200));
    expect((await getJson(`${server.baseUrl}/stream/sessions/${id}`)).status).toBe(200);

    // ...while a WebSocket's own session ends with it.
    const own = new WsClient(`${wsUrl}?session_info=true`);
    await own.opened;
    const ownId = String((await own.next()).client_id);
    expect((await getJson(`${server.baseUrl}/stream/sessions/${ownId}`)).status).toBe(200);
    own.close();
    await eventually(async () => expect((await getJson(`${server.baseUrl}/stream/sessions/${ownId}`)).status).toBe(404));
  });

  it("closes the connection when its session is deleted elsewhere", async () => {
    const c = new WsClient(`${wsUrl}?session_info=true`);
    await c.opened;
    const id = String((await c.next()).client_id);
    const res = await fetch(`${server.baseUrl}/stream/sessions/${id}`, { method: "DELETE" });
    expect(res.status).toBe(200);
    expect(await c.closedWith()).toEqual({ code: 1000, reason: "session ended" });
  });

  it("pings, and terminates a peer that stops answering", async () => {
    const c = new WsClient(wsUrl, { autoPong: false });
    await c.opened;
    let pings = 0;
    c.ws.on("ping", () => pings++);
    const closed = await c.closedWith(5000);
    expect(pings).toBeGreaterThanOrEqual(1);
    expect(closed.code).toBe(1006); // terminated: no close handshake with a dead peer

    const alive = new WsClient(wsUrl); // answers pings (ws does by default)
    await alive.opened;
    await new Promise((r) => setTimeout(r, 1500));
    expect(alive.closed).toBeUndefined();
    await expectGoodFrame(alive, "still-alive");
    alive.close();
  });

  it("answers a plain GET with 426 and the error JSON", async () => {
    const { status, json, headers } = await getJson(`${server.baseUrl}/stream/detection`);
    expect(status).toBe(426);
    expect(headers.get("upgrade")).toBe("websocket");
    expect(json).toMatchObject({ type: "error", error_code: "INVALID_MESSAGE" });
  });
});

describe("WebSocket permessage-deflate on request (WS_PERMESSAGE_DEFLATE=true)", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer({ WS_PERMESSAGE_DEFLATE: "true" });
  });
  afterAll(() => server.close());

  it("negotiates it with a client that offers it, and frames still work", async () => {
    const c = new WsClient(`ws://127.0.0.1:${server.address.port}/stream/detection`);
    await c.opened;
    expect(c.ws.extensions).toContain("permessage-deflate");
    c.ws.send((await sceneJpeg(12)).bytes, { binary: true });
    expect((await c.next()).type).toBe("detection_result");
    c.close();
  });
});
