import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { create } from "@bufbuild/protobuf";
import sharp from "sharp";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DetectionService } from "../gen/hazard/stream/v1/detection_service_pb.js";
import { ErrorCode, ErrorDetailSchema, FrameSchema, SessionConfigSchema } from "../gen/hazard/stream/v1/types_pb.js";
import { sceneJpeg } from "./support/images.js";
import { startServer, type TestServer } from "./support/server.js";

const run = promisify(execFile);
const DETECT_PATH = "/hazard.stream.v1.DetectionService/Detect";

describe("Detect over HTTP/1.1 (browsers, curl) on the same port", () => {
  let server: TestServer;
  let frame: Awaited<ReturnType<typeof sceneJpeg>>;

  beforeAll(async () => {
    server = await startServer();
    frame = await sceneJpeg(21);
  });
  afterAll(() => server.close());

  for (const [name, makeTransport] of [
    ["gRPC-Web", (baseUrl: string) => createGrpcWebTransport({ baseUrl, httpVersion: "1.1" })],
    ["Connect", (baseUrl: string) => createConnectTransport({ baseUrl, httpVersion: "1.1" })],
  ] as const) {
    it(`${name} client gets detections in source pixels`, async () => {
      const client = createClient(DetectionService, makeTransport(server.baseUrl));
      const res = await client.detect({ frame: create(FrameSchema, { frameId: "x", imageData: frame.bytes }) });
      const r = res.result;
      expect(r?.frameId).toBe("x");
      expect([r?.imageWidth, r?.imageHeight]).toEqual([640, 480]);
      expect(r?.detections.length).toBeGreaterThan(0);
      for (const d of r?.detections ?? []) {
        expect(d.bbox?.x1).toBeGreaterThanOrEqual(0);
        expect(d.bbox?.x2).toBeLessThanOrEqual(640);
        expect(d.bbox?.y2).toBeLessThanOrEqual(480);
        expect(["crack", "pothole"]).toContain(d.className);
      }
    });

    it(`${name} client gets a typed INVALID_ARGUMENT with ErrorDetail for a bad image`, async () => {
      const client = createClient(DetectionService, makeTransport(server.baseUrl));
      const err = await client
        .detect({ frame: create(FrameSchema, { frameId: "bad", imageData: new TextEncoder().encode("not an image") }) })
        .then(() => undefined, (e: unknown) => ConnectError.from(e));
      expect(err?.code).toBe(Code.InvalidArgument);
      expect(err?.findDetails(ErrorDetailSchema)[0]?.code).toBe(ErrorCode.INVALID_IMAGE);
    });
  }

  it("Connect client gets INVALID_CONFIG naming the field", async () => {
    const client = createClient(DetectionService, createConnectTransport({ baseUrl: server.baseUrl, httpVersion: "1.1" }));
    const err = await client
      .detect({
        frame: create(FrameSchema, { imageData: frame.bytes }),
        config: create(SessionConfigSchema, { confidenceThreshold: 1.5 }),
      })
      .then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(err?.code).toBe(Code.InvalidArgument);
    const detail = err?.findDetails(ErrorDetailSchema)[0];
    expect(detail?.code).toBe(ErrorCode.INVALID_CONFIG);
    expect(detail?.field).toBe("confidence_threshold");
  });

  it("plain fetch with Connect-JSON works", async () => {
    const res = await fetch(server.baseUrl + DETECT_PATH, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        frame: { imageData: Buffer.from(frame.bytes).toString("base64"), frameId: "j1", metadata: { lat: 52.1 } },
        config: { confidenceThreshold: 0.3 },
      }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { result: { frameId: string; detections: Array<{ className: string }>; metadata: unknown } };
    expect(body.result.frameId).toBe("j1");
    expect(body.result.detections.length).toBeGreaterThan(0);
    expect(body.result.metadata).toEqual({ lat: 52.1 });
  });

  it("Connect-JSON answers carry every field, empty and zero ones included (clients index them by name)", async () => {
    const blank = await sharp({ create: { width: 320, height: 240, channels: 3, background: "#777" } }).jpeg().toBuffer();
    const res = await fetch(server.baseUrl + DETECT_PATH, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ frame: { imageData: blank.toString("base64") } }),
    });
    expect(res.status).toBe(200);
    const { result } = (await res.json()) as { result: Record<string, unknown> };
    expect(result.detections).toEqual([]);
    // Zero and empty scalars too: no frame id was sent, the config version of a unary call is 0.
    expect(result).toMatchObject({ frameId: expect.any(String), configVersion: 0, imageWidth: 320, imageHeight: 240 });
  });

  it("plain curl with Connect-JSON works, and errors come back as Connect JSON with HTTP 400", async () => {
    const dir = await mkdtemp(join(tmpdir(), "hazard-curl-"));
    try {
      const body = join(dir, "req.json");
      await writeFile(body, JSON.stringify({ frame: { imageData: Buffer.from(frame.bytes).toString("base64") } }));
      const ok = await run("curl", ["-sS", "-H", "Content-Type: application/json", "--data-binary", `@${body}`, server.baseUrl + DETECT_PATH]);
      const parsed = JSON.parse(ok.stdout) as { result: { detections: unknown[] } };
      expect(parsed.result.detections.length).toBeGreaterThan(0);

      await writeFile(body, JSON.stringify({ frame: { imageData: Buffer.from("nope").toString("base64") } }));
      const bad = await run("curl", ["-sS", "-w", "\n%{http_code}", "-H", "Content-Type: application/json", "--data-binary", `@${body}`, server.baseUrl + DETECT_PATH]);
      const [json, status] = bad.stdout.trimEnd().split("\n");
      expect(status).toBe("400");
      expect(JSON.parse(json ?? "{}")).toMatchObject({ code: "invalid_argument" });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
