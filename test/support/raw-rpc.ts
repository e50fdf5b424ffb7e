import http2 from "node:http2";
import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { endStreamFromJson, errorFromJsonBytes } from "@connectrpc/connect/protocol-connect";
import { findTrailerError } from "@connectrpc/connect/protocol-grpc";
import { StreamDetectionsResponseSchema, type StreamDetectionsResponse } from "../../gen/hazard/stream/v1/detection_service_pb.js";
import { ErrorCode, ErrorDetailSchema } from "../../gen/hazard/stream/v1/types_pb.js";

/**
 * Hand-made RPC requests for what generated clients cannot send: malformed protobuf, wrong wire
 * types, bodies past the size limits, truncated envelopes. Each call goes over a real socket
 * (gRPC and Connect streaming over h2c with node:http2, Connect unary and gRPC-Web over HTTP/1.1
 * with fetch) and reads the answer back into a ConnectError as the clients would.
 */

export const DETECT = "/hazard.stream.v1.DetectionService/Detect";
export const STREAM = "/hazard.stream.v1.DetectionService/StreamDetections";

/** A length-prefixed message (gRPC, gRPC-Web and Connect streaming). */
export function envelope(data: Uint8Array, flags = 0): Buffer {
  const head = Buffer.alloc(5);
  head[0] = flags;
  head.writeUInt32BE(data.length, 1);
  return Buffer.concat([head, data]);
}

export function splitEnvelopes(buf: Buffer): Array<{ flags: number; data: Buffer }> {
  const out: Array<{ flags: number; data: Buffer }> = [];
  let at = 0;
  while (at + 5 <= buf.length) {
    const len = buf.readUInt32BE(at + 1);
    out.push({ flags: buf[at] ?? 0, data: buf.subarray(at + 5, at + 5 + len) });
    at += 5 + len;
  }
  return out;
}

// --- protobuf wire format by hand -------------------------------------------------------------

function varint(n: number): Buffer {
  const bytes: number[] = [];
  let v = n;
  while (v > 127) {
    bytes.push((v & 127) | 128);
    v = Math.floor(v / 128);
  }
  bytes.push(v);
  return Buffer.from(bytes);
}

/** A length-delimited field (wire type 2). */
export function lenField(fieldNo: number, data: Uint8Array): Buffer {
  return Buffer.concat([varint((fieldNo << 3) | 2), varint(data.length), data]);
}

/** A varint field (wire type 0). */
export function varintField(fieldNo: number, value: number): Buffer {
  return Buffer.concat([varint(fieldNo << 3), varint(value)]);
}

/** google.protobuf.Struct nested `depth` levels deep ({"a":{"a":…}}), as protobuf bytes. */
export function deepStructBytes(depth: number): Buffer {
  let inner: Buffer = Buffer.alloc(0);
  for (let i = 0; i < depth; i++) {
    const value = lenField(5, inner); // Value.struct_value
    inner = lenField(1, Buffer.concat([lenField(1, Buffer.from("a")), lenField(2, value)])); // Struct.fields entry
  }
  return inner;
}

/** The same nesting as JSON text (built as a string: JSON.stringify would recurse). */
export function deepJson(depth: number): string {
  return '{"a":'.repeat(depth - 1) + "{}" + "}".repeat(depth - 1);
}

// --- reading answers ------------------------------------------------------------------------------

export interface RawAnswer {
  /** HTTP status. */
  status: number;
  /** Response messages (streaming and gRPC/gRPC-Web unary), decoded when `decode` was given. */
  messages: Buffer[];
  /** The call's error, undefined when it succeeded. */
  error: ConnectError | undefined;
}

/**
 * gRPC (or Connect streaming, by content type) over h2c; sends `body` and half-closes. On its own
 * connection, or on `opts.session` (left open); fails after `opts.timeoutMs` without an answer.
 */
export function rawH2(
  baseUrl: string,
  path: string,
  contentType: string,
  body: Uint8Array,
  headers: Record<string, string> = {},
  opts: { session?: http2.ClientHttp2Session; timeoutMs?: number } = {},
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const own = opts.session === undefined;
    const session = opts.session ?? http2.connect(baseUrl);
    if (own) session.on("error", reject);
    const stream = session.request({ ":method": "POST", ":path": path, "content-type": contentType, te: "trailers", ...headers });
    const timer = setTimeout(() => {
      stream.close(http2.constants.NGHTTP2_CANCEL);
      reject(new Error(`no answer within ${opts.timeoutMs} ms`));
    }, opts.timeoutMs ?? 30_000);
    let head: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on("response", (h) => (head = h));
    stream.on("trailers", (t) => (trailers = t));
    stream.on("data", (d: Buffer) => chunks.push(d));
    stream.on("error", () => undefined); // a reset after the answer: the answer is what counts
    stream.on("close", () => {
      clearTimeout(timer);
      if (own) session.close();
      const all = Buffer.concat(chunks);
      const status = Number(head[":status"] ?? 0);
      const envelopes = splitEnvelopes(all);
      if (contentType.startsWith("application/connect")) {
        const end = envelopes.find((e) => (e.flags & 2) === 2);
        resolve({
          status,
          messages: envelopes.filter((e) => e.flags === 0).map((e) => e.data),
          error: end ? endStreamFromJson(end.data).error : new ConnectError(`no end-stream message (HTTP ${status})`, Code.Unknown),
        });
        return;
      }
      const h = new Headers();
      for (const [k, v] of Object.entries({ ...head, ...trailers })) if (!k.startsWith(":") && typeof v === "string") h.set(k, v);
      resolve({ status, messages: envelopes.map((e) => e.data), error: findTrailerError(h) });
    });
    stream.end(body);
  });
}

/** gRPC-Web over HTTP/1.1 (fetch): the status comes in a trailer frame, or in headers when there is no body. */
export async function rawGrpcWeb(baseUrl: string, path: string, contentType: string, body: Buffer, headers: Record<string, string> = {}): Promise<RawAnswer> {
  const res = await fetch(baseUrl + path, { method: "POST", headers: { "content-type": contentType, ...headers }, body });
  const all = Buffer.from(await res.arrayBuffer());
  const envelopes = splitEnvelopes(all);
  const trailer = envelopes.find((e) => (e.flags & 0x80) === 0x80);
  const h = new Headers(res.headers);
  for (const line of trailer?.data.toString("latin1").split("\r\n") ?? []) {
    const i = line.indexOf(":");
    if (i > 0) h.set(line.slice(0, i).trim(), line.slice(i + 1).trim());
  }
  return { status: res.status, messages: envelopes.filter((e) => e.flags === 0).map((e) => e.data), error: findTrailerError(h) };
}

/** Connect unary over HTTP/1.1 (fetch): a non-200 answer is the error JSON. */
export async function rawConnectUnary(baseUrl: string, path: string, contentType: string, body: Buffer | string, headers: Record<string, string> = {}): Promise<RawAnswer> {
  const res = await fetch(baseUrl + path, { method: "POST", headers: { "content-type": contentType, ...headers }, body });
  const bytes = Buffer.from(await res.arrayBuffer());
  if (res.status === 200) return { status: 200, messages: [bytes], error: undefined };
  return { status: res.status, messages: [], error: errorFromJsonBytes(bytes, undefined, new ConnectError(`HTTP ${res.status}`, Code.Unknown)) };
}

export function streamResponses(answer: RawAnswer): StreamDetectionsResponse[] {
  return answer.messages.map((m) => fromBinary(StreamDetectionsResponseSchema, m));
}

/** `Code ERROR_CODE(field)` as the matrix writes an RPC error; `Code —` when it carries no ErrorDetail. */
export function describeRpcError(err: ConnectError): string {
  const detail = err.findDetails(ErrorDetailSchema)[0];
  if (!detail) return `${Code[err.code]} —`;
  return `${Code[err.code]} ${ErrorCode[detail.code]}${detail.field ? `(${detail.field})` : ""}`;
}
