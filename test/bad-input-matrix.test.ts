import { create, fromBinary, toBinary, type JsonObject } from "@bufbuild/protobuf";
import { ConnectError, createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DetectionService,
  DetectRequestSchema,
  StreamDetectionsRequestSchema,
  StreamStartSchema,
  type StreamDetectionsRequest,
  type StreamDetectionsResponse,
} from "../gen/hazard/stream/v1/detection_service_pb.js";
import { Door as SessionDoor } from "../gen/hazard/stream/v1/session_pb.js";
import { SessionService } from "../gen/hazard/stream/v1/session_service_pb.js";
import { ErrorCode, ErrorDetailSchema, FrameSchema, type Frame } from "../gen/hazard/stream/v1/types_pb.js";
import { RequestStream as PushStream } from "../src/http/request-stream.js";
import { StreamReader } from "./support/async-queue.js";
import { eventually, RawSse, WsClient, type Json } from "./support/http-clients.js";
import { hugePng, sceneJpeg } from "./support/images.js";
import {
  deepJson,
  deepStructBytes,
  DETECT,
  describeRpcError,
  envelope,
  lenField,
  rawConnectUnary,
  rawGrpcWeb,
  rawH2,
  STREAM,
  streamResponses,
  varintField,
} from "./support/raw-rpc.js";
import { startServer, type TestServer } from "./support/server.js";

/**
 * Every door against every bad input (issue #9, "Hardening"): the exact error each door answers
 * with, and that the server then serves a good frame — on the same stream, session or connection
 * where the protocol lets it survive ("same …"), on a new one where the protocol ends the call
 * ("new …"). The table below is the contract; it is printed as markdown at the end of the run.
 *
 * Outcomes are written as the client sees them:
 *   RPC doors       `Code ERROR_CODE(field)` (ConnectError code + ErrorDetail; `—` = no detail)
 *   bidi streams    `error ERROR_CODE(field)` (a FrameError; the stream goes on) or an RPC error
 *   REST            `status ERROR_CODE(field)` (the document's error JSON) or `202`
 *   SSE             what the session's SSE stream shows for that frame: `error …`, or `nothing`
 *   WebSocket       `error ERROR_CODE(field)`, `close N` when the connection is closed
 * A frame error names the frame it is about (checked for every row), except an over-long
 * frame_id, which is not echoed.
 */

const MAX_FRAME_BYTES = 200_000;
// The limits the server derives from MAX_FRAME_BYTES (server.ts, http-config.ts).
const READ_MAX_BYTES = Math.ceil(MAX_FRAME_BYTES * 1.5) + 64 * 1024;
const JSON_MAX_BYTES = Math.ceil((MAX_FRAME_BYTES * 4) / 3) + 64 * 1024;
const API_KEY = "matrix-key-0123456789abcdef";
const ENV = {
  MODEL_PATH: "models/road-hazard-filter.onnx",
  MAX_FRAME_BYTES: String(MAX_FRAME_BYTES),
  // Frames here come back to back; rate limits are not what this file is about.
  STREAMING_MAX_FPS: "240",
  STREAMING_DEFAULT_FPS: "240",
};

type Door = "gRPC" | "Connect" | "Connect stream" | "gRPC-Web" | "REST" | "SSE" | "WS JSON" | "WS binary";
type Input =
  | "empty frame"
  | "truncated JPEG"
  | "not an image (text)"
  | "wrong type (number for string)"
  | "frame over MAX_FRAME_BYTES"
  | "message over the message limit"
  | "message over twice the WS limit"
  | "decompression bomb (20000×20000 PNG)"
  | "malformed JSON"
  | "malformed protobuf"
  | "invalid base64"
  | "unknown client_id"
  | "wrong API key"
  | "frame_id of 100 KB"
  | "metadata nested 40 deep"
  | "metadata of 70 KB"
  | "metadata nested 10000 deep"
  | "empty / unknown message"
  | "10000 unknown fields";
type Then = "same stream" | "new stream" | "new call" | "same session" | "same connection" | "new connection";
type Cell = readonly [outcome: string, then: Then];

/**
 * Metadata the service will not hold (too deep, too large): refused on every door that can carry it;
 * the REST door checks it while parsing the upload, so its SSE stream sees nothing.
 */
const METADATA_REFUSED: Partial<Record<Door, Cell>> = {
  gRPC: ["error INVALID_MESSAGE(metadata)", "same stream"],
  "Connect stream": ["error INVALID_MESSAGE(metadata)", "same stream"],
  Connect: ["InvalidArgument INVALID_MESSAGE(metadata)", "new call"],
  "gRPC-Web": ["InvalidArgument INVALID_MESSAGE(metadata)", "new call"],
  REST: ["400 INVALID_MESSAGE(metadata)", "same session"],
  SSE: ["nothing", "same stream"],
  "WS JSON": ["error INVALID_MESSAGE(metadata)", "same connection"],
};

/** The contract. Doors missing from a row cannot express that input (e.g. base64 on a binary door). */
const MATRIX: Record<Input, Partial<Record<Door, Cell>>> = {
  "empty frame": {
    gRPC: ["error INVALID_IMAGE(image_data)", "same stream"],
    "Connect stream": ["error INVALID_IMAGE(image_data)", "same stream"],
    Connect: ["InvalidArgument INVALID_IMAGE(image_data)", "new call"],
    "gRPC-Web": ["InvalidArgument INVALID_IMAGE(image_data)", "new call"],
    REST: ["400 INVALID_IMAGE(image_data)", "same session"],
    SSE: ["error INVALID_IMAGE(image_data)", "same stream"],
    "WS JSON": ["error INVALID_IMAGE(image_data)", "same connection"],
    "WS binary": ["error INVALID_IMAGE(image_data)", "same connection"],
  },
  "truncated JPEG": {
    gRPC: ["error INVALID_IMAGE(image_data)", "same stream"],
    "Connect stream": ["error INVALID_IMAGE(image_data)", "same stream"],
    Connect: ["InvalidArgument INVALID_IMAGE(image_data)", "new call"],
    "gRPC-Web": ["InvalidArgument INVALID_IMAGE(image_data)", "new call"],
    // Accepted: images are decoded when processed; the error arrives on SSE.
    REST: ["202", "same session"],
    SSE: ["error INVALID_IMAGE(image_data)", "same stream"],
    "WS JSON": ["error INVALID_IMAGE(image_data)", "same connection"],
    "WS binary": ["error INVALID_IMAGE(image_data)", "same connection"],
  },
  "not an image (text)": {
    gRPC: ["error INVALID_IMAGE(image_data)", "same stream"],
    "Connect stream": ["error INVALID_IMAGE(image_data)", "same stream"],
    Connect: ["InvalidArgument INVALID_IMAGE(image_data)", "new call"],
    "gRPC-Web": ["InvalidArgument INVALID_IMAGE(image_data)", "new call"],
    REST: ["202", "same session"],
    SSE: ["error INVALID_IMAGE(image_data)", "same stream"],
    "WS JSON": ["error INVALID_IMAGE(image_data)", "same connection"],
    "WS binary": ["error INVALID_IMAGE(image_data)", "same connection"],
  },
  "wrong type (number for string)": {
    // Binary doors: frame_id (a string) sent as a varint. protobuf's decoder fails the message, and
    // with it the call; a stream answers the frames sent before it first.
    gRPC: ["InvalidArgument INVALID_MESSAGE", "new stream"],
    "Connect stream": ["InvalidArgument INVALID_MESSAGE", "new stream"],
    // Unary: decode errors are Connect's own (no ErrorDetail); gRPC-Web follows gRPC's convention
    // of INTERNAL for a message that does not parse. JSON doors: `"frame_id": 12`.
    Connect: ["InvalidArgument —", "new call"],
    "gRPC-Web": ["Internal —", "new call"],
    REST: ["400 INVALID_MESSAGE(frame_id)", "same session"],
    SSE: ["nothing", "same stream"],
    "WS JSON": ["error INVALID_MESSAGE(frame_id)", "same connection"],
  },
  "frame over MAX_FRAME_BYTES": {
    gRPC: ["error MESSAGE_TOO_LARGE(image_data)", "same stream"],
    "Connect stream": ["error MESSAGE_TOO_LARGE(image_data)", "same stream"],
    Connect: ["ResourceExhausted MESSAGE_TOO_LARGE(image_data)", "new call"],
    "gRPC-Web": ["ResourceExhausted MESSAGE_TOO_LARGE(image_data)", "new call"],
    REST: ["413 MESSAGE_TOO_LARGE(image_data)", "same session"],
    SSE: ["error MESSAGE_TOO_LARGE(image_data)", "same stream"],
    "WS JSON": ["error MESSAGE_TOO_LARGE(image_data)", "same connection"],
    "WS binary": ["error MESSAGE_TOO_LARGE(image_data)", "same connection"],
  },
  "message over the message limit": {
    // Over readMaxBytes the message cannot be read at all: the call ends.
    gRPC: ["ResourceExhausted MESSAGE_TOO_LARGE", "new stream"],
    "Connect stream": ["ResourceExhausted MESSAGE_TOO_LARGE", "new stream"],
    Connect: ["ResourceExhausted —", "new call"],
    "gRPC-Web": ["ResourceExhausted —", "new call"],
    REST: ["413 MESSAGE_TOO_LARGE", "same session"],
    SSE: ["nothing", "same stream"],
    "WS JSON": ["error MESSAGE_TOO_LARGE", "same connection"],
    "WS binary": ["error MESSAGE_TOO_LARGE", "same connection"],
  },
  "message over twice the WS limit": {
    "WS JSON": ["close 1009", "new connection"],
    "WS binary": ["close 1009", "new connection"],
  },
  "decompression bomb (20000×20000 PNG)": {
    gRPC: ["error INVALID_IMAGE(image_data)", "same stream"],
    "Connect stream": ["error INVALID_IMAGE(image_data)", "same stream"],
    Connect: ["InvalidArgument INVALID_IMAGE(image_data)", "new call"],
    "gRPC-Web": ["InvalidArgument INVALID_IMAGE(image_data)", "new call"],
    REST: ["202", "same session"],
    SSE: ["error INVALID_IMAGE(image_data)", "same stream"],
    "WS JSON": ["error INVALID_IMAGE(image_data)", "same connection"],
    "WS binary": ["error INVALID_IMAGE(image_data)", "same connection"],
  },
  "malformed JSON": {
    // gRPC and gRPC-Web with their +json codecs; Connect with application/json.
    gRPC: ["InvalidArgument INVALID_MESSAGE", "new stream"],
    "Connect stream": ["InvalidArgument INVALID_MESSAGE", "new stream"],
    Connect: ["InvalidArgument —", "new call"],
    "gRPC-Web": ["InvalidArgument —", "new call"],
    REST: ["400 INVALID_MESSAGE", "same session"],
    SSE: ["nothing", "same stream"],
    "WS JSON": ["error INVALID_MESSAGE", "same connection"],
  },
  "malformed protobuf": {
    gRPC: ["InvalidArgument INVALID_MESSAGE", "new stream"],
    "Connect stream": ["InvalidArgument INVALID_MESSAGE", "new stream"],
    // Unary: connect-node reports a binary message that does not parse as INTERNAL (gRPC's
    // convention), a JSON one as INVALID_ARGUMENT; neither carries an ErrorDetail.
    Connect: ["Internal —", "new call"],
    "gRPC-Web": ["Internal —", "new call"],
  },
  "invalid base64": {
    Connect: ["InvalidArgument —", "new call"],
    "gRPC-Web": ["InvalidArgument —", "new call"],
    REST: ["400 INVALID_MESSAGE(image_data)", "same session"],
    SSE: ["nothing", "same stream"],
    "WS JSON": ["error INVALID_MESSAGE(image_data)", "same connection"],
  },
  "unknown client_id": {
    // StreamStart.client_id; SessionService.SubmitFrame on the unary doors; ?client_id= on WS.
    gRPC: ["NotFound SESSION_NOT_FOUND", "new stream"],
    "Connect stream": ["NotFound SESSION_NOT_FOUND", "new stream"],
    Connect: ["NotFound SESSION_NOT_FOUND", "new call"],
    "gRPC-Web": ["NotFound SESSION_NOT_FOUND", "new call"],
    REST: ["404 SESSION_NOT_FOUND", "same session"],
    SSE: ["404 SESSION_NOT_FOUND", "new stream"],
    "WS JSON": ["error SESSION_NOT_FOUND + close 1008", "new connection"],
  },
  "wrong API key": {
    gRPC: ["Unauthenticated UNAUTHENTICATED", "new stream"],
    "Connect stream": ["Unauthenticated UNAUTHENTICATED", "new stream"],
    Connect: ["Unauthenticated UNAUTHENTICATED", "new call"],
    "gRPC-Web": ["Unauthenticated UNAUTHENTICATED", "new call"],
    REST: ["401 UNAUTHENTICATED", "new call"],
    SSE: ["401 UNAUTHENTICATED", "new stream"],
    "WS JSON": ["error UNAUTHENTICATED + close 1008", "new connection"],
  },
  "frame_id of 100 KB": {
    gRPC: ["error INVALID_MESSAGE(frame_id)", "same stream"],
    "Connect stream": ["error INVALID_MESSAGE(frame_id)", "same stream"],
    Connect: ["InvalidArgument INVALID_MESSAGE(frame_id)", "new call"],
    "gRPC-Web": ["InvalidArgument INVALID_MESSAGE(frame_id)", "new call"],
    REST: ["400 INVALID_MESSAGE(frame_id)", "same session"],
    SSE: ["error INVALID_MESSAGE(frame_id)", "same stream"],
    "WS JSON": ["error INVALID_MESSAGE(frame_id)", "same connection"],
  },
  "metadata nested 40 deep": METADATA_REFUSED,
  // Over MAX_METADATA_BYTES (64 KiB as JSON): results echo metadata, so the replay window and every
  // watcher would hold it.
  "metadata of 70 KB": METADATA_REFUSED,
  "metadata nested 10000 deep": {
    // Past protobuf's own recursion limit (100 message levels): the message does not decode (JSON
    // with Connect and gRPC-Web). The JSON doors' parser gives up on it as malformed JSON.
    gRPC: ["InvalidArgument INVALID_MESSAGE", "new stream"],
    "Connect stream": ["InvalidArgument INVALID_MESSAGE", "new stream"],
    Connect: ["InvalidArgument —", "new call"],
    "gRPC-Web": ["InvalidArgument —", "new call"],
    REST: ["400 INVALID_MESSAGE", "same session"],
    SSE: ["nothing", "same stream"],
    "WS JSON": ["error INVALID_MESSAGE", "same connection"],
  },
  "empty / unknown message": {
    // A request with no oneof case / a DetectRequest without a frame / {"type":"bogus"}.
    gRPC: ["error INVALID_MESSAGE(message)", "same stream"],
    "Connect stream": ["error INVALID_MESSAGE(message)", "same stream"],
    Connect: ["InvalidArgument INVALID_MESSAGE(frame)", "new call"],
    "gRPC-Web": ["InvalidArgument INVALID_MESSAGE(frame)", "new call"],
    "WS JSON": ["error INVALID_MESSAGE(type)", "same connection"],
  },
  "10000 unknown fields": {
    // Ignored, as protobuf and the document's JSON routes ignore unknown fields.
    gRPC: ["result", "same stream"],
    "Connect stream": ["result", "same stream"],
    Connect: ["result", "new call"],
    "gRPC-Web": ["result", "new call"],
    REST: ["202", "same session"],
    SSE: ["result", "same stream"],
    "WS JSON": ["result", "same connection"],
  },
};

const LONG_ID = "y".repeat(100_000);
const BIG_METADATA = { camera: "front", pad: "m".repeat(70_000) };
/** Longer than a frame interval at 240 FPS: a good frame right after a bad one must not be dropped by the FPS limit. */
const pace = () => new Promise((r) => setTimeout(r, 25));
const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");
/** `{"a":{"a":…{}}}`, `depth` objects deep. */
function nested(depth: number): JsonObject {
  let v: JsonObject = {};
  for (let i = 1; i < depth; i++) v = { a: v };
  return v;
}
const manyFieldsJson = () => Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`x${i}`, i]));
/** A Frame carrying 10000 fields the schema does not know (numbers 1000+), kept as unknown fields. */
function frameWithUnknownFields(imageData: Uint8Array, frameId: string): Frame {
  const extra = Buffer.concat(Array.from({ length: 10_000 }, (_, i) => varintField(1000 + i, i)));
  return fromBinary(FrameSchema, Buffer.concat([lenField(1, imageData), lenField(2, Buffer.from(frameId)), extra]));
}
/** Frame bytes whose frame_id (field 2, a string) is sent as a varint. */
const wrongWireFrame = (imageData: Uint8Array) => Buffer.concat([lenField(1, imageData), varintField(2, 12)]);
const MALFORMED = Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2]);

function errorText(e: Json): string {
  return `error ${String(e.error_code)}${e.field ? `(${String(e.field)})` : ""}`;
}

describe("bad input × door matrix (real server, real clients)", () => {
  let server: TestServer;
  let keyed: TestServer;
  let jpeg: Uint8Array;
  let frames: Record<"truncated" | "text" | "bomb" | "overFrame" | "overMessage" | "wayOver", Uint8Array>;
  const seen: Array<{ input: Input; door: Door; cell: Cell }> = [];

  beforeAll(async () => {
    server = await startServer(ENV);
    keyed = await startServer({ ...ENV, STREAMING_API_KEYS: API_KEY });
    jpeg = (await sceneJpeg(3)).bytes;
    frames = {
      truncated: jpeg.subarray(0, Math.floor(jpeg.length / 2)),
      text: new TextEncoder().encode("this is a text file, not an image\n"),
      bomb: hugePng(),
      overFrame: new Uint8Array(MAX_FRAME_BYTES + 10_000),
      overMessage: new Uint8Array(READ_MAX_BYTES + 10_000),
      wayOver: new Uint8Array(JSON_MAX_BYTES * 2 + 10_000),
    };
  });
  afterAll(async () => {
    await Promise.all([server?.close(), keyed?.close()]);
    const doors: Door[] = ["gRPC", "Connect stream", "Connect", "gRPC-Web", "REST", "SSE", "WS JSON", "WS binary"];
    const lines = [`| input | ${doors.join(" | ")} |`, `| --- |${" --- |".repeat(doors.length)}`];
    for (const input of Object.keys(MATRIX) as Input[]) {
      const cells = doors.map((d) => {
        const hit = seen.find((s) => s.input === input && s.door === d);
        return hit ? `${hit.cell[0]} → ${hit.cell[1]}` : MATRIX[input][d] ? "(failed)" : "n/a";
      });
      lines.push(`| ${input} | ${cells.join(" | ")} |`);
    }
    console.log(`\nbad-input matrix (outcome → where the next good frame is served):\n${lines.join("\n")}\n`);
  });

  const frameMsg = (frame: Frame): StreamDetectionsRequest => create(StreamDetectionsRequestSchema, { message: { case: "frame", value: frame } });
  const frame = (imageData: Uint8Array, frameId: string, init: Partial<Pick<Frame, "metadata">> = {}) =>
    create(FrameSchema, { imageData, frameId, ...init });
  const keyHeader = (key: string) => ({ "x-api-key": key });

  // --- bidi streams (gRPC and Connect over h2) -----------------------------------------------------

  const isOutcome = (m: StreamDetectionsResponse) => m.message.case === "result" || m.message.case === "error" || m.message.case === "dropped";
  const outcomeId = (m: StreamDetectionsResponse) =>
    m.message.case === "result" || m.message.case === "error" || m.message.case === "dropped" ? m.message.value.frameId : undefined;

  /** A good frame on a stream (the given one, or a new one) is answered with a result. */
  async function goodOnStream(requests: PushStream<StreamDetectionsRequest>, reader: StreamReader<StreamDetectionsResponse>): Promise<void> {
    await pace();
    requests.push(frameMsg(frame(jpeg, "good")));
    const out = (await reader.until((m) => outcomeId(m) === "good")).at(-1);
    expect(out?.message.case).toBe("result");
    requests.end();
    for (let m = await reader.next(); m !== undefined; m = await reader.next()) expect(m.message.case).not.toBe("error");
  }

  function bidiClient(door: Door, srv = server, headers?: Record<string, string>): Client<typeof DetectionService> {
    const transport: Transport =
      door === "gRPC"
        ? createGrpcTransport({ baseUrl: srv.baseUrl, interceptors: headers ? [withHeaders(headers)] : [] })
        : createConnectTransport({ baseUrl: srv.baseUrl, httpVersion: "2", interceptors: headers ? [withHeaders(headers)] : [] });
    return createClient(DetectionService, transport);
  }

  /** Sends `request` on a new stream; the outcome is the frame error it draws, or the error ending the stream. */
  async function bidiRow(door: Door, request: StreamDetectionsRequest | StreamDetectionsRequest[], sentId?: string): Promise<Cell> {
    const requests = new PushStream<StreamDetectionsRequest>();
    const reader = new StreamReader(bidiClient(door).streamDetections(requests));
    for (const r of Array.isArray(request) ? request : [request]) requests.push(r);
    let m: StreamDetectionsResponse | undefined;
    try {
      do m = await reader.next();
      while (m !== undefined && !isOutcome(m));
    } catch (err) {
      requests.end();
      await goodOnNewStream(door);
      return [describeRpcError(ConnectError.from(err)), "new stream"];
    }
    if (m === undefined) throw new Error("the stream ended without an answer or an error");
    if (m.message.case === "error") {
      const e = m.message.value;
      expect(e.frameId, "the error names the frame (an over-long id is not echoed)").toBe(sentId === undefined || sentId.length > 256 ? "" : sentId);
      await goodOnStream(requests, reader);
      return [`error ${ErrorCode[e.code]}${e.field ? `(${e.field})` : ""}`, "same stream"];
    }
    await goodOnStream(requests, reader);
    return [String(m.message.case), "same stream"];
  }

  async function goodOnNewStream(door: Door, srv = server, headers?: Record<string, string>): Promise<void> {
    const requests = new PushStream<StreamDetectionsRequest>();
    await goodOnStream(requests, new StreamReader(bidiClient(door, srv, headers).streamDetections(requests)));
  }

  /**
   * A hand-made request stream: a good frame, then `bad`. The stream opened (its session came
   * first), then fails with the reason — not a clean end, which would tell the client its frames
   * were all answered. (connect-node aborts the call once the request body fails, so the good
   * frame, still in flight, may go unanswered.)
   */
  async function rawBidiRow(door: Door, bad: Buffer, contentType?: string): Promise<Cell> {
    const pre = toBinary(StreamDetectionsRequestSchema, frameMsg(frame(jpeg, "pre")));
    const type = contentType ?? (door === "gRPC" ? "application/grpc" : "application/connect+proto");
    const body = contentType?.includes("json") ? envelope(bad) : Buffer.concat([envelope(pre), envelope(bad)]);
    const answer = await rawH2(server.baseUrl, STREAM, type, body);
    if (!contentType?.includes("json")) expect(streamResponses(answer)[0]?.message.case, "the stream was open").toBe("session");
    expect(answer.error, "the call fails").toBeDefined();
    await goodOnNewStream(door);
    return [answer.error ? describeRpcError(answer.error) : "OK", "new stream"];
  }

  const streamReq = (f: Buffer) => lenField(1, f); // StreamDetectionsRequest.frame

  async function bidi(door: Door, input: Input): Promise<Cell> {
    switch (input) {
      case "empty frame":
        return bidiRow(door, frameMsg(frame(new Uint8Array(), "bad")), "bad");
      case "truncated JPEG":
        return bidiRow(door, frameMsg(frame(frames.truncated, "bad")), "bad");
      case "not an image (text)":
        return bidiRow(door, frameMsg(frame(frames.text, "bad")), "bad");
      case "decompression bomb (20000×20000 PNG)":
        return bidiRow(door, frameMsg(frame(frames.bomb, "bad")), "bad");
      case "frame over MAX_FRAME_BYTES":
        return bidiRow(door, frameMsg(frame(frames.overFrame, "bad")), "bad");
      case "message over the message limit":
        return bidiRow(door, frameMsg(frame(frames.overMessage, "bad")), "bad");
      case "frame_id of 100 KB":
        return bidiRow(door, frameMsg(frame(jpeg, LONG_ID)), LONG_ID);
      case "metadata nested 40 deep":
        return bidiRow(door, frameMsg(frame(jpeg, "bad", { metadata: nested(40) })), "bad");
      case "metadata of 70 KB":
        return bidiRow(door, frameMsg(frame(jpeg, "bad", { metadata: BIG_METADATA })), "bad");
      case "empty / unknown message":
        return bidiRow(door, create(StreamDetectionsRequestSchema, {}), "");
      case "10000 unknown fields":
        return bidiRow(door, frameMsg(frameWithUnknownFields(jpeg, "bad")), "bad");
      case "unknown client_id":
        return bidiRow(door, create(StreamDetectionsRequestSchema, { message: { case: "start", value: create(StreamStartSchema, { clientId: "nope" }) } }));
      case "wrong type (number for string)":
        return rawBidiRow(door, streamReq(wrongWireFrame(jpeg)));
      case "malformed protobuf":
        return rawBidiRow(door, MALFORMED);
      case "metadata nested 10000 deep":
        return rawBidiRow(door, streamReq(Buffer.concat([lenField(1, jpeg), lenField(4, deepStructBytes(10_000))])));
      case "malformed JSON":
        return rawBidiRow(door, Buffer.from("{not json"), door === "gRPC" ? "application/grpc+json" : "application/connect+json");
      case "wrong API key": {
        const requests = new PushStream<StreamDetectionsRequest>();
        const reader = new StreamReader(bidiClient(door, keyed, keyHeader("not-the-key-0123456789")).streamDetections(requests));
        requests.push(frameMsg(frame(jpeg, "bad")));
        const err = await reader.next().then(() => undefined, (e: unknown) => ConnectError.from(e));
        requests.end();
        await goodOnNewStream(door, keyed, keyHeader(API_KEY));
        return [err ? describeRpcError(err) : "OK", "new stream"];
      }
      default:
        throw new Error(`no ${door} case for ${input}`);
    }
  }

  // --- unary Detect (Connect and gRPC-Web over HTTP/1.1) ----------------------------------------------

  function unaryTransport(door: Door, srv = server, headers?: Record<string, string>): Transport {
    const interceptors = headers ? [withHeaders(headers)] : [];
    return door === "Connect"
      ? createConnectTransport({ baseUrl: srv.baseUrl, httpVersion: "1.1", interceptors })
      : createGrpcWebTransport({ baseUrl: srv.baseUrl, httpVersion: "1.1", interceptors });
  }

  /** The outcome of one Detect, then a good Detect on the same client (a new call, same keep-alive connection). */
  async function unaryRow(door: Door, call: () => Promise<unknown>, sentId?: string, srv = server, goodHeaders?: Record<string, string>): Promise<Cell> {
    let outcome: string;
    try {
      await call();
      outcome = "result";
    } catch (e) {
      const err = ConnectError.from(e);
      const detail = err.findDetails(ErrorDetailSchema)[0];
      if (detail?.frameId) expect(detail.frameId).toBe(sentId);
      if (sentId !== undefined && sentId.length > 256) expect(detail?.frameId ?? "").toBe("");
      outcome = describeRpcError(err);
    }
    const client = createClient(DetectionService, unaryTransport(door, srv, goodHeaders));
    const good = await client.detect({ frame: frame(jpeg, "good") });
    expect(good.result?.frameId).toBe("good");
    return [outcome, "new call"];
  }

  async function unary(door: Door, input: Input): Promise<Cell> {
    const client = createClient(DetectionService, unaryTransport(door));
    const detect = (f: Frame) => () => client.detect({ frame: f });
    const raw = (type: string, body: Buffer | string) => () =>
      (door === "Connect" ? rawConnectUnary(server.baseUrl, DETECT, type, body) : rawGrpcWeb(server.baseUrl, DETECT, type, envelope(Buffer.from(body)))).then(
        (a) => {
          if (a.error) throw a.error;
        },
      );
    const protoType = door === "Connect" ? "application/proto" : "application/grpc-web+proto";
    const jsonType = door === "Connect" ? "application/json" : "application/grpc-web+json";
    const imageJson = (extra: string) => `{"frame":{"imageData":"${b64(jpeg)}"${extra}}}`;
    switch (input) {
      case "empty frame":
        return unaryRow(door, detect(frame(new Uint8Array(), "bad")), "bad");
      case "truncated JPEG":
        return unaryRow(door, detect(frame(frames.truncated, "bad")), "bad");
      case "not an image (text)":
        return unaryRow(door, detect(frame(frames.text, "bad")), "bad");
      case "decompression bomb (20000×20000 PNG)":
        return unaryRow(door, detect(frame(frames.bomb, "bad")), "bad");
      case "frame over MAX_FRAME_BYTES":
        return unaryRow(door, detect(frame(frames.overFrame, "bad")), "bad");
      case "message over the message limit":
        return unaryRow(door, detect(frame(frames.overMessage, "bad")), "bad");
      case "frame_id of 100 KB":
        return unaryRow(door, detect(frame(jpeg, LONG_ID)), LONG_ID);
      case "metadata nested 40 deep":
        return unaryRow(door, detect(frame(jpeg, "bad", { metadata: nested(40) })), "bad");
      case "metadata of 70 KB":
        return unaryRow(door, detect(frame(jpeg, "bad", { metadata: BIG_METADATA })), "bad");
      case "10000 unknown fields":
        return unaryRow(door, detect(frameWithUnknownFields(jpeg, "bad")), "bad");
      case "empty / unknown message":
        return unaryRow(door, () => client.detect(create(DetectRequestSchema, {})));
      case "wrong type (number for string)":
        return door === "Connect"
          ? unaryRow(door, raw(jsonType, imageJson(',"frameId":12')))
          : unaryRow(door, raw(protoType, lenField(1, wrongWireFrame(jpeg))));
      case "malformed JSON":
        return unaryRow(door, raw(jsonType, "{not json"));
      case "malformed protobuf":
        return unaryRow(door, raw(protoType, MALFORMED));
      case "invalid base64":
        return unaryRow(door, raw(jsonType, '{"frame":{"imageData":"not base64!"}}'));
      case "metadata nested 10000 deep":
        return unaryRow(door, raw(jsonType, imageJson(`,"metadata":${deepJson(10_000)}`)));
      case "unknown client_id": {
        const sessions = createClient(SessionService, unaryTransport(door));
        return unaryRow(door, () => sessions.submitFrame({ clientId: "nope", frame: frame(jpeg, "bad") }));
      }
      case "wrong API key": {
        const wrong = createClient(DetectionService, unaryTransport(door, keyed, keyHeader("not-the-key-0123456789")));
        return unaryRow(door, () => wrong.detect({ frame: frame(jpeg, "bad") }), undefined, keyed, keyHeader(API_KEY));
      }
      default:
        throw new Error(`no ${door} case for ${input}`);
    }
  }

  // --- REST + SSE (one run yields both columns) --------------------------------------------------------

  interface RestSse {
    rest: Cell;
    sse: Cell;
  }

  async function openSession(srv = server, headers: Record<string, string> = {}): Promise<{ id: string; sse: RawSse }> {
    const res = await fetch(`${srv.baseUrl}/stream/sessions`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: "{}" });
    expect(res.status).toBe(201);
    const id = String(((await res.json()) as Json).client_id);
    const sse = new RawSse(`${srv.baseUrl}/stream/events/${id}`, headers);
    await sse.headersReceived;
    expect(sse.status).toBe(200);
    return { id, sse };
  }

  /** Submits `body`, then a good frame; the SSE column is what the stream shows before the good result. */
  async function restRow(type: string, body: Buffer | string, sentId?: string, query = ""): Promise<RestSse> {
    const { id, sse } = await openSession();
    try {
      const res = await fetch(`${server.baseUrl}/stream/process/${id}${query}`, { method: "POST", headers: { "content-type": type }, body });
      const json = (await res.json()) as Json;
      let rest = String(res.status);
      if (res.status !== 202) {
        expect(json).toMatchObject({ type: "error", error: expect.any(String), timestamp: expect.any(Number) });
        expect(json.frame_id, "an error names the frame it is about, never an over-long id").toBe(
          sentId === undefined || sentId.length > 256 || json.error_code === "MESSAGE_TOO_LARGE" ? json.frame_id : sentId,
        );
        if (sentId !== undefined && sentId.length > 256) expect(json.frame_id).toBeNull();
        rest = `${res.status} ${String(json.error_code)}${json.field ? `(${String(json.field)})` : ""}`;
      }
      await pace();
      const good = await fetch(`${server.baseUrl}/stream/process/${id}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ frame_id: "good", image_data: b64(jpeg) }),
      });
      expect(good.status).toBe(202);
      await sse.waitFor((m) => m.type === "detection_result" && (m.data as Json).frame_id === "good");
      const before = sse.json().filter((m) => m.type === "error" || m.type === "detection_result");
      const first = before[0];
      let shown = "nothing";
      if (first && !(first.type === "detection_result" && (first.data as Json).frame_id === "good")) {
        shown = first.type === "error" ? errorText(first) : "result";
        if (first.type === "error" && sentId !== undefined) expect(first.frame_id).toBe(sentId.length > 256 ? null : sentId);
      }
      return { rest: [rest, "same session"], sse: [shown, "same stream"] };
    } finally {
      sse.close();
      await fetch(`${server.baseUrl}/stream/sessions/${id}`, { method: "DELETE" });
    }
  }

  const restCache = new Map<Input, Promise<RestSse>>();
  function restSse(input: Input): Promise<RestSse> {
    let p = restCache.get(input);
    if (!p) {
      p = restInput(input);
      restCache.set(input, p);
    }
    return p;
  }

  async function restInput(input: Input): Promise<RestSse> {
    const jsonFrame = (fields: Json) => JSON.stringify({ frame_id: "bad", image_data: b64(jpeg), ...fields });
    switch (input) {
      case "empty frame":
        return restRow("application/json", JSON.stringify({ frame_id: "bad" }), "bad");
      case "truncated JPEG":
        return restRow("application/json", jsonFrame({ image_data: b64(frames.truncated) }), "bad");
      case "not an image (text)":
        return restRow("image/jpeg", Buffer.from(frames.text), "bad", "?frame_id=bad");
      case "decompression bomb (20000×20000 PNG)":
        return restRow("image/png", Buffer.from(frames.bomb), "bad", "?frame_id=bad");
      case "frame over MAX_FRAME_BYTES":
        return restRow("image/jpeg", Buffer.from(frames.overFrame), "bad", "?frame_id=bad");
      case "message over the message limit":
        return restRow("application/json", jsonFrame({ image_data: b64(frames.overMessage) }));
      case "wrong type (number for string)":
        return restRow("application/json", jsonFrame({ frame_id: 12 }));
      case "malformed JSON":
        return restRow("application/json", "{not json");
      case "invalid base64":
        return restRow("application/json", jsonFrame({ image_data: "not base64!" }), "bad");
      case "frame_id of 100 KB":
        return restRow("application/json", jsonFrame({ frame_id: LONG_ID }), LONG_ID);
      case "metadata nested 40 deep":
        return restRow("application/json", jsonFrame({ metadata: nested(40) }), "bad");
      case "metadata of 70 KB":
        return restRow("application/json", jsonFrame({ metadata: BIG_METADATA }), "bad");
      case "metadata nested 10000 deep":
        return restRow("application/json", `{"frame_id":"bad","image_data":"${b64(jpeg)}","metadata":${deepJson(10_000)}}`);
      case "10000 unknown fields":
        return restRow("application/json", jsonFrame({ frame_id: "many", ...manyFieldsJson() }));
      case "unknown client_id": {
        const res = await fetch(`${server.baseUrl}/stream/process/nope`, { method: "POST", headers: { "content-type": "image/jpeg" }, body: jpeg });
        const rest = `${res.status} ${String(((await res.json()) as Json).error_code)}`;
        const missing = new RawSse(`${server.baseUrl}/stream/events/nope`);
        await missing.done;
        const sse = `${missing.status} ${missing.status === 404 ? "SESSION_NOT_FOUND" : "?"}`;
        // The same request against a real session, and a new SSE stream on it, then work.
        const ok = await restRow("application/json", JSON.stringify({ frame_id: "pre", image_data: b64(jpeg) }));
        expect(ok.rest[0]).toBe("202");
        return { rest: [rest, "same session"], sse: [sse, "new stream"] };
      }
      case "wrong API key": {
        const wrong = keyHeader("not-the-key-0123456789");
        const created = await fetch(`${keyed.baseUrl}/stream/sessions`, { method: "POST", headers: { "content-type": "application/json", ...keyHeader(API_KEY) }, body: "{}" });
        const id = String(((await created.json()) as Json).client_id);
        const res = await fetch(`${keyed.baseUrl}/stream/process/${id}`, { method: "POST", headers: { "content-type": "image/jpeg", ...wrong }, body: jpeg });
        const body = (await res.json()) as Json;
        const sseWrong = new RawSse(`${keyed.baseUrl}/stream/events/${id}`, wrong);
        await sseWrong.done;
        // With the right key: a new stream on the session, and a frame that reaches it.
        const sse = new RawSse(`${keyed.baseUrl}/stream/events/${id}`, keyHeader(API_KEY));
        await sse.headersReceived;
        const good = await fetch(`${keyed.baseUrl}/stream/process/${id}`, { method: "POST", headers: { "content-type": "image/jpeg", ...keyHeader(API_KEY) }, body: jpeg });
        expect(good.status).toBe(202);
        await sse.waitFor((m) => m.type === "detection_result");
        sse.close();
        return { rest: [`${res.status} ${String(body.error_code)}`, "new call"], sse: [`${sseWrong.status} UNAUTHENTICATED`, "new stream"] };
      }
      default:
        throw new Error(`no REST case for ${input}`);
    }
  }

  // --- WebSocket ----------------------------------------------------------------------------------------

  const wsUrl = (srv: TestServer, query = "") => `ws://127.0.0.1:${srv.address.port}/stream/detection${query}`;

  async function goodOnWs(ws: WsClient): Promise<void> {
    await pace();
    ws.sendJson({ type: "frame", frame_id: "good", image_data: b64(jpeg) });
    const m = await ws.until((x) => x.type === "detection_result" || x.type === "error");
    expect(m).toMatchObject({ type: "detection_result", data: { frame_id: "good" } });
    ws.close();
  }

  /** Sends `message`; the outcome is the answer (or the close); then a good frame, here or on a new connection. */
  async function wsRow(message: string | Buffer | undefined, sentId?: string, query = "", srv = server, goodQuery = ""): Promise<Cell> {
    const ws = new WsClient(wsUrl(srv, query));
    await ws.opened;
    if (message !== undefined) ws.ws.send(message);
    let answer: Json | undefined;
    try {
      answer = await ws.next();
    } catch {
      // closed without a message
    }
    if (answer?.type === "error") {
      if (sentId !== undefined) expect(answer.frame_id).toBe(sentId.length > 256 ? null : sentId);
    }
    const text = answer === undefined ? undefined : answer.type === "error" ? errorText(answer) : answer.type === "detection_result" ? "result" : String(answer.type);
    if (ws.closed || (answer?.type === "error" && query !== "")) {
      const { code } = await ws.closedWith();
      const fresh = new WsClient(wsUrl(srv, goodQuery));
      await fresh.opened;
      await goodOnWs(fresh);
      return [text === undefined ? `close ${code}` : `${text} + close ${code}`, "new connection"];
    }
    await goodOnWs(ws);
    return [text ?? "nothing", "same connection"];
  }

  async function wsJson(input: Input): Promise<Cell> {
    const msg = (fields: Json) => JSON.stringify({ type: "frame", frame_id: "bad", image_data: b64(jpeg), ...fields });
    switch (input) {
      case "empty frame":
        return wsRow(JSON.stringify({ type: "frame", frame_id: "bad" }), "bad");
      case "truncated JPEG":
        return wsRow(msg({ image_data: b64(frames.truncated) }), "bad");
      case "not an image (text)":
        return wsRow(msg({ image_data: b64(frames.text) }), "bad");
      case "decompression bomb (20000×20000 PNG)":
        return wsRow(msg({ image_data: b64(frames.bomb) }), "bad");
      case "frame over MAX_FRAME_BYTES":
        return wsRow(msg({ image_data: b64(frames.overFrame) }), "bad");
      case "message over the message limit":
        return wsRow(msg({ image_data: b64(frames.overMessage) }));
      case "message over twice the WS limit":
        return wsRow(msg({ image_data: b64(frames.wayOver) }));
      case "wrong type (number for string)":
        return wsRow(msg({ frame_id: 12 }));
      case "malformed JSON":
        return wsRow("{not json");
      case "invalid base64":
        return wsRow(msg({ image_data: "not base64!" }), "bad");
      case "frame_id of 100 KB":
        return wsRow(msg({ frame_id: LONG_ID }), LONG_ID);
      case "metadata nested 40 deep":
        return wsRow(msg({ metadata: nested(40) }), "bad");
      case "metadata of 70 KB":
        return wsRow(msg({ metadata: BIG_METADATA }), "bad");
      case "metadata nested 10000 deep":
        return wsRow(`{"type":"frame","frame_id":"bad","image_data":"${b64(jpeg)}","metadata":${deepJson(10_000)}}`);
      case "empty / unknown message":
        return wsRow(JSON.stringify({ type: "bogus" }));
      case "10000 unknown fields":
        return wsRow(msg({ frame_id: "many", ...manyFieldsJson() }));
      case "unknown client_id":
        return wsRow(undefined, undefined, "?client_id=nope");
      case "wrong API key":
        return wsRow(undefined, undefined, "?api_key=not-the-key-0123456789", keyed, `?api_key=${API_KEY}`);
      default:
        throw new Error(`no WS JSON case for ${input}`);
    }
  }

  async function wsBinary(input: Input): Promise<Cell> {
    const bin = (b: Uint8Array) => Buffer.from(b);
    switch (input) {
      case "empty frame":
        return wsRow(Buffer.alloc(0));
      case "truncated JPEG":
        return wsRow(bin(frames.truncated));
      case "not an image (text)":
        return wsRow(bin(frames.text));
      case "decompression bomb (20000×20000 PNG)":
        return wsRow(bin(frames.bomb));
      case "frame over MAX_FRAME_BYTES":
        return wsRow(bin(frames.overFrame));
      case "message over the message limit":
        return wsRow(bin(frames.overMessage));
      case "message over twice the WS limit":
        return wsRow(bin(frames.wayOver));
      default:
        throw new Error(`no WS binary case for ${input}`);
    }
  }

  async function run(door: Door, input: Input): Promise<Cell> {
    switch (door) {
      case "gRPC":
      case "Connect stream":
        return bidi(door, input);
      case "Connect":
      case "gRPC-Web":
        return unary(door, input);
      case "REST":
        return (await restSse(input)).rest;
      case "SSE":
        return (await restSse(input)).sse;
      case "WS JSON":
        return wsJson(input);
      case "WS binary":
        return wsBinary(input);
    }
  }

  const rows = (Object.entries(MATRIX) as Array<[Input, Partial<Record<Door, Cell>>]>).flatMap(([input, doors]) =>
    (Object.entries(doors) as Array<[Door, Cell]>).map(([door, cell]) => ({ input, door, cell })),
  );

  it.each(rows)("$door × $input → $cell.0, then a good frame ($cell.1)", async ({ input, door, cell }) => {
    const got = await run(door, input);
    seen.push({ input, door, cell: got });
    expect(got).toEqual(cell);
  });

  it("leaves no session behind: every stream, connection and REST session of the matrix ended", async () => {
    const sessions = createClient(SessionService, createGrpcTransport({ baseUrl: server.baseUrl }));
    await eventually(async () => expect((await sessions.listSessions({})).sessions.map((s) => `${s.clientId} ${SessionDoor[s.door]}`)).toEqual([]));
  });
});

/** Adds request headers (an API key) to every call of a transport. */
function withHeaders(headers: Record<string, string>): Interceptor {
  return (next) => (req) => {
    for (const [k, v] of Object.entries(headers)) req.header.set(k, v);
    return next(req);
  };
}
