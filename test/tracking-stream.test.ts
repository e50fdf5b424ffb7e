import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DetectionService,
  StreamDetectionsRequestSchema,
  type StreamDetectionsRequest,
  type StreamDetectionsResponse,
} from "../gen/hazard/stream/v1/detection_service_pb.js";
import { SessionService } from "../gen/hazard/stream/v1/session_service_pb.js";
import { FrameSchema, SessionConfigSchema, type DetectionResult } from "../gen/hazard/stream/v1/types_pb.js";
import { RequestStream as PushStream } from "../src/http/request-stream.js";
import { StreamReader } from "./support/async-queue.js";
import { sceneJpeg } from "./support/images.js";
import { startServer, type TestServer } from "./support/server.js";

describe("tracking on a live gRPC stream", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer({ STREAMING_MAX_FPS: "60", STREAMING_DEFAULT_FPS: "60" });
  });
  afterAll(() => server.close());

  it("gives stable track ids from the first frame, confirms them on the third, reports unique hazards, and emits one hazard event per track at the end", async () => {
    const transport = createGrpcTransport({ baseUrl: server.baseUrl });
    const client = createClient(DetectionService, transport);
    const sessions = createClient(SessionService, transport);
    const { bytes } = await sceneJpeg(61);
    const requests = new PushStream<StreamDetectionsRequest>();
    const reader = new StreamReader<StreamDetectionsResponse>(client.streamDetections(requests));
    requests.push(
      create(StreamDetectionsRequestSchema, {
        message: { case: "start", value: { config: create(SessionConfigSchema, { enableTracking: true }) } },
      }),
    );
    const first = await reader.next();
    const clientId = first?.message.case === "session" ? first.message.value.clientId : "";
    expect(clientId).not.toBe("");

    const t0 = 1_700_000_000;
    const results: DetectionResult[] = [];
    for (let i = 0; i < 6; i++) {
      requests.push(
        create(StreamDetectionsRequestSchema, {
          message: {
            case: "frame",
            value: create(FrameSchema, { frameId: `t${i}`, imageData: bytes, timestamp: t0 + i * 0.1, metadata: { lat: 52 + i / 1000 } }),
          },
        }),
      );
      const got = (await reader.until((m) => m.message.case === "result" || m.message.case === "error")).at(-1);
      expect(got?.message.case).toBe("result");
      if (got?.message.case === "result") results.push(got.message.value);
    }
    // A track carries its id from its first detection, tentative until its third, confirmed (and
    // flagged new) then.
    const initial = results[0]?.detections.filter((d) => d.trackId !== undefined) ?? [];
    expect(initial.length).toBeGreaterThan(0);
    const ids = new Set(initial.map((d) => d.trackId));
    for (const r of results.slice(0, 2)) {
      const tracked = r.detections.filter((d) => d.trackId !== undefined);
      expect(new Set(tracked.map((d) => d.trackId))).toEqual(ids);
      expect(tracked.every((d) => !d.trackConfirmed && !d.trackIsNew)).toBe(true);
    }
    const confirmed = results[2]?.detections.filter((d) => d.trackId !== undefined) ?? [];
    expect(new Set(confirmed.map((d) => d.trackId))).toEqual(ids);
    expect(confirmed.every((d) => d.trackIsNew && d.trackConfirmed)).toBe(true);
    for (const r of results.slice(3)) {
      const tracked = r.detections.filter((d) => d.trackId !== undefined);
      expect(new Set(tracked.map((d) => d.trackId))).toEqual(ids); // the same hazards keep their ids
      expect(tracked.every((d) => d.trackConfirmed && !d.trackIsNew)).toBe(true);
    }

    const stats = (await sessions.getSessionStats({ clientId })).stats;
    const unique = stats?.uniqueHazards.reduce((n, c) => n + Number(c.count), 0);
    expect(unique).toBe(ids.size);

    requests.end();
    const rest: StreamDetectionsResponse[] = [];
    for (let m = await reader.next(); m !== undefined; m = await reader.next()) rest.push(m);
    const hazards = rest.flatMap((m) => (m.message.case === "hazard" ? [m.message.value] : []));
    expect(new Set(hazards.map((h) => h.trackId))).toEqual(ids);
    for (const h of hazards) {
      expect(h.framesSeen).toBe(6);
      expect(h.firstSeen).toBeCloseTo(t0, 3);
      expect(h.lastSeen).toBeCloseTo(t0 + 0.5, 3);
      expect(h.peakFrameId).toMatch(/^t\d$/);
      expect(h.peakMetadata).toHaveProperty("lat");
    }
  });
});
