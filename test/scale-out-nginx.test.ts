import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { IncomingHttpHeaders } from "node:http";
import { fileURLToPath } from "node:url";
import { create } from "@bufbuild/protobuf";
import { ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { Redis } from "ioredis";
import { WebSocket } from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DetectionService,
  StreamDetectionsRequestSchema,
  StreamStartSchema,
  type StreamDetectionsRequest,
} from "../gen/hazard/stream/v1/detection_service_pb.js";
import { EndReason, SessionService } from "../gen/hazard/stream/v1/session_service_pb.js";
import { FrameSchema, SessionConfigSchema } from "../gen/hazard/stream/v1/types_pb.js";
import { RequestStream } from "../src/http/request-stream.js";
import { RawSse, type Json } from "./support/http-clients.js";
import { sceneJpeg } from "./support/images.js";
import { findNginx, freePort, startNginx, type Nginx } from "./support/nginx.js";
import { startServerProcess, type ServerProcess } from "./support/server-process.js";
import { clearRedisPrefix, redisAnswers } from "./support/redis.js";

/**
 * The scale-out example of deploy/ run for real: two instances sharing sessions through Redis behind
 * nginx with deploy/nginx/hazard-stream.conf (addresses rewritten to free loopback ports). A client
 * on every door streams frames through nginx while instance A is stopped with SIGTERM and restarted,
 * then B is stopped: every client of a stopped instance reconnects through nginx, lands on the other
 * instance and resumes its session by client_id. Each frame is answered; an accepted one is never
 * lost; a connection that ends with a frame unanswered ends with an error, never as if all was done.
 */

const REDIS_URL = "redis://127.0.0.1:6379";
const SITE = fileURLToPath(new URL("../deploy/nginx/hazard-stream.conf", import.meta.url));
const NGINX = findNginx();
const PACE_MS = 250;
const RETRY_MS = 150;
/** Liveness bounds only (the machine may be loaded): an answer that takes this long is missing. */
const ANSWER_TIMEOUT_MS = 25_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** For the liveness bounds raced against answers: an abandoned one must not hold the worker open. */
const deadline = (ms: number) => new Promise((r) => setTimeout(r, ms).unref());


/** The instance port nginx used, from the header the test adds (the last one when it retried). */
function upstreamOf(value: string | string[] | null | undefined): number {
  const v = Array.isArray(value) ? value.join(",") : (value ?? "");
  const last = v.split(",").at(-1)?.trim() ?? "";
  return Number(/:(\d+)$/.exec(last)?.[1] ?? 0);
}
const UPSTREAM_HEADER = "x-hazard-upstream";
const upstreamOfNode = (h: IncomingHttpHeaders) => upstreamOf(h[UPSTREAM_HEADER]);

/** The deploy example with its example addresses replaced; each must occur as often as expected. */
function rewriteSite(text: string, ports: { a: number; b: number; http: number; grpc: number }): string {
  // Directives only (line starts), not the comments that mention them.
  const swaps: Array<[RegExp, string, number]> = [
    [/^(\s*)server 127\.0\.0\.1:8081 /gm, `$1server 127.0.0.1:${ports.a} `, 2],
    [/^(\s*)server 127\.0\.0\.1:8082 /gm, `$1server 127.0.0.1:${ports.b} `, 2],
    [/^(\s*)listen 80;/gm, `$1listen 127.0.0.1:${ports.http};`, 1],
    [/^(\s*)listen 50051 http2;/gm, `$1listen 127.0.0.1:${ports.grpc} http2;`, 1],
  ];
  for (const [from, to, count] of swaps) {
    const n = text.match(from)?.length ?? 0;
    if (n !== count) throw new Error(`deploy/nginx/hazard-stream.conf: expected ${String(from)} ${count}x, found ${n}x`);
    text = text.replace(from, to);
  }
  return text;
}

type AnswerKind = "result" | "error" | "dropped";

/** Which part of the run an answer came in. */
const enum Phase {
  BothUp = 0,
  AStopped = 1,
  BStopped = 2,
}
const world: { phase: Phase; gate: Promise<void> | undefined } = { phase: Phase.BothUp, gate: undefined };

/** One client: what it sent, what came back, and every (re)connection. */
class Runner {
  clientId = "";
  /** The instance serving the connection results arrive on. */
  instance = 0;
  readonly answers: Array<{ frameId: string; kind: AnswerKind; instance: number; phase: Phase }> = [];
  readonly opens: Array<{ clientId: string; instance: number; resumed: boolean }> = [];
  /** How connections ended while the client still used them. */
  readonly ends: Array<{ clean: boolean; detail: string }> = [];
  /** Sends the service or nginx refused (5xx, connection errors): the client sent again. */
  readonly refusals: string[] = [];
  /** Frames sent again because their connection ended before answering. */
  resent = 0;
  /** Where accepted uploads (REST) went. */
  readonly uploads: Array<{ instance: number; phase: Phase }> = [];
  failure: unknown;
  /** Waiting at world.gate before its next frame. */
  atGate = false;
  private waiting: { frameId: string; resolve: () => void } | undefined;

  /** matchAny: frames get their id from the server (binary WebSocket), so any answer is the answer. */
  constructor(
    readonly name: string,
    private readonly matchAny = false,
  ) {}

  expect(frameId: string): Promise<void> {
    return new Promise((resolve) => (this.waiting = { frameId, resolve }));
  }

  answer = (frameId: string, kind: AnswerKind): void => {
    this.answers.push({ frameId, kind, instance: this.instance, phase: world.phase });
    const w = this.waiting;
    if (w && (this.matchAny || w.frameId === frameId)) {
      this.waiting = undefined;
      w.resolve();
    }
  };

  /** Holds the client before a new frame while the test lines every client up. */
  async gate(): Promise<void> {
    const g = world.gate;
    if (!g) return;
    this.atGate = true;
    await g;
    this.atGate = false;
  }

  results(phase: Phase, instance: number): number {
    return this.answers.filter((a) => a.kind === "result" && a.phase === phase && a.instance === instance).length;
  }
}

/** A connection that carries frames and their answers (gRPC bidi, WebSocket). */
interface StreamConn {
  clientId: string;
  resumed: boolean;
  instance: number;
  ended: Promise<{ clean: boolean; detail: string }>;
  isEnded(): boolean;
  send(frameId: string): void;
  close(): void;
}

/** Frames go up one request at a time; answers come on a separate, resumable event stream. */
interface UploadDoor {
  start(): Promise<void>;
  send(frameId: string): Promise<{ accepted: true } | { refused: string }>;
  stop(): Promise<void>;
}

function defer<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/**
 * Resolves once a new event stream delivers its first event, poking the session (a config update,
 * which every watcher hears of) until it does: only then can no result slip past the watcher.
 */
async function untilLive(live: Promise<void>, poke: () => Promise<unknown>): Promise<void> {
  for (let i = 0; i < 50; i++) {
    await poke();
    if (await Promise.race([live.then(() => true), deadline(300).then(() => false)])) return;
  }
  throw new Error("the event stream never delivered an event");
}

async function runStreamDoor(r: Runner, open: (clientId: string) => Promise<StreamConn>, stop: AbortSignal): Promise<void> {
  let conn: StreamConn | undefined;
  let n = 0;
  try {
    while (!stop.aborted) {
      await r.gate();
      const frameId = `${r.name}-${++n}`;
      for (let attempt = 1; ; attempt++) {
        if (attempt > 60) throw new Error(`${r.name}: ${frameId} unanswered after ${attempt - 1} tries: ${r.refusals.slice(-3).join(" | ")}`);
        if (conn?.isEnded()) {
          r.ends.push(await conn.ended);
          conn = undefined;
        }
        if (!conn) {
          try {
            conn = await open(r.clientId);
          } catch (err) {
            r.refusals.push(`open: ${String(err)}`);
            await sleep(RETRY_MS);
            continue;
          }
          r.opens.push({ clientId: conn.clientId, instance: conn.instance, resumed: conn.resumed });
          if (r.clientId === "") r.clientId = conn.clientId;
          r.instance = conn.instance;
        }
        const answered = r.expect(frameId);
        conn.send(frameId);
        const outcome = await Promise.race([
          answered.then(() => "answered" as const),
          conn.ended.then(() => "ended" as const),
          deadline(ANSWER_TIMEOUT_MS).then(() => "timeout" as const),
        ]);
        if (outcome === "answered") break;
        if (outcome === "timeout") throw new Error(`${r.name}: no answer to ${frameId} on a live connection`);
        // The connection ended with the frame unanswered: resume the session and send it again.
        r.resent++;
      }
      await sleep(PACE_MS);
    }
  } catch (err) {
    r.failure = err;
  } finally {
    conn?.close();
  }
}

async function runUploadDoor(r: Runner, door: UploadDoor, stop: AbortSignal): Promise<void> {
  let n = 0;
  try {
    await door.start();
    while (!stop.aborted) {
      await r.gate();
      const frameId = `${r.name}-${++n}`;
      for (let attempt = 1; ; attempt++) {
        if (attempt > 60) throw new Error(`${r.name}: ${frameId} refused ${attempt - 1} times: ${r.refusals.slice(-3).join(" | ")}`);
        const answered = r.expect(frameId);
        const sent = await door.send(frameId);
        if ("refused" in sent) {
          r.refusals.push(sent.refused);
          await sleep(RETRY_MS);
          continue;
        }
        // Accepted: the answer must come on the event stream, across its reconnections, unasked.
        const ok = await Promise.race([answered.then(() => true), deadline(ANSWER_TIMEOUT_MS).then(() => false)]);
        if (!ok) throw new Error(`${r.name}: accepted frame ${frameId} was never answered`);
        break;
      }
      await sleep(PACE_MS);
    }
  } catch (err) {
    r.failure = err;
  } finally {
    await door.stop();
  }
}

const SUITE = "scale-out behind nginx (deploy/nginx/hazard-stream.conf)";
const HAS_REDIS = await redisAnswers();
const SKIP = !NGINX
  ? "skipped: nginx not found (Debian: apt-get install nginx-light, as .ci/run does)"
  : !HAS_REDIS
    ? `skipped: no Redis answers at ${REDIS_URL}`
    : undefined;

describe.skipIf(SKIP !== undefined)(SKIP ? `${SUITE} — ${SKIP}` : SUITE, () => {
  const prefix = `hs-nginx-test:${randomBytes(4).toString("hex")}:`;
  const ports = { a: 0, b: 0, http: 0, grpc: 0 };
  let a: ServerProcess | undefined;
  let b: ServerProcess | undefined;
  let nginx: Nginx | undefined;
  let jpeg: Uint8Array;
  // As deploy/README.md says: behind nginx every client has nginx's address.
  const env = () => ({ REDIS_URL, REDIS_KEY_PREFIX: prefix, MAX_CONNECTIONS_PER_IP: "0" });
  const httpBase = () => `http://127.0.0.1:${ports.http}`;
  const grpcBase = () => `http://127.0.0.1:${ports.grpc}`;

  /**
   * Starts an instance and waits until it is healthy (model loaded, Redis connected), not only
   * listening. `own` gets the process at once, so afterAll stops it even if it never gets there.
   */
  async function startInstance(port: number, own: (p: ServerProcess) => void): Promise<ServerProcess> {
    const p = startServerProcess({ ...env(), PORT: String(port) });
    own(p);
    await p.port;
    for (let i = 0; ; i++) {
      const ok = await fetch(`http://127.0.0.1:${port}/stream/health`).then((r) => r.ok, () => false);
      if (ok) return p;
      if (i > 300) throw new Error(`instance on ${port} never became healthy: ${p.logs.join("\n")}`);
      await sleep(100);
    }
  }

  beforeAll(async () => {
    for (const k of ["a", "b", "http", "grpc"] as const) ports[k] = await freePort();
    jpeg = (await sceneJpeg(61)).bytes;
    await Promise.all([startInstance(ports.a, (p) => (a = p)), startInstance(ports.b, (p) => (b = p))]);
    nginx = await startNginx({
      bin: NGINX?.bin ?? "nginx",
      site: rewriteSite(await readFile(SITE, "utf8"), ports),
      // Tells the test which instance served each request; not part of the example (it would show
      // internal addresses to clients).
      httpExtra: `  add_header X-Hazard-Upstream $upstream_addr always;`,
      ports: [ports.http, ports.grpc],
    });
  }, 90_000);

  afterAll(async () => {
    await nginx?.stop();
    await Promise.all([a?.stop(), b?.stop()]);
    await clearRedisPrefix(prefix);
  });

  /** gRPC bidi over the h2c port: StreamStart creates the session, StreamStart.client_id resumes it. */
  function openGrpc(r: Runner): (clientId: string) => Promise<StreamConn> {
    const client = createClient(DetectionService, createGrpcTransport({ baseUrl: grpcBase() }));
    return async (clientId) => {
      const requests = new RequestStream<StreamDetectionsRequest>();
      const abort = new AbortController();
      const start = clientId
        ? create(StreamStartSchema, { clientId })
        : create(StreamStartSchema, { config: create(SessionConfigSchema, { fpsLimit: 30 }) });
      requests.push(create(StreamDetectionsRequestSchema, { message: { case: "start", value: start } }));
      let instance = 0;
      const stream = client.streamDetections(requests, {
        signal: abort.signal,
        onHeader: (h) => (instance = upstreamOf(h.get(UPSTREAM_HEADER))),
      });
      const opened = defer<string>();
      const ended = defer<{ clean: boolean; detail: string }>();
      let isEnded = false;
      void (async () => {
        try {
          for await (const m of stream) {
            const v = m.message;
            if (v.case === "session") opened.resolve(v.value.clientId);
            else if (v.case === "result" || v.case === "error" || v.case === "dropped") r.answer(v.value.frameId, v.case);
          }
          ended.resolve({ clean: true, detail: "stream ended OK" });
        } catch (err) {
          const e = ConnectError.from(err);
          ended.resolve({ clean: false, detail: `${e.code}: ${e.rawMessage}` });
        } finally {
          isEnded = true;
        }
      })();
      const first = await Promise.race([opened.promise, ended.promise]);
      if (typeof first !== "string") throw new Error(`stream ended before its session: ${first.detail}`);
      return {
        clientId: first,
        resumed: clientId !== "",
        instance,
        ended: ended.promise,
        isEnded: () => isEnded,
        send: (frameId) =>
          requests.push(
            create(StreamDetectionsRequestSchema, {
              message: { case: "frame", value: create(FrameSchema, { frameId, imageData: jpeg }) },
            }),
          ),
        close: () => {
          requests.end();
          abort.abort();
        },
      };
    };
  }

  /** WebSocket: `?client_id=` resumes; `session_info` says which session (and that it resumed). */
  function openWs(r: Runner, binary: boolean): (clientId: string) => Promise<StreamConn> {
    return (clientId) =>
      new Promise((resolve, reject) => {
        const q = new URLSearchParams({ session_info: "true", notify: "true" });
        if (clientId) q.set("client_id", clientId);
        else q.set("fps_limit", "30");
        const ws = new WebSocket(`${httpBase().replace("http", "ws")}/stream/detection?${q}`);
        let instance = 0;
        const ended = defer<{ clean: boolean; detail: string }>();
        let isEnded = false;
        ws.on("upgrade", (res) => (instance = upstreamOfNode(res.headers)));
        ws.on("error", (err) => reject(err));
        ws.on("close", (code, reason) => {
          isEnded = true;
          ended.resolve({ clean: code === 1000, detail: `close ${code} ${reason.toString()}` });
          reject(new Error(`closed before session_created: ${code}`));
        });
        ws.on("message", (data: Buffer) => {
          const m = JSON.parse(data.toString("utf8")) as Json;
          if (m.type === "session_created") {
            resolve({
              clientId: String(m.client_id),
              resumed: m.resumed === true,
              instance,
              ended: ended.promise,
              isEnded: () => isEnded,
              send: (frameId) => {
                if (binary) ws.send(jpeg);
                else ws.send(JSON.stringify({ type: "frame", frame_id: frameId, timestamp: Date.now() / 1000, image_data: Buffer.from(jpeg).toString("base64") }));
              },
              close: () => ws.close(),
            });
          } else if (m.type === "detection_result") {
            r.answer(String((m.data as Json).frame_id), "result");
          } else if (m.type === "frame_dropped") {
            r.answer(String(m.frame_id), "dropped");
          } else if (m.type === "error" && m.frame_id !== null) {
            r.answer(String(m.frame_id), "error");
          }
        });
      });
  }

  /** REST + SSE: frames by POST to any instance, results on SSE, which resumes with Last-Event-ID. */
  function restDoor(r: Runner): UploadDoor {
    let running = true;
    let lastEventId = "";
    let sse: RawSse | undefined;
    let watching: Promise<void> = Promise.resolve();
    const live = defer<void>();
    const onEvent = (ev: { id?: string; data: string }) => {
      if (ev.id) lastEventId = ev.id;
      live.resolve();
      const m = JSON.parse(ev.data) as Json;
      if (m.type === "detection_result") r.answer(String((m.data as Json).frame_id), "result");
      else if (m.type === "frame_dropped") r.answer(String(m.frame_id), "dropped");
      else if (m.type === "error" && m.frame_id !== null) r.answer(String(m.frame_id), "error");
      else if (m.type === "session_ended") r.ends.push({ clean: m.reason !== "SHUTDOWN", detail: `session_ended ${String(m.reason)}` });
    };
    const watch = async () => {
      while (running) {
        const headers: Record<string, string> = lastEventId ? { "Last-Event-ID": lastEventId } : {};
        sse = new RawSse(`${httpBase()}/stream/events/${r.clientId}`, headers, onEvent);
        await sse.headersReceived;
        if (sse.status === 200) {
          r.instance = upstreamOf(sse.responseHeaders?.get(UPSTREAM_HEADER));
          r.opens.push({ clientId: r.clientId, instance: r.instance, resumed: lastEventId !== "" });
        } else if (sse.status !== 0) {
          r.refusals.push(`SSE ${sse.status}`);
        }
        await sse.done;
        if (running) await sleep(RETRY_MS);
      }
    };
    return {
      async start() {
        const res = await fetch(`${httpBase()}/stream/sessions`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ fps_limit: 30 }),
        });
        r.clientId = String(((await res.json()) as Json).client_id);
        watching = watch();
        await untilLive(live.promise, () =>
          fetch(`${httpBase()}/stream/sessions/${r.clientId}/config`, {
            method: "PATCH",
            headers: { "Content-Type": "application/json" },
            body: JSON.stringify({ fps_limit: 30 }),
          }),
        );
      },
      async send(frameId) {
        try {
          const res = await fetch(`${httpBase()}/stream/process/${r.clientId}?frame_id=${frameId}`, {
            method: "POST",
            headers: { "Content-Type": "image/jpeg" },
            body: jpeg,
          });
          const body = await res.text();
          if (res.status === 202) {
            r.uploads.push({ instance: upstreamOf(res.headers.get(UPSTREAM_HEADER)), phase: world.phase });
            return { accepted: true };
          }
          return { refused: `POST ${res.status} ${body.slice(0, 160)}` };
        } catch (err) {
          return { refused: `POST: ${String(err)}` };
        }
      },
      async stop() {
        running = false;
        sse?.close();
        await watching;
      },
    };
  }

  /** Connect unary SubmitFrame, results on a gRPC-Web WatchSession that resumes after its last event id. */
  function connectDoor(r: Runner): UploadDoor {
    const connect = createClient(SessionService, createConnectTransport({ baseUrl: httpBase(), httpVersion: "1.1" }));
    const grpcWeb = createClient(SessionService, createGrpcWebTransport({ baseUrl: httpBase(), httpVersion: "1.1" }));
    let running = true;
    let lastEventId = 0n;
    const abort = new AbortController();
    let watching: Promise<void> = Promise.resolve();
    const live = defer<void>();
    const watch = async () => {
      while (running) {
        let opened = false;
        let sawEnd = false;
        const onHeader = (h: Headers) => {
          r.instance = upstreamOf(h.get(UPSTREAM_HEADER));
          r.opens.push({ clientId: r.clientId, instance: r.instance, resumed: lastEventId > 0n });
          opened = true;
        };
        try {
          for await (const ev of grpcWeb.watchSession({ clientId: r.clientId, afterEventId: lastEventId }, { signal: abort.signal, onHeader })) {
            if (ev.eventId > 0n) lastEventId = ev.eventId;
            live.resolve();
            const e = ev.event;
            if (e.case === "result" || e.case === "error" || e.case === "dropped") r.answer(e.value.frameId, e.case);
            else if (e.case === "ended") {
              sawEnd = true;
              r.ends.push({ clean: e.value.reason !== EndReason.SHUTDOWN, detail: `ended ${EndReason[e.value.reason]}` });
            }
          }
          // A watch that ends without saying why (no `ended`, no error) looks finished to its client.
          if (running && !sawEnd) r.ends.push({ clean: true, detail: "watch ended without an ended event" });
        } catch (err) {
          if (!running) return;
          const e = ConnectError.from(err);
          if (opened) r.ends.push({ clean: false, detail: `${e.code}: ${e.rawMessage}` });
          else r.refusals.push(`watch: ${e.code} ${e.rawMessage}`);
        }
        if (running) await sleep(RETRY_MS);
      }
    };
    return {
      async start() {
        const created = await connect.createSession({ config: create(SessionConfigSchema, { fpsLimit: 30 }) });
        r.clientId = created.session?.clientId ?? "";
        watching = watch();
        await untilLive(live.promise, () =>
          connect.updateSessionConfig({ clientId: r.clientId, config: create(SessionConfigSchema, { fpsLimit: 30 }) }),
        );
      },
      async send(frameId) {
        try {
          const res = await connect.submitFrame({ clientId: r.clientId, frame: create(FrameSchema, { frameId, imageData: jpeg }) });
          // Not accepted means dropped at once (FPS limit); its drop notice still comes on the watch.
          return res.frameId === frameId ? { accepted: true } : { refused: `SubmitFrame answered for ${res.frameId}` };
        } catch (err) {
          const e = ConnectError.from(err);
          return { refused: `SubmitFrame ${e.code} ${e.rawMessage}` };
        }
      },
      async stop() {
        running = false;
        abort.abort();
        await watching;
      },
    };
  }

  async function waitFor(what: string, check: () => boolean | Promise<boolean>, runners: Runner[], ms = 45_000): Promise<void> {
    const giveUpAt = Date.now() + ms;
    while (!(await check())) {
      const failed = runners.find((r) => r.failure !== undefined);
      if (failed) throw new Error(`${what}: ${failed.name} failed: ${String(failed.failure)}`);
      if (Date.now() > giveUpAt) {
        const state = runners.map((r) => `${r.name}: on ${r.instance}, ${r.answers.length} answers, refusals ${r.refusals.slice(-3).join(" | ")}`);
        throw new Error(`${what}: not within ${ms} ms\n${state.join("\n")}\nnginx: ${nginx?.log.join("")}`);
      }
      await sleep(50);
    }
  }

  /**
   * Lines every client up before its next frame, lets them all send at once and stops `p` while
   * those frames are on their way: the drain then finds frames queued, in flight and still arriving
   * (which of these varies from run to run; each must end answered, or refused with an error).
   */
  async function stopWithFramesInFlight(p: ServerProcess | undefined, runners: Runner[]): Promise<void> {
    const gate = defer<void>();
    world.gate = gate.promise;
    await waitFor("every client between two frames", () => runners.every((r) => r.atGate), runners);
    world.gate = undefined;
    gate.resolve();
    await sleep(20);
    const code = await p?.stop();
    // A graceful drain exits 0; the log says what went wrong otherwise.
    expect(code, p?.logs.slice(-15).join("\n")).toBe(0);
  }

  it(
    "every door keeps streaming through nginx while A is stopped and restarted and then B is stopped; sessions resume by client_id",
    async () => {
      const grpc = new Runner("grpc-bidi");
      const wsJson = new Runner("ws-json");
      const wsBinary = new Runner("ws-binary", true);
      const rest = new Runner("rest-sse");
      const connect = new Runner("connect-grpcweb");
      const runners = [grpc, wsJson, wsBinary, rest, connect];
      const stop = new AbortController();
      const runs = [
        runStreamDoor(grpc, openGrpc(grpc), stop.signal),
        runStreamDoor(wsJson, openWs(wsJson, false), stop.signal),
        runStreamDoor(wsBinary, openWs(wsBinary, true), stop.signal),
        runUploadDoor(rest, restDoor(rest), stop.signal),
        runUploadDoor(connect, connectDoor(connect), stop.signal),
      ];
      try {
        const atLeast = (phase: Phase, instance: () => number) => () => runners.every((r) => r.results(phase, instance()) >= 2);
        const onEither = () => runners.every((r) => r.results(Phase.BothUp, ports.a) + r.results(Phase.BothUp, ports.b) >= 2);
        await waitFor("results through nginx with both instances up", onEither, runners);

        world.phase = Phase.AStopped;
        await stopWithFramesInFlight(a, runners);
        await waitFor("results from B once A stopped", atLeast(Phase.AStopped, () => ports.b), runners);

        await startInstance(ports.a, (p) => (a = p));
        // nginx tries a failed instance again after fail_timeout; until then it sends everything to B.
        await waitFor(
          "nginx sending requests to the restarted A",
          async () => upstreamOf((await fetch(`${httpBase()}/stream/health`)).headers.get(UPSTREAM_HEADER)) === ports.a,
          runners,
        );

        world.phase = Phase.BStopped;
        await stopWithFramesInFlight(b, runners);
        await waitFor("results from the restarted A once B stopped", atLeast(Phase.BStopped, () => ports.a), runners);
      } finally {
        stop.abort();
        await Promise.all(runs);
      }

      for (const r of runners) {
        expect(r.failure, r.name).toBeUndefined();
        // One session from start to end: every reconnection resumed the same client_id.
        expect(r.clientId, r.name).not.toBe("");
        expect(new Set(r.opens.map((o) => o.clientId)), r.name).toEqual(new Set([r.clientId]));
        expect(r.opens.slice(1).every((o) => o.resumed), r.name).toBe(true);
        // B was stopped while everyone was on it: every client was cut at least once and came back.
        expect(r.opens.length, r.name).toBeGreaterThanOrEqual(2);
        expect(r.opens.some((o) => o.instance === ports.a) && r.opens.some((o) => o.instance === ports.b), r.name).toBe(true);
        // A connection that ended under the client ended with an error or SHUTDOWN, never like a finished session.
        expect(r.ends.filter((e) => e.clean), r.name).toEqual([]);
        expect(r.answers.filter((x) => x.kind === "result").length, r.name).toBeGreaterThanOrEqual(6);
      }
      // Session affinity: with both instances up, every upload of the REST session went to one of them.
      const restUploads = rest.uploads.filter((u) => u.phase === Phase.BothUp).map((u) => u.instance);
      expect([ports.a, ports.b]).toContain(restUploads[0]);
      expect(new Set(restUploads).size).toBe(1);
      // Frames go up one request at a time and never need resending once accepted (runUploadDoor
      // fails otherwise); a stream's unanswered frames are resent only after an error end.
      console.info(
        `scale-out via nginx ${NGINX?.version}:\n` +
          runners
            .map((r) => {
              const n = (k: AnswerKind) => r.answers.filter((x) => x.kind === k).length;
              const ends = r.ends.map((e) => e.detail).join(" / ");
              const refused = [...new Set(r.refusals.map((x) => x.slice(0, 90)))].join(" / ");
              return `${r.name}: ${n("result")} results, ${n("error")} errors, ${n("dropped")} dropped; ${r.opens.length} connections (ends: ${ends}); ${r.resent} resent; ${r.refusals.length} refused (${refused})`;
            })
            .join("\n"),
      );

      // The stateless unary door on each protocol, through the balancer, once everything moved.
      const detect = [
        createClient(DetectionService, createConnectTransport({ baseUrl: httpBase(), httpVersion: "1.1" })),
        createClient(DetectionService, createGrpcWebTransport({ baseUrl: httpBase(), httpVersion: "1.1" })),
        createClient(DetectionService, createGrpcTransport({ baseUrl: grpcBase() })),
      ];
      for (const c of detect) {
        const res = await c.detect({ frame: create(FrameSchema, { frameId: "unary", imageData: jpeg }) });
        expect(res.result?.imageWidth).toBe(640);
      }

      const sessions = createClient(SessionService, createConnectTransport({ baseUrl: httpBase(), httpVersion: "1.1" }));
      for (const r of runners) await sessions.deleteSession({ clientId: r.clientId }).catch(() => undefined);
    },
    120_000,
  );
});
