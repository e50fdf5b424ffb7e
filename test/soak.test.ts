import http from "node:http";
import http2 from "node:http2";
import type { Socket } from "node:net";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { WebSocket } from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DetectionService,
  StreamDetectionsRequestSchema,
  StreamDetectionsResponseSchema,
  type StreamDetectionsRequest,
} from "../gen/hazard/stream/v1/detection_service_pb.js";
import { SessionService } from "../gen/hazard/stream/v1/session_service_pb.js";
import { FrameSchema } from "../gen/hazard/stream/v1/types_pb.js";
import { RequestStream as PushStream } from "../src/http/request-stream.js";
import { createRng, deriveSeed, type Rng } from "../src/synthetic/prng.js";
import { StreamReader } from "./support/async-queue.js";
import { eventually, RawSse, type Json } from "./support/http-clients.js";
import { sceneJpeg } from "./support/images.js";
import { scrape, type Metrics } from "./support/metrics.js";
import { mib, startProbedServer, type ProbedServer, type Settled } from "./support/probed-server.js";
import { envelope, splitEnvelopes, STREAM } from "./support/raw-rpc.js";

/**
 * Bounded soak (issue #9): for SOAK_MS (default 80 s, so the file stays within 2 minutes) several
 * virtual clients open sessions on every streaming door — WebSocket (JSON and binary), REST + SSE,
 * gRPC and Connect bidi — stream a few frames, and leave, often abruptly: the socket destroyed in
 * the middle of a WebSocket frame, a REST upload or a gRPC message; a stream cancelled; an SSE
 * reader gone and its session abandoned. Then the server, in its own process, must return to where
 * it started: no session (ListSessions and the sessions gauge; abandoned REST sessions expire after
 * STREAMING_SESSION_TIMEOUT, 3 s here), no open connection, stream or subscriber beyond the
 * test's own (/metrics), file descriptors and timers back at their baseline (/proc and Node's
 * active resources), heap back and RSS within bounds after a forced GC, and no fault in its log.
 */

const SOAK_MS = Number(process.env.SOAK_MS ?? 80_000);
const CLIENTS = Number(process.env.SOAK_CLIENTS ?? 6);
const SEED = 0x50a4;
/** A little over 1/15 s: frames at the sessions' FPS limit are not dropped. */
const FRAME_GAP_MS = 70;

type Door = "ws-json" | "ws-binary" | "rest-sse" | "grpc" | "connect";
type Ending = "clean" | "cancel" | "destroy-mid-frame" | "abandon";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Sum of a gauge over its labels. */
const total = (m: Metrics, name: string) => m.samples.filter((s) => s.name === name).reduce((a, s) => a + s.value, 0);

describe(`soak: ${SOAK_MS / 1000} s of sessions on every streaming door, many ending abruptly (server in its own process)`, () => {
  let server: ProbedServer;
  let jpeg: Uint8Array;
  const stats = {
    sessions: 0,
    frames: 0,
    answers: 0,
    endings: new Map<string, number>(),
    peak: { rss: 0, fds: 0, sessions: 0, connections: 0 },
  };
  const ended = (door: Door, how: Ending) => stats.endings.set(`${door} ${how}`, (stats.endings.get(`${door} ${how}`) ?? 0) + 1);
  let baseline: { settled: Settled; fds: number; metrics: Metrics };

  beforeAll(async () => {
    server = await startProbedServer({
      MODEL_PATH: "models/road-hazard-filter.onnx",
      STREAMING_SESSION_TIMEOUT: "3",
      STREAMING_DEFAULT_FPS: "15",
    });
    jpeg = (await sceneJpeg(9, 320, 240)).bytes;
  });
  afterAll(async () => {
    const code = await server?.stop();
    console.log(`soak: server exit code after SIGTERM: ${code}`);
  });

  const b64 = () => Buffer.from(jpeg).toString("base64");
  const frameRequest = (frameId: string): StreamDetectionsRequest =>
    create(StreamDetectionsRequestSchema, { message: { case: "frame", value: create(FrameSchema, { frameId, imageData: jpeg }) } });

  // --- one session per door, ended one of several ways --------------------------------------------------

  async function wsSession(rng: Rng, binary: boolean): Promise<void> {
    const door: Door = binary ? "ws-binary" : "ws-json";
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/stream/detection?notify=true`);
    let socket: Socket | undefined;
    ws.on("upgrade", (res) => (socket = res.socket));
    ws.on("error", () => undefined);
    const answers: Json[] = [];
    let wake: (() => void) | undefined;
    ws.on("message", (data) => {
      answers.push(JSON.parse(data.toString()) as Json);
      wake?.();
    });
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
    });
    stats.sessions++;
    for (let i = rng.int(1, 6); i > 0; i--) {
      const seen = answers.length;
      if (binary) ws.send(Buffer.from(jpeg));
      else ws.send(JSON.stringify({ type: "frame", frame_id: `f${i}`, image_data: b64() }));
      stats.frames++;
      // Each frame is answered (result, error or drop notice): wait for that, bounded.
      const deadline = Date.now() + 10_000;
      while (!answers.slice(seen).some((m) => m.type === "detection_result" || m.type === "error" || m.type === "frame_dropped")) {
        if (Date.now() > deadline || ws.readyState !== WebSocket.OPEN) break;
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 200);
        });
      }
      if (answers.slice(seen).some((m) => m.type === "detection_result")) stats.answers++;
      await sleep(FRAME_GAP_MS);
    }
    const how = pickEnding(rng, ["clean", "cancel", "destroy-mid-frame"]);
    if (how === "clean") ws.close();
    else if (how === "cancel") ws.terminate();
    else {
      // A masked binary frame header announcing 60000 bytes, then half of them, then the socket is gone.
      const len = 60_000;
      const head = Buffer.from([0x82, 0x80 | 126, len >> 8, len & 0xff, 1, 2, 3, 4]);
      socket?.write(Buffer.concat([head, Buffer.alloc(len / 2, 7)]));
      socket?.destroy();
    }
    ended(door, how);
  }

  async function restSseSession(rng: Rng): Promise<void> {
    const created = await fetch(`${server.baseUrl}/stream/sessions`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    const id = String(((await created.json()) as Json).client_id);
    stats.sessions++;
    const sse = new RawSse(`${server.baseUrl}/stream/events/${id}`);
    await sse.headersReceived;
    for (let i = rng.int(1, 6); i > 0; i--) {
      const res = await fetch(`${server.baseUrl}/stream/process/${id}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ frame_id: `f${i}`, image_data: b64() }),
      });
      await res.arrayBuffer();
      stats.frames++;
      const got = await sse.waitFor((m) => (m.type === "detection_result" && (m.data as Json).frame_id === `f${i}`) || (m.type === "error" && m.frame_id === `f${i}`) || (m.type === "frame_dropped" && m.frame_id === `f${i}`), 10_000).catch(() => undefined);
      if (got?.type === "detection_result") stats.answers++;
      await sleep(FRAME_GAP_MS);
    }
    const how = pickEnding(rng, ["clean", "abandon", "destroy-mid-frame"]);
    if (how === "clean") {
      await (await fetch(`${server.baseUrl}/stream/sessions/${id}`, { method: "DELETE" })).arrayBuffer();
      await sse.done;
    } else if (how === "abandon") {
      // The reader goes away; nobody deletes the session: it expires.
      sse.close();
    } else {
      // An upload cut off halfway through its body, and the reader gone too.
      await new Promise<void>((resolve) => {
        const req = http.request(`${server.baseUrl}/stream/process/${id}?frame_id=cut`, {
          method: "POST",
          headers: { "content-type": "image/jpeg", "content-length": jpeg.length },
        });
        req.on("error", () => resolve());
        req.on("close", () => resolve());
        req.write(Buffer.from(jpeg.subarray(0, jpeg.length >> 1)), () => setTimeout(() => req.destroy(), 20));
      });
      sse.close();
    }
    ended("rest-sse", how);
  }

  async function bidiSession(rng: Rng, door: "grpc" | "connect"): Promise<void> {
    const how = pickEnding(rng, ["clean", "cancel", "destroy-mid-frame"]);
    if (how === "destroy-mid-frame") return rawBidiCut(rng, door);
    // Each session on its own connection, as separate clients would; closed by the client once idle
    // (1 s), so the server's connection count shows what the server, not the test, keeps open.
    const options = { baseUrl: server.baseUrl, idleConnectionTimeoutMs: 1000 };
    const transport = door === "grpc" ? createGrpcTransport(options) : createConnectTransport({ ...options, httpVersion: "2" });
    const abort = new AbortController();
    const requests = new PushStream<StreamDetectionsRequest>();
    const reader = new StreamReader(createClient(DetectionService, transport).streamDetections(requests, { signal: abort.signal }));
    stats.sessions++;
    try {
      for (let i = rng.int(1, 6); i > 0; i--) {
        requests.push(frameRequest(`f${i}`));
        stats.frames++;
        const out = (await reader.until((m) => (m.message.case === "result" || m.message.case === "error" || m.message.case === "dropped") && m.message.value.frameId === `f${i}`, 10_000)).at(-1);
        if (out?.message.case === "result") stats.answers++;
        await sleep(FRAME_GAP_MS);
      }
      if (how === "clean") {
        requests.end();
        while ((await reader.next(10_000)) !== undefined);
      } else {
        abort.abort();
      }
    } catch {
      abort.abort();
    }
    ended(door, how);
  }

  /** A bidi stream over a raw h2 connection, cut in the middle of a message by destroying the connection. */
  async function rawBidiCut(rng: Rng, door: "grpc" | "connect"): Promise<void> {
    const session = http2.connect(server.baseUrl);
    session.on("error", () => undefined);
    const stream = session.request({
      ":method": "POST",
      ":path": STREAM,
      "content-type": door === "grpc" ? "application/grpc" : "application/connect+proto",
      te: "trailers",
    });
    stream.on("error", () => undefined);
    let buf = Buffer.alloc(0);
    let results = 0;
    let wake: (() => void) | undefined;
    stream.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const whole = splitEnvelopes(buf);
      results = whole.filter((e) => e.flags === 0 && fromBinary(StreamDetectionsResponseSchema, e.data).message.case === "result").length;
      wake?.();
    });
    stats.sessions++;
    for (let i = rng.int(1, 4); i > 0; i--) {
      const before = results;
      stream.write(envelope(toBinary(StreamDetectionsRequestSchema, frameRequest(`f${i}`))));
      stats.frames++;
      const deadline = Date.now() + 10_000;
      while (results === before && Date.now() < deadline && !stream.closed) {
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 200);
        });
      }
      if (results > before) stats.answers++;
      await sleep(FRAME_GAP_MS);
    }
    // An envelope announcing the whole frame, half of it sent, then the TCP connection destroyed.
    const whole = envelope(toBinary(StreamDetectionsRequestSchema, frameRequest("cut")));
    stream.write(whole.subarray(0, whole.length >> 1), () => session.destroy());
    ended(door, "destroy-mid-frame");
  }

  function pickEnding(rng: Rng, endings: readonly Ending[]): Ending {
    return endings[rng.int(0, endings.length - 1)] ?? "clean";
  }

  async function client(worker: number, until: number): Promise<void> {
    const rng = createRng(deriveSeed(SEED, worker));
    const doors: Door[] = ["ws-json", "ws-binary", "rest-sse", "grpc", "connect"];
    while (Date.now() < until) {
      const door = doors[rng.int(0, doors.length - 1)] ?? "grpc";
      try {
        if (door === "ws-json" || door === "ws-binary") await wsSession(rng, door === "ws-binary");
        else if (door === "rest-sse") await restSseSession(rng);
        else await bidiSession(rng, door);
      } catch (err) {
        ended(door, `failed: ${(err as Error).message.slice(0, 60)}` as Ending);
      }
    }
  }

  async function snapshot() {
    return { settled: await server.settle(), fds: server.fds(), metrics: await scrape(server.baseUrl) };
  }

  it("records a baseline after every door served once", async () => {
    const rng = createRng(SEED);
    await wsSession(rng, false);
    await wsSession(rng, true);
    await restSseSession(rng);
    await bidiSession(rng, "grpc");
    await bidiSession(rng, "connect");
    await eventually(async () => expect(total(await scrape(server.baseUrl), "hazard_sessions_active")).toBe(0), 20_000);
    baseline = await snapshot();
    console.log(
      `soak baseline: RSS ${mib(baseline.settled.rss)}, heap ${mib(baseline.settled.heapUsed)}, fds ${baseline.fds}, ` +
        `connections ${total(baseline.metrics, "hazard_connections_open")}, timers ${baseline.metrics.get("nodejs_active_resources", { type: "Timeout" })}, ` +
        `handles ${baseline.metrics.get("nodejs_active_handles_total")}`,
    );
  });

  it("runs the sessions", async () => {
    const until = Date.now() + SOAK_MS;
    const sampler = setInterval(() => {
      if (!server.alive()) return;
      stats.peak.rss = Math.max(stats.peak.rss, server.rss());
      stats.peak.fds = Math.max(stats.peak.fds, server.fds());
      scrape(server.baseUrl).then(
        (m) => {
          stats.peak.sessions = Math.max(stats.peak.sessions, total(m, "hazard_sessions_active"));
          stats.peak.connections = Math.max(stats.peak.connections, total(m, "hazard_connections_open"));
        },
        () => undefined,
      );
    }, 500);
    try {
      await Promise.all(Array.from({ length: CLIENTS }, (_, w) => client(w + 1, until)));
    } finally {
      clearInterval(sampler);
    }
    console.log(
      `soak run: ${stats.sessions} sessions, ${stats.frames} frames, ${stats.answers} answered with a result; ` +
        `peak RSS ${mib(stats.peak.rss)}, fds ${stats.peak.fds}, sessions ${stats.peak.sessions}, connections ${stats.peak.connections}\n` +
        `endings:\n${[...stats.endings].sort().map(([k, n]) => `  ${k}: ${n}`).join("\n")}`,
    );
    expect(server.alive()).toBe(true);
    expect([...stats.endings.keys()].filter((k) => k.includes("failed"))).toEqual([]);
    expect(stats.answers).toBeGreaterThan(stats.sessions / 2);
  }, SOAK_MS + 60_000);

  it("leaks nothing: sessions, connections, streams, subscribers, descriptors, timers, memory", async () => {
    const sessions = createClient(SessionService, createGrpcTransport({ baseUrl: server.baseUrl, idleConnectionTimeoutMs: 1000 }));
    // Abandoned REST sessions expire after 3 s (the sweep runs every second).
    await eventually(async () => {
      expect((await sessions.listSessions({})).sessions).toHaveLength(0);
      const m = await scrape(server.baseUrl);
      expect(total(m, "hazard_sessions_active")).toBe(0);
      expect(total(m, "hazard_stream_subscribers")).toBe(0);
      expect(total(m, "hazard_rpc_streams_active")).toBe(0);
      // The test's own keep-alive connections (metrics scrapes, the gRPC client above) may be open.
      expect(total(m, "hazard_connections_open")).toBeLessThanOrEqual(total(baseline.metrics, "hazard_connections_open") + 2);
      expect(server.fds()).toBeLessThanOrEqual(baseline.fds + 5);
      expect(m.get("nodejs_active_resources", { type: "Timeout" })).toBeLessThanOrEqual(baseline.metrics.get("nodejs_active_resources", { type: "Timeout" }) + 2);
    }, 30_000);
    let after = await snapshot();
    await eventually(async () => {
      after = await snapshot();
      expect(after.settled.heapUsed - baseline.settled.heapUsed).toBeLessThan(32 * 1024 * 1024);
    }, 20_000);
    const m = after.metrics;
    console.log(
      `soak after: RSS baseline ${mib(baseline.settled.rss)}, peak ${mib(stats.peak.rss)}, final ${mib(after.settled.rss)}; ` +
        `heap baseline ${mib(baseline.settled.heapUsed)}, final ${mib(after.settled.heapUsed)}; ` +
        `fds baseline ${baseline.fds}, peak ${stats.peak.fds}, final ${after.fds}; ` +
        `sessions peak ${stats.peak.sessions}, final ${total(m, "hazard_sessions_active")}; ` +
        `connections baseline ${total(baseline.metrics, "hazard_connections_open")}, peak ${stats.peak.connections}, final ${total(m, "hazard_connections_open")}; ` +
        `timers baseline ${baseline.metrics.get("nodejs_active_resources", { type: "Timeout" })}, final ${m.get("nodejs_active_resources", { type: "Timeout" })}; ` +
        `handles baseline ${baseline.metrics.get("nodejs_active_handles_total")}, final ${m.get("nodejs_active_handles_total")}`,
    );
    expect(after.settled.rss - baseline.settled.rss).toBeLessThan(256 * 1024 * 1024);
    expect(server.faults(), "error/fatal log entries, unhandled rejections or stderr output").toEqual([]);
  }, 120_000);
});
