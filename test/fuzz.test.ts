import http2 from "node:http2";
import { create, toBinary, toJsonString, type JsonValue } from "@bufbuild/protobuf";
import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { WebSocket } from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus } from "../gen/grpc/health/v1/health_pb.js";
import {
  DetectionService,
  DetectRequestSchema,
  StreamDetectionsRequestSchema,
  StreamStartSchema,
  type StreamDetectionsRequest,
} from "../gen/hazard/stream/v1/detection_service_pb.js";
import { SessionService } from "../gen/hazard/stream/v1/session_service_pb.js";
import { ClassFilterSchema, FrameSchema, SessionConfigSchema } from "../gen/hazard/stream/v1/types_pb.js";
import { createRng, type Rng } from "../src/synthetic/prng.js";
import { eventually, WsClient } from "./support/http-clients.js";
import { sceneJpeg } from "./support/images.js";
import { mib, startProbedServer, type ProbedServer, type Settled } from "./support/probed-server.js";
import { DETECT, envelope, rawH2, STREAM } from "./support/raw-rpc.js";

/**
 * Bounded fuzzing (issue #9): a fixed seed and a fixed number of iterations, so a failure
 * reproduces. Valid WebSocket messages (JSON text and binary frames) and valid Connect requests
 * (JSON and protobuf, unary Detect and StreamDetections over h2) are mutated — bit flips,
 * truncation, type swaps, huge numbers, deep nesting, unicode, random bytes — and thrown at a
 * server in its own process. Afterwards it must be alive, SERVING, serve a good frame on every
 * fuzzed door, have logged no fault (error/fatal entry, unhandled rejection, anything on stderr),
 * hold no session, and its memory after a forced GC must be back near where it started.
 *
 * FUZZ_SEED and FUZZ_ITERATIONS change the run (e.g. a longer one by hand).
 */

const SEED = Number(process.env.FUZZ_SEED ?? 0x5eed_2026);
const ITERATIONS = Number(process.env.FUZZ_ITERATIONS ?? 1500);
const MAX_FRAME_BYTES = 200_000;

type Target = "ws-json" | "ws-binary" | "connect-json" | "connect-proto" | "connect-stream-proto" | "connect-stream-json";
const TARGETS: readonly Target[] = ["ws-json", "ws-binary", "connect-json", "connect-proto", "connect-stream-proto", "connect-stream-json"];

// --- mutations ---------------------------------------------------------------------------------------

const pick = <T>(rng: Rng, items: readonly T[]): T => items[rng.int(0, items.length - 1)] as T;

const STRANGE_STRINGS = [
  "",
  "\u0000",
  "\ud800", // a lone surrogate
  "😀🚗🕳️",
  "\u202e\u202d", // bidi overrides
  "a".repeat(5000),
  "ｆｒａｍｅ",
  "__proto__",
  "constructor",
  "data:image/jpeg;base64,",
  "=".repeat(64),
  "-1",
  "1e999",
  "NaN",
];
const STRANGE_VALUES: readonly JsonValue[] = [
  null,
  true,
  false,
  0,
  -1,
  1e308,
  -1e308,
  2 ** 53 + 1,
  18446744073709551616,
  4294967296,
  0.1,
  -0,
  [],
  {},
  [1, "a", null],
  { "": "" },
  ...STRANGE_STRINGS,
];

/** A random value somewhere in a JSON tree replaced (type swap, huge number, unicode, nesting, removal). */
function mutateJsonValue(rng: Rng, root: JsonValue): JsonValue {
  const copy = structuredClone(root);
  // Walk down to a random container.
  let parent: JsonValue = copy;
  for (let depth = 0; depth < 6; depth++) {
    if (typeof parent !== "object" || parent === null) break;
    const keys = Array.isArray(parent) ? parent.map((_, i) => i) : Object.keys(parent);
    if (keys.length === 0) break;
    const key = pick<string | number>(rng, keys);
    const child: JsonValue | undefined = Array.isArray(parent) ? parent[key as number] : (parent as Record<string, JsonValue>)[key as string];
    if (child === undefined) break;
    if (typeof child !== "object" || child === null || rng.chance(0.35)) {
      const replacement = ((): JsonValue | undefined => {
        switch (rng.int(0, 5)) {
          case 0:
            return pick(rng, STRANGE_VALUES);
          case 1: {
            // Nest the value (depth up to 200 through JSON.stringify; deeper ones are made as text).
            let v: JsonValue = child;
            for (let i = rng.int(1, 200); i > 0; i--) v = rng.chance(0.5) ? [v] : { a: v };
            return v;
          }
          case 2:
            return typeof child === "string" ? child + pick(rng, STRANGE_STRINGS) : pick(rng, STRANGE_STRINGS);
          case 3:
            return Object.fromEntries(Array.from({ length: rng.int(1, 2000) }, (_, i) => [`k${i}`, i]));
          case 4:
            return undefined; // removed
          default:
            return typeof child === "number" ? child * 1e300 : rng.uniform(-1e20, 1e20);
        }
      })();
      if (Array.isArray(parent)) {
        if (replacement === undefined) parent.splice(key as number, 1);
        else parent[key as number] = replacement;
      } else if (replacement === undefined) delete (parent as Record<string, JsonValue>)[key as string];
      else (parent as Record<string, JsonValue>)[key as string] = replacement;
      return copy;
    }
    parent = child;
  }
  return copy;
}

/** Byte-level damage: bit flips, truncation, insertion, duplication, 0xff runs, overlong UTF-8. */
function mutateBytes(rng: Rng, input: Uint8Array): Buffer {
  let b = Buffer.from(input);
  for (let n = rng.int(1, 3); n > 0; n--) {
    switch (rng.int(0, 6)) {
      case 0:
        for (let i = rng.int(1, 8); i > 0 && b.length > 0; i--) {
          const at = rng.int(0, b.length - 1);
          b[at] = (b[at] ?? 0) ^ (1 << rng.int(0, 7));
        }
        break;
      case 1:
        b = b.subarray(0, rng.int(0, b.length));
        break;
      case 2: {
        const at = rng.int(0, b.length);
        const junk = Buffer.from(Array.from({ length: rng.int(1, 64) }, () => rng.int(0, 255)));
        b = Buffer.concat([b.subarray(0, at), junk, b.subarray(at)]);
        break;
      }
      case 3: {
        const from = rng.int(0, b.length);
        const slice = b.subarray(from, Math.min(b.length, from + rng.int(1, 4096)));
        b = Buffer.concat([b, ...Array.from({ length: rng.int(1, 8) }, () => slice)]);
        break;
      }
      case 4: {
        const at = rng.int(0, b.length);
        b = Buffer.concat([b.subarray(0, at), Buffer.alloc(rng.int(1, 16), 0xff), b.subarray(at)]);
        break;
      }
      case 5: {
        const at = rng.int(0, b.length);
        b = Buffer.concat([b.subarray(0, at), Buffer.from([0xc0, 0x80, 0xed, 0xa0, 0x80, 0xf4, 0x90]), b.subarray(at)]);
        break;
      }
      default:
        b = Buffer.from(Array.from({ length: rng.int(0, 512) }, () => rng.int(0, 255)));
    }
  }
  return b;
}

/** Nesting far past every parser's comfort, as text (JSON.stringify would recurse). */
function deepText(rng: Rng, prefix: string, suffix: string): string {
  const n = rng.int(1000, 20_000);
  const [open, close] = rng.chance(0.5) ? ["[", "]"] : ['{"a":', "}"];
  return prefix + open.repeat(n) + (open === "[" ? "" : "1") + close.repeat(n) + suffix;
}

/** A mutated JSON text: structural (usually), then sometimes byte damage on top. */
function mutateJsonText(rng: Rng, valid: JsonValue): Buffer {
  if (rng.chance(0.08)) return Buffer.from(deepText(rng, '{"type":"frame","frame_id":"deep","metadata":', "}"));
  let text = rng.chance(0.85) ? JSON.stringify(mutateJsonValue(rng, valid)) : JSON.stringify(valid);
  if (rng.chance(0.3)) return mutateBytes(rng, Buffer.from(text));
  if (rng.chance(0.1)) text = text.replace(/\d+(\.\d+)?/, "1e99999");
  return Buffer.from(text);
}

// --- the run -------------------------------------------------------------------------------------------

describe(`fuzzing WebSocket and Connect (seed ${SEED}, ${ITERATIONS} iterations, server in its own process)`, () => {
  let server: ProbedServer;
  let jpeg: Uint8Array;
  let baseline: Settled;
  let baselineFds = 0;
  let peakRss = 0;
  let halfway: Settled | undefined;
  let end: Settled | undefined;
  const tally = new Map<string, number>();
  const count = (k: string) => tally.set(k, (tally.get(k) ?? 0) + 1);

  beforeAll(async () => {
    server = await startProbedServer({
      MODEL_PATH: "models/road-hazard-filter.onnx",
      MAX_FRAME_BYTES: String(MAX_FRAME_BYTES),
      STREAMING_MAX_FPS: "240",
      STREAMING_DEFAULT_FPS: "240",
    });
    // A small image: valid frames among the mutants are decoded and run through the model.
    jpeg = (await sceneJpeg(5, 160, 120)).bytes;
  });
  afterAll(async () => {
    const code = await server?.stop();
    console.log(`fuzz: server exit code after SIGTERM: ${code}`);
  });

  const good = () => create(FrameSchema, { imageData: jpeg, frameId: "good", timestamp: 1_700_000_000.5, metadata: { gps: { lat: 52.1, lon: 4.3 }, tags: ["front"] } });

  /** Every fuzzed door answers a good frame with a result. */
  async function goodFrameEverywhere(): Promise<void> {
    const ws = new WsClient(`ws://127.0.0.1:${server.port}/stream/detection`);
    await ws.opened;
    ws.sendJson({ type: "frame", frame_id: "good", image_data: Buffer.from(jpeg).toString("base64") });
    expect(await ws.next()).toMatchObject({ type: "detection_result", data: { frame_id: "good" } });
    await new Promise((r) => setTimeout(r, 10)); // one frame interval at 240 FPS
    ws.ws.send(Buffer.from(jpeg));
    expect(await ws.next()).toMatchObject({ type: "detection_result" });
    ws.close();
    for (const useBinaryFormat of [true, false]) {
      const client = createClient(DetectionService, createConnectTransport({ baseUrl: server.baseUrl, httpVersion: "1.1", useBinaryFormat }));
      expect((await client.detect({ frame: good() })).result?.frameId).toBe("good");
    }
    const streaming = createClient(DetectionService, createConnectTransport({ baseUrl: server.baseUrl, httpVersion: "2" }));
    async function* requests() {
      yield create(StreamDetectionsRequestSchema, { message: { case: "frame", value: good() } });
    }
    let result = false;
    for await (const m of streaming.streamDetections(requests())) if (m.message.case === "result") result = true;
    expect(result).toBe(true);
  }

  it("is healthy and serves every door before the run (baseline)", async () => {
    await goodFrameEverywhere();
    await goodFrameEverywhere(); // lazily allocated buffers (per input size, per door) now exist
    baseline = await server.settle();
    baselineFds = server.fds();
    peakRss = server.rss();
    console.log(`fuzz baseline: RSS ${mib(baseline.rss)}, heap ${mib(baseline.heapUsed)}, external ${mib(baseline.external)}, fds ${baselineFds}`);
  });

  it("survives the mutants", async () => {
    const rng = createRng(SEED);
    const b64 = Buffer.from(jpeg).toString("base64");
    const metadata = { gps: { lat: 52.1, lon: 4.3, speed_kmh: 48 }, camera: "front", tags: ["a", "b"] };
    const wsValid: JsonValue[] = [
      { type: "frame", frame_id: "f1", timestamp: 1_700_000_000.25, image_data: b64, metadata },
      { type: "config_update", config: { fps_limit: 15, confidence_threshold: 0.5, iou_threshold: 0.6, enable_tracking: true, max_detections: 50, classes: ["pothole"], quality: "FAST" } },
      { type: "ping" },
    ];
    const frame = create(FrameSchema, { imageData: jpeg, frameId: "f1", timestamp: 1_700_000_000.25, metadata });
    const detect = create(DetectRequestSchema, {
      frame,
      config: create(SessionConfigSchema, { confidenceThreshold: 0.5, classFilter: create(ClassFilterSchema, { classNames: ["crack"] }) }),
    });
    const detectJson = JSON.parse(toJsonString(DetectRequestSchema, detect)) as JsonValue;
    const streamValid: StreamDetectionsRequest[] = [
      create(StreamDetectionsRequestSchema, { message: { case: "start", value: create(StreamStartSchema, { config: create(SessionConfigSchema, { fpsLimit: 30 }) }) } }),
      create(StreamDetectionsRequestSchema, { message: { case: "frame", value: frame } }),
      create(StreamDetectionsRequestSchema, { message: { case: "configUpdate", value: create(SessionConfigSchema, { iouThreshold: 0.5 }) } }),
    ];

    let wsJson: WebSocket | undefined;
    let wsBin: WebSocket | undefined;
    const openWs = async (): Promise<WebSocket> => {
      const ws = new WebSocket(`ws://127.0.0.1:${server.port}/stream/detection?notify=true`);
      ws.on("message", (data, isBinary) => {
        if (isBinary) return count("ws: binary reply?!");
        const m = JSON.parse(data.toString()) as { type?: string; error_code?: string };
        count(`ws reply ${m.type}${m.error_code ? ` ${m.error_code}` : ""}`);
      });
      ws.on("close", (code) => count(`ws close ${code}`));
      ws.on("error", () => undefined);
      await new Promise<void>((resolve, reject) => {
        ws.once("open", () => resolve());
        ws.once("error", reject);
      });
      return ws;
    };
    /** The connection still answers (a ping through the service's message handling), or it was closed. */
    const pingPong = (ws: WebSocket) =>
      new Promise<void>((resolve, reject) => {
        if (ws.readyState !== WebSocket.OPEN) return resolve();
        const timer = setTimeout(() => reject(new Error("no pong within 10 s")), 10_000);
        const onMessage = (data: Buffer) => {
          if (!data.toString().includes('"pong"')) return;
          clearTimeout(timer);
          ws.off("message", onMessage);
          resolve();
        };
        ws.on("message", onMessage);
        ws.once("close", () => {
          clearTimeout(timer);
          resolve();
        });
        ws.send('{"type":"ping"}');
      });
    let h2: http2.ClientHttp2Session | undefined;
    const session = () => {
      if (!h2 || h2.destroyed || h2.closed) {
        h2 = http2.connect(server.baseUrl);
        h2.on("error", () => undefined);
      }
      return h2;
    };

    const sampler = setInterval(() => {
      if (server.alive()) peakRss = Math.max(peakRss, server.rss());
    }, 250);
    const t0 = performance.now();
    try {
      for (let i = 0; i < ITERATIONS; i++) {
        if (i === Math.floor(ITERATIONS / 2)) {
          // Halfway: memory after a forced GC. What the second half adds on top is what the
          // mutants leak (the first half also fills caches and allocator arenas once).
          halfway = await server.settle();
        }
        const target = pick(rng, TARGETS);
        count(`sent ${target}`);
        switch (target) {
          case "ws-json": {
            if (!wsJson || wsJson.readyState !== WebSocket.OPEN) wsJson = await openWs();
            const text = mutateJsonText(rng, pick(rng, wsValid));
            // Usually as a text message; sometimes the raw bytes in a text frame (may be invalid UTF-8).
            wsJson.send(rng.chance(0.15) ? text : text.toString("utf8"), { binary: false });
            if (i % 10 === 0) await pingPong(wsJson);
            break;
          }
          case "ws-binary": {
            if (!wsBin || wsBin.readyState !== WebSocket.OPEN) wsBin = await openWs();
            wsBin.send(mutateBytes(rng, jpeg), { binary: true });
            if (i % 10 === 0) await pingPong(wsBin);
            break;
          }
          case "connect-json":
          case "connect-proto": {
            const json = target === "connect-json";
            const body = json ? mutateJsonText(rng, detectJson) : mutateBytes(rng, toBinary(DetectRequestSchema, detect));
            const res = await fetch(server.baseUrl + DETECT, {
              method: "POST",
              headers: { "content-type": json ? "application/json" : "application/proto" },
              body,
              signal: AbortSignal.timeout(30_000),
            });
            await res.arrayBuffer();
            count(`${target} HTTP ${res.status}`);
            break;
          }
          case "connect-stream-proto":
          case "connect-stream-json": {
            const json = target === "connect-stream-json";
            const messages: Uint8Array[] = streamValid.map((m) =>
              json ? Buffer.from(toJsonString(StreamDetectionsRequestSchema, m)) : Buffer.from(toBinary(StreamDetectionsRequestSchema, m)),
            );
            const victim = rng.int(0, messages.length - 1);
            let body: Uint8Array;
            if (rng.chance(0.7)) {
              // One message damaged inside an intact envelope.
              const original = Buffer.from(messages[victim] ?? new Uint8Array());
              messages[victim] = json ? mutateJsonText(rng, JSON.parse(original.toString()) as JsonValue) : mutateBytes(rng, original);
              body = Buffer.concat(messages.map((m) => envelope(m)));
            } else {
              // The framing itself damaged (lengths, flags, truncation).
              body = mutateBytes(rng, Buffer.concat(messages.map((m) => envelope(m))));
            }
            const answer = await rawH2(server.baseUrl, STREAM, json ? "application/connect+json" : "application/connect+proto", body, {}, {
              session: session(),
              timeoutMs: 30_000,
            });
            count(`${target} ${answer.error ? `${Code[answer.error.code]}: ${answer.error.rawMessage.replace(/\d+/g, "N").slice(0, 70)}` : "ok"}`);
            break;
          }
        }
        if (!server.alive()) throw new Error(`the server died at iteration ${i} (${target})`);
      }
      for (const ws of [wsJson, wsBin]) if (ws) await pingPong(ws);
    } finally {
      clearInterval(sampler);
      wsJson?.close();
      wsBin?.close();
      h2?.close();
    }
    end = await server.settle();
    console.log(`fuzz: ${ITERATIONS} iterations in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    console.log(`fuzz outcomes:\n${[...tally].sort().map(([k, n]) => `  ${k}: ${n}`).join("\n")}`);
    expect(server.alive()).toBe(true);
  });

  it("is still healthy afterwards: SERVING, a good frame on every door, no session left, no fault logged", async () => {
    const health = createClient(Health, createGrpcTransport({ baseUrl: server.baseUrl }));
    expect((await health.check({ service: "" })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    expect((await fetch(`${server.baseUrl}/stream/health`)).status).toBe(200);
    await goodFrameEverywhere();
    const sessions = createClient(SessionService, createGrpcTransport({ baseUrl: server.baseUrl }));
    await eventually(async () => expect((await sessions.listSessions({})).sessions).toHaveLength(0), 20_000);
    expect(server.faults(), "error/fatal log entries, unhandled rejections or stderr output").toEqual([]);
  });

  it("returns to its baseline memory and descriptors", async () => {
    // Closed sockets and ended sessions free their memory over a few GC cycles.
    let settled = await server.settle();
    await eventually(async () => {
      settled = await server.settle();
      expect(settled.heapUsed - baseline.heapUsed).toBeLessThan(32 * 1024 * 1024);
      expect(server.fds()).toBeLessThanOrEqual(baselineFds + 5);
    }, 20_000);
    const fds = server.fds();
    const mid = halfway ?? settled;
    const last = end ?? settled;
    console.log(
      `fuzz memory (after forced GC): RSS baseline ${mib(baseline.rss)}, halfway ${mib(mid.rss)}, end of run ${mib(last.rss)}, ` +
        `idle ${mib(settled.rss)}, peak (sampled) ${mib(peakRss)}; heap baseline ${mib(baseline.heapUsed)}, halfway ${mib(mid.heapUsed)}, ` +
        `idle ${mib(settled.heapUsed)}; external baseline ${mib(baseline.external)}, idle ${mib(settled.external)}; fds baseline ${baselineFds}, idle ${fds}`,
    );
    // RSS keeps what libvips' operation cache and glibc's per-thread arenas took once: the first
    // half may raise it, the second half must not raise it much further.
    expect(settled.rss - mid.rss).toBeLessThan(64 * 1024 * 1024);
    expect(settled.rss - baseline.rss).toBeLessThan(256 * 1024 * 1024);
  });
});
