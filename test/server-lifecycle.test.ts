import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport, createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import {
  DetectionService,
  StreamDetectionsRequestSchema,
  type StreamDetectionsRequest,
  type StreamDetectionsResponse,
} from "../gen/hazard/stream/v1/detection_service_pb.js";
import { FrameSchema } from "../gen/hazard/stream/v1/types_pb.js";
import { RequestStream as PushStream } from "../src/http/request-stream.js";
import { sceneJpeg } from "./support/images.js";
import { scrape } from "./support/metrics.js";
import { startServer } from "./support/server.js";
import { startServerProcess } from "./support/server-process.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** Rejects when `promise` has not settled after `ms`: a hung shutdown fails the test with a reason. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not after ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => (socket.destroy(), resolve(true)));
    socket.once("error", () => resolve(false));
  });
}

describe("process lifecycle", () => {
  // What operators signal: the container runtime or orchestrator signals node (the Dockerfile's CMD);
  // `kill` after `npm start &` (deploy/README.md) signals npm; Ctrl-C signals the terminal's whole
  // process group, npm and node alike.
  it.each([
    { launch: "node", signal: "SIGTERM", to: "the process" },
    { launch: "npm start", signal: "SIGTERM", to: "the process" },
    { launch: "npm start", signal: "SIGINT", to: "its process group (Ctrl-C)" },
  ] as const)("$launch, $signal to $to: drains open streams, every frame sent is answered, the stream ends cleanly, every process exits 0", async ({ launch, signal, to }) => {
    const proc = startServerProcess({ STREAMING_DEFAULT_FPS: "30" }, launch);
    onTestFinished(() => proc.kill());
    const port = await proc.port;
    expect(proc.logs.join("\n")).toMatch(/inference: onnxruntime/);
    const client = createClient(DetectionService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
    const requests = new PushStream<StreamDetectionsRequest>();
    const received: StreamDetectionsResponse[] = [];
    const done = (async () => {
      for await (const m of client.streamDetections(requests)) received.push(m);
    })();
    const { bytes } = await sceneJpeg(31);
    const frame = (id: string) =>
      create(StreamDetectionsRequestSchema, { message: { case: "frame", value: create(FrameSchema, { frameId: id, imageData: bytes }) } });
    requests.push(frame("a"));
    while (!received.some((m) => m.message.case === "result")) await new Promise((r) => setTimeout(r, 20));
    requests.push(frame("b"));
    // Signal once b has reached its session on the server (queued or in flight), not while it may still
    // be in a socket buffer: a frame the server never read is the client's to resend, not the drain's.
    const framesOnServer = async () => (await scrape(`http://127.0.0.1:${port}`)).get("hazard_frames_received_total", { door: "grpc_stream" });
    while ((await framesOnServer()) < 2) await new Promise((r) => setTimeout(r, 20));
    const pid = proc.child.pid!;
    process.kill(to === "the process" ? pid : -pid, signal);
    // Bounded so that a server left running fails here with its log rather than at the test timeout.
    await within(done, 30_000, `the stream ended after ${signal}`); // without throwing: a clean end, not an error
    const logs = () => proc.logs.join("\n");
    expect(await within(proc.exited, 30_000, "every process exited"), logs()).toBe(0);
    expect(await accepts(port)).toBe(false);
    const answered = received
      .map((m) => m.message)
      .filter((m) => m.case === "result" || m.case === "error" || m.case === "dropped")
      .map((m) => m.value.frameId);
    expect(answered).toContain("a");
    expect(answered).toContain("b");
    expect(logs()).toMatch(new RegExp(`${signal}: draining streams`));
    expect(logs()).toMatch(/shutdown complete/);
    expect(logs()).not.toMatch(/again: exiting now/);
  });

  it("refuses an invalid environment with a message naming the variable", async () => {
    const run = promisify(execFile);
    const err = await run(process.execPath, ["--import", "tsx", "src/main.ts"], {
      cwd: ROOT,
      env: { ...process.env, STREAMING_MAX_FPS: "fast" },
    }).then(() => undefined, (e: { code: number; stderr: string }) => e);
    expect(err?.code).toBe(2);
    expect(err?.stderr).toMatch(/STREAMING_MAX_FPS=fast is invalid/);
  });
});

describe("TLS with ALPN (h2 and http/1.1 on one port)", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "hazard-tls-"));
    await promisify(execFile)("openssl", [
      "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
      "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
      "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"),
    ]);
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("serves gRPC over h2 and Connect over HTTP/1.1 with TLS", async () => {
    const server = await startServer({ TLS_CERT_FILE: join(dir, "cert.pem"), TLS_KEY_FILE: join(dir, "key.pem") });
    try {
      const ca = await readFile(join(dir, "cert.pem"));
      const baseUrl = `https://127.0.0.1:${server.address.port}`;
      const { bytes } = await sceneJpeg(32);
      const grpc = createClient(DetectionService, createGrpcTransport({ baseUrl, nodeOptions: { ca } }));
      const r1 = await grpc.detect({ frame: create(FrameSchema, { imageData: bytes }) });
      expect(r1.result?.imageWidth).toBe(640);
      const h1 = createClient(DetectionService, createConnectTransport({ baseUrl, httpVersion: "1.1", nodeOptions: { ca } }));
      const r2 = await h1.detect({ frame: create(FrameSchema, { imageData: bytes }) });
      expect(r2.result?.detections.length).toBe(r1.result?.detections.length);
    } finally {
      await server.close();
    }
  });
});

