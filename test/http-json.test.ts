import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { Door, SessionSchema } from "../gen/hazard/stream/v1/session_pb.js";
import { EndReason, KeepaliveSchema, SessionEndedSchema, WatchSessionResponseSchema } from "../gen/hazard/stream/v1/session_service_pb.js";
import {
  BoundingBoxSchema,
  ClassFilterSchema,
  DetectionResultSchema,
  DetectionSchema,
  ErrorCode,
  FrameDroppedSchema,
  DropReason,
  SessionConfigSchema,
} from "../gen/hazard/stream/v1/types_pb.js";
import { httpErrorOf } from "../src/http/http-errors.js";
import { configFromJson, configJsonFromQuery, decodeBase64, frameFromJson, parseJson } from "../src/http/json-input.js";
import { detectionResultJson, sessionJson } from "../src/http/json-messages.js";
import { sseChunk } from "../src/http/sse.js";
import { apiError } from "../src/rpc/errors.js";

/** The ErrorDetail a translation failure carries, as every door reports it. */
function failure(fn: () => unknown): { code: string; field: string; connect: Code } {
  try {
    fn();
  } catch (err) {
    const { body } = httpErrorOf(err, 0);
    return { code: body.error_code, field: body.field ?? "", connect: ConnectError.from(err).code };
  }
  throw new Error("expected a failure");
}

describe("JSON input → protobuf (type translation only)", () => {
  it("reads the document's config fields and leaves absent ones unset", () => {
    const c = configFromJson({ fps_limit: 15, confidence_threshold: 0.6, enable_tracking: true, classes: ["pothole"], quality: "fast" });
    expect(c.fpsLimit).toBe(15);
    expect(c.confidenceThreshold).toBe(0.6);
    expect(c.enableTracking).toBe(true);
    expect(c.classFilter?.classNames).toEqual(["pothole"]);
    expect(c.quality).toBe(3);
    expect(c.iouThreshold).toBeUndefined();
    expect(c.maxDetections).toBeUndefined();
    expect(configFromJson(undefined).fpsLimit).toBeUndefined();
  });

  it("passes values of the right type through unvalidated: ranges are the service's call", () => {
    expect(configFromJson({ fps_limit: 0, confidence_threshold: 7 })).toMatchObject({ fpsLimit: 0, confidenceThreshold: 7 });
  });

  it.each([
    [{ fps_limit: "fast" }, "fps_limit"],
    [{ fps_limit: 1.5 }, "fps_limit"],
    [{ max_detections: -1 }, "max_detections"],
    [{ confidence_threshold: "0.5" }, "confidence_threshold"],
    [{ enable_tracking: "yes" }, "enable_tracking"],
    [{ classes: "pothole" }, "classes"],
    [{ classes: [1] }, "classes"],
    [{ quality: "ultra" }, "quality"],
    [{ fps_limt: 15 }, "fps_limt"],
  ])("refuses %j as INVALID_CONFIG naming %s", (json, field) => {
    expect(failure(() => configFromJson(json))).toEqual({ code: "INVALID_CONFIG", field, connect: Code.InvalidArgument });
  });

  it("reads config from a query string: numbers, booleans, comma lists", () => {
    const json = configJsonFromQuery(new URLSearchParams("fps_limit=15&enable_tracking=false&classes=pothole,crack&iou_threshold=0.5"));
    expect(json).toEqual({ fps_limit: 15, enable_tracking: false, classes: ["pothole", "crack"], iou_threshold: 0.5 });
    expect(failure(() => configFromJson(configJsonFromQuery(new URLSearchParams("fps_limit=abc"))))).toMatchObject({
      code: "INVALID_CONFIG",
      field: "fps_limit",
    });
  });

  it("decodes the document's frame JSON", () => {
    const f = frameFromJson({ image_data: Buffer.from("abc").toString("base64"), frame_id: "f1", timestamp: 1641234567.123, metadata: { lat: 1 } });
    expect(Buffer.from(f.imageData).toString()).toBe("abc");
    expect(f.frameId).toBe("f1");
    expect(f.timestamp).toBe(1641234567.123);
    expect(f.metadata).toEqual({ lat: 1 });
  });

  it("accepts standard, URL-safe, unpadded, line-wrapped base64 and data URLs", () => {
    const bytes = Buffer.from([0xfb, 0xff, 0xfe, 0x01, 0x02]);
    for (const text of [
      bytes.toString("base64"),
      bytes.toString("base64url"),
      bytes.toString("base64").replace(/=+$/, ""),
      `data:image/jpeg;base64,${bytes.toString("base64")}`,
      bytes.toString("base64").replace(/(.{4})/g, "$1\n"),
    ]) {
      expect(Buffer.from(decodeBase64("image_data", text))).toEqual(bytes);
    }
  });

  it.each([
    ["", ""],
    ["QQ", "41"],
    ["QQ=", "41"],
    ["QQ= =\n", "41"],
    [" Q U J D ", "414243"],
    ["\tQUJD\r\n\fQUJD", "414243414243"],
    ["-_-_", "fbffbf"],
    ["+/+/", "fbffbf"],
  ])("decodes %j to %s", (text, hex) => {
    expect(Buffer.from(decodeBase64("image_data", text)).toString("hex")).toBe(hex);
  });

  it.each(["not base64!", "abc*", "A", "AAAA=AAA", "AB+_", "QQ===", "QUJD\u00e9", "QUJ\u0141", "QQ\u0000=", "AAAAA", "=QQ"])("refuses %j as INVALID_MESSAGE (Buffer.from would have guessed)", (text) => {
    expect(failure(() => decodeBase64("image_data", text))).toMatchObject({ code: "INVALID_MESSAGE", field: "image_data" });
  });

  it.each([
    [{ frame_id: 12 }, "frame_id"],
    [{ timestamp: "now" }, "timestamp"],
    [{ metadata: [1, 2] }, "metadata"],
    [{ image_data: 42 }, "image_data"],
  ])("refuses the frame %j as INVALID_MESSAGE naming %s", (json, field) => {
    expect(failure(() => frameFromJson(json))).toMatchObject({ code: "INVALID_MESSAGE", field });
  });

  it("reports malformed JSON as INVALID_MESSAGE", () => {
    expect(failure(() => parseJson("{not json"))).toMatchObject({ code: "INVALID_MESSAGE" });
  });
});

describe("protobuf → the document's JSON", () => {
  // float32 cannot hold 290.54; this is what arrives after a binary round trip.
  const f32 = (v: number) => Math.fround(v);

  it("maps a result to the document's detection format, rounded, with the extras", () => {
    const result = create(DetectionResultSchema, {
      frameId: "f1",
      detections: [
        create(DetectionSchema, {
          bbox: create(BoundingBoxSchema, { x1: f32(290.54), y1: f32(299.4), x2: f32(446.27), y2: f32(408.76) }),
          confidence: f32(0.818_734),
          classId: 1,
          className: "pothole",
          trackId: 7,
          trackConfirmed: true,
        }),
        create(DetectionSchema, { bbox: create(BoundingBoxSchema, { x1: 0, y1: 0, x2: 10, y2: 5 }), confidence: 0.5, className: "crack" }),
      ],
      processingTimeMs: 45.234_567,
      timestamp: 1641234567.123,
      imageWidth: 640,
      imageHeight: 480,
      configVersion: 2,
      inputWidth: 640,
      inputHeight: 640,
      metadata: { camera: "front" },
    });
    const json = detectionResultJson(result);
    expect(json).toEqual({
      type: "detection_result",
      data: {
        frame_id: "f1",
        detections: [
          {
            bbox: [290.5, 299.4, 446.3, 408.8],
            confidence: 0.8187,
            class_id: 1,
            class_name: "pothole",
            center_x: 368.4,
            center_y: 354.1,
            width: 155.7,
            height: 109.4,
            area: 17030.6,
            track_id: 7,
            track_confirmed: true,
          },
          { bbox: [0, 0, 10, 5], confidence: 0.5, class_id: 0, class_name: "crack", center_x: 5, center_y: 2.5, width: 10, height: 5, area: 50 },
        ],
        processing_time_ms: 45.23,
        timestamp: 1641234567.123,
        image_width: 640,
        image_height: 480,
        config_version: 2,
        input_size: [640, 640],
        metadata: { camera: "front" },
      },
    });
    // Plain JSON: no protobuf internals, no bigints.
    expect(JSON.stringify(json)).not.toContain("$typeName");
  });

  it("writes the effective config and the session's endpoints in snake_case", () => {
    const session = create(SessionSchema, {
      clientId: "abc",
      configVersion: 1,
      door: Door.SESSION_API,
      config: create(SessionConfigSchema, {
        fpsLimit: 15,
        confidenceThreshold: 0.6,
        iouThreshold: 0.7,
        enableTracking: true,
        maxDetections: 300,
        classFilter: create(ClassFilterSchema, { classNames: [] }),
      }),
    });
    expect(sessionJson(session)).toMatchObject({
      client_id: "abc",
      session_id: "abc",
      sse_endpoint: "/stream/events/abc",
      upload_endpoint: "/stream/process/abc",
      config: { fps_limit: 15, confidence_threshold: 0.6, iou_threshold: 0.7, enable_tracking: true, max_detections: 300, classes: [] },
      door: "SESSION_API",
    });
  });

  it("writes SSE events with their id, keepalives as comments", () => {
    const dropped = create(WatchSessionResponseSchema, {
      eventId: 42n,
      event: { case: "dropped", value: create(FrameDroppedSchema, { frameId: "f9", reason: DropReason.FPS_LIMIT }) },
    });
    expect(sseChunk(dropped)).toBe('id: 42\ndata: {"type":"frame_dropped","frame_id":"f9","reason":"FPS_LIMIT"}\n\n');
    const keepalive = create(WatchSessionResponseSchema, { event: { case: "keepalive", value: create(KeepaliveSchema) } });
    expect(sseChunk(keepalive)).toBe(": keepalive\n\n");
    const unnumbered = create(WatchSessionResponseSchema, { event: { case: "ended", value: create(SessionEndedSchema, { reason: EndReason.DELETED }) } });
    expect(sseChunk(unnumbered)).toBe('data: {"type":"session_ended","reason":"DELETED"}\n\n');
  });
});

describe("Connect errors → HTTP status and the document's error JSON", () => {
  it.each([
    [ErrorCode.INVALID_IMAGE, 400],
    [ErrorCode.INVALID_CONFIG, 400],
    [ErrorCode.INVALID_MESSAGE, 400],
    [ErrorCode.SESSION_NOT_FOUND, 404],
    [ErrorCode.MESSAGE_TOO_LARGE, 413],
    [ErrorCode.RATE_LIMITED, 429],
    [ErrorCode.RESOURCE_EXHAUSTED, 429],
    [ErrorCode.SERVICE_UNAVAILABLE, 503],
    [ErrorCode.UNAUTHENTICATED, 401],
    [ErrorCode.INFERENCE_ERROR, 500],
    [ErrorCode.INTERNAL, 500],
  ])("ErrorCode %s → %s", (code, status) => {
    const { status: got, body } = httpErrorOf(apiError(code, "boom", { frameId: "f1", field: "x" }), 1_641_234_567_123);
    expect(got).toBe(status);
    expect(body).toEqual({ type: "error", error: "boom", error_code: ErrorCode[code], frame_id: "f1", timestamp: 1641234567.123, field: "x" });
  });

  it.each([
    [Code.AlreadyExists, 409, "INTERNAL"],
    [Code.FailedPrecondition, 409, "INTERNAL"],
    [Code.Unavailable, 503, "SERVICE_UNAVAILABLE"],
    [Code.Unauthenticated, 401, "UNAUTHENTICATED"],
    [Code.ResourceExhausted, 413, "MESSAGE_TOO_LARGE"],
    [Code.NotFound, 404, "SESSION_NOT_FOUND"],
  ])("a Connect error without detail, code %s → %s %s", (code, status, errorCode) => {
    const { status: got, body } = httpErrorOf(new ConnectError("m", code), 0, "f2");
    expect([got, body.error_code, body.frame_id]).toEqual([status, errorCode, "f2"]);
  });

  it("never shows the message of an unexpected error", () => {
    const { status, body } = httpErrorOf(new Error("ENOENT /secret/path"), 0);
    expect(status).toBe(500);
    expect(body.error).toBe("internal error");
    expect(body.error_code).toBe("INTERNAL");
  });
});
