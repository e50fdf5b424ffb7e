import { fileURLToPath } from "node:url";
import { ConnectError } from "@connectrpc/connect";
import { EventSource } from "eventsource";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import {
  DetectionSocket,
  errorCodeName,
  errorCodeOf,
  HazardStreamClient,
  RestSseSession,
  type ServerMessage,
} from "../src/client/index.js";
import { RequestStream } from "../src/http/request-stream.js";
import { StreamReader } from "./support/async-queue.js";
import { sceneJpeg } from "./support/images.js";
import { startServer, type TestServer } from "./support/server.js";

/**
 * The web client module (src/client) from Node, against the real server: the same code the demo
 * page runs in the browser (test/browser-demo.test.ts), with `ws` and `eventsource` standing in for
 * the browser's WebSocket and EventSource.
 */

const MODEL_PATH = fileURLToPath(new URL("../models/road-hazard-filter.onnx", import.meta.url));

let server: TestServer;
let jpeg: Uint8Array;
let classes: Set<string>;

beforeAll(async () => {
  server = await startServer({ MODEL_PATH, STREAMING_DEFAULT_FPS: "30" });
  const scene = await sceneJpeg(3);
  jpeg = scene.bytes;
  classes = new Set(scene.boxes.map((b) => b.className));
});
afterAll(() => server?.close());

/** Messages pushed by a client's listener, read one at a time. */
function inbox() {
  const stream = new RequestStream<ServerMessage>();
  return { push: (m: ServerMessage) => stream.push(m), reader: new StreamReader(stream) };
}

/** The next message of a type, skipping notices. */
async function next<T extends ServerMessage["type"]>(
  q: { reader: StreamReader<ServerMessage> },
  type: T,
): Promise<Extract<ServerMessage, { type: T }>> {
  const seen = await q.reader.until((m) => m.type === type);
  return seen.at(-1) as Extract<ServerMessage, { type: T }>;
}

describe("HazardStreamClient", () => {
  for (const protocol of ["connect", "grpc-web"] as const) {
    it(`detects over ${protocol}`, async () => {
      const rpc = new HazardStreamClient({ baseUrl: server.baseUrl, protocol });
      const r = await rpc.detect({ image: jpeg, frameId: "one" }, { confidenceThreshold: 0.3 });
      expect(r.frameId).toBe("one");
      expect(new Set(r.detections.map((d) => d.className))).toEqual(classes);
    });
  }

  it("runs a session: submitFrame answers on a gRPC-Web watch; config updates and refusals", async () => {
    const rpc = new HazardStreamClient({ baseUrl: server.baseUrl });
    const watcher = new HazardStreamClient({ baseUrl: server.baseUrl, protocol: "grpc-web" });
    const session = await rpc.createSession({ enableTracking: true });
    const events = await watcher.openWatch(session.clientId);
    const sent = await rpc.submitFrame(session.clientId, { image: jpeg, frameId: "s1" });
    expect(sent.accepted).toBe(true);
    for await (const ev of events) {
      if (ev.event.case !== "result") continue;
      expect(ev.event.value.frameId).toBe("s1");
      expect(ev.event.value.detections.every((d) => d.trackId !== undefined)).toBe(true);
      break; // ends the watch
    }
    const updated = await rpc.updateConfig(session.clientId, { confidenceThreshold: 0.6 });
    expect(updated.configVersion).toBe(session.configVersion + 1);
    const refused = await rpc.updateConfig(session.clientId, { fpsLimit: 1000 }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ConnectError);
    expect(errorCodeName(errorCodeOf(refused))).toBe("INVALID_CONFIG");
    await rpc.deleteSession(session.clientId);
  });
});

describe("DetectionSocket (ws)", () => {
  it("answers binary and JSON frames and acknowledges config updates", async () => {
    const socket = await DetectionSocket.open({
      baseUrl: server.baseUrl,
      config: { fps_limit: 30, enable_tracking: false },
      connect: (url) => new WebSocket(url),
    });
    expect(socket.session.config.enable_tracking).toBe(false);
    const q = inbox();
    socket.onMessage(q.push);
    socket.sendImage(jpeg);
    const binary = await next(q, "detection_result");
    expect(new Set(binary.data.detections.map((d) => d.class_name))).toEqual(classes);
    socket.updateConfig({ confidence_threshold: 0.6 });
    expect((await next(q, "config_applied")).config.confidence_threshold).toBe(0.6);
    socket.sendFrame({ image: jpeg, frameId: "j1" });
    const json = await next(q, "detection_result");
    expect(json.data.frame_id).toBe("j1");
    expect(json.data.detections.every((d) => d.confidence >= 0.6)).toBe(true);
    const closed = new Promise<number>((resolve) => socket.onClose((e) => resolve(e.code)));
    socket.close();
    expect(await closed).toBe(1000);
  });

  it("rejects the open with the server's reason for a bad query", async () => {
    const err = await DetectionSocket.open({ baseUrl: server.baseUrl, config: { fps_limit: 0 }, connect: (url) => new WebSocket(url) }).catch(
      (e: unknown) => e,
    );
    expect(String(err)).toMatch(/1008.*INVALID_CONFIG/);
  });
});

describe("RestSseSession (fetch + eventsource)", () => {
  it("uploads frames and reads results, config and the end of the session from the event stream", async () => {
    const rest = await RestSseSession.create({
      baseUrl: server.baseUrl,
      config: { fps_limit: 30 },
      eventSource: (url) => new EventSource(url),
    });
    const q = inbox();
    const stop = await rest.listen(q.push);
    const sent = await rest.submitImage(jpeg, { frameId: "r1" });
    expect(sent.accepted).toBe(true);
    const result = await next(q, "detection_result");
    expect(result.data.frame_id).toBe("r1");
    expect(new Set(result.data.detections.map((d) => d.class_name))).toEqual(classes);
    expect((await rest.updateConfig({ confidence_threshold: 0.5 })).config_version).toBe(rest.session.config_version + 1);
    expect((await rest.stats()).frames_processed).toBe(1);
    await rest.delete();
    expect((await next(q, "session_ended")).reason).toBe("DELETED");
    stop();
    // The stream of a session that is gone is refused (404), not retried forever.
    await expect(rest.listen(() => undefined)).rejects.toMatchObject({ code: "EVENT_STREAM_REFUSED" });
  });
});

describe("API keys (STREAMING_API_KEYS): a header where the door allows one, ?api_key= where a browser cannot", () => {
  const KEY = "demo-key-0123456789abcdef";
  let keyed: TestServer;
  beforeAll(async () => {
    keyed = await startServer({ MODEL_PATH, STREAMING_DEFAULT_FPS: "30", STREAMING_API_KEYS: KEY });
  });
  afterAll(() => keyed?.close());

  it("every helper works with the key and is refused without it", async () => {
    const rpc = new HazardStreamClient({ baseUrl: keyed.baseUrl, apiKey: KEY, protocol: "grpc-web" });
    const session = await rpc.createSession();
    await rpc.openWatch(session.clientId);
    const anonymous = new HazardStreamClient({ baseUrl: keyed.baseUrl });
    expect(errorCodeName(errorCodeOf(await anonymous.createSession().catch((e: unknown) => e)))).toBe("UNAUTHENTICATED");

    const socket = await DetectionSocket.open({ baseUrl: keyed.baseUrl, apiKey: KEY, connect: (url) => new WebSocket(url) });
    const q = inbox();
    socket.onMessage(q.push);
    socket.sendImage(jpeg);
    expect((await next(q, "detection_result")).data.detections.length).toBeGreaterThan(0);
    socket.close();
    const refused = await DetectionSocket.open({ baseUrl: keyed.baseUrl, connect: (url) => new WebSocket(url) }).catch((e: unknown) => e);
    expect(String(refused)).toMatch(/UNAUTHENTICATED/);

    const rest = await RestSseSession.create({ baseUrl: keyed.baseUrl, apiKey: KEY, eventSource: (url) => new EventSource(url) });
    const events = inbox();
    const stop = await rest.listen(events.push);
    await rest.submitImage(jpeg, { frameId: "k1" });
    expect((await next(events, "detection_result")).data.frame_id).toBe("k1");
    stop();
    await rest.delete();
    const noKey = await RestSseSession.create({ baseUrl: keyed.baseUrl }).catch((e: unknown) => e);
    expect(noKey).toMatchObject({ status: 401, code: "UNAUTHENTICATED" });
  });
});
