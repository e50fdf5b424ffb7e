import type { ConnectError } from "@connectrpc/connect";
import { encodeEnvelope } from "@connectrpc/connect/protocol";
import {
  codeToHttpStatus,
  endStreamFlag,
  endStreamToJson,
  errorToJsonBytes,
  parseContentType as parseConnectType,
} from "@connectrpc/connect/protocol-connect";
import { parseContentType as parseGrpcType, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { parseContentType as parseGrpcWebType, trailerFlag, trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";
import { httpErrorOf } from "./http/http-errors.js";

/**
 * The answer to a request refused from its method, path and headers alone, in the protocol the
 * request speaks, so the client reads a proper error: gRPC as a trailers-only response, gRPC-Web
 * with its trailer frame, Connect streaming with its end-stream message, Connect unary as its JSON
 * error with the mapped HTTP status, anything else as the REST routes' error JSON. The body is
 * never read: a refused request must cost next to nothing, however large or compressed its body.
 *
 * The encodings come from Connect's protocol modules, the ones connect-node answers with.
 */
export interface RefusalAnswer {
  status: number;
  headers: Record<string, string>;
  /** Empty for gRPC: its status travels in the one header block (trailers-only). */
  body: Uint8Array;
}

export interface RefusedRequest {
  method: string | undefined;
  /** Path and query, as in the request line. */
  url: string | undefined;
  contentType: string | undefined;
}

/** `rpcServices`: the type names the server serves, to tell an RPC from a REST path. */
export function refusalAnswer(req: RefusedRequest, error: ConnectError, rpcServices: ReadonlySet<string>, nowMs: number): RefusalAnswer {
  const url = new URL(req.url ?? "/", "http://localhost");
  const service = /^\/([^/]+)\/[^/]+$/.exec(url.pathname)?.[1];
  const contentType = req.contentType ?? null;
  const metadata = Object.fromEntries(error.metadata);
  if (service !== undefined && rpcServices.has(service)) {
    const grpcWeb = parseGrpcWebType(contentType);
    if (grpcWeb) {
      const trailer = trailerSerialize(setTrailerStatus(new Headers(), error));
      const frame = encodeEnvelope(trailerFlag, trailer);
      const type = `application/grpc-web${grpcWeb.text ? "-text" : ""}+${grpcWeb.binary ? "proto" : "json"}`;
      return { status: 200, headers: { ...metadata, "content-type": type }, body: grpcWeb.text ? Buffer.from(Buffer.from(frame).toString("base64")) : frame };
    }
    const grpc = parseGrpcType(contentType);
    if (grpc) {
      const headers: Record<string, string> = { "content-type": grpc.binary ? "application/grpc+proto" : "application/grpc+json" };
      setTrailerStatus(new Headers(), error).forEach((value, key) => (headers[key] = value));
      return { status: 200, headers, body: new Uint8Array() };
    }
    const connect = parseConnectType(contentType);
    if (connect?.stream) {
      const end = new TextEncoder().encode(JSON.stringify(endStreamToJson(new Headers(), error, undefined)));
      return {
        status: 200,
        headers: { ...metadata, "content-type": `application/connect+${connect.binary ? "proto" : "json"}` },
        body: encodeEnvelope(endStreamFlag, end),
      };
    }
    // Connect unary: a POST with its content type, or a GET with the message in the query.
    if (connect || (req.method === "GET" && url.searchParams.has("encoding"))) {
      return {
        status: codeToHttpStatus(error.code),
        headers: { ...metadata, "content-type": "application/json" },
        body: errorToJsonBytes(error, undefined),
      };
    }
  }
  const { status, body } = httpErrorOf(error, nowMs);
  return {
    status,
    headers: { ...metadata, "content-type": "application/json; charset=utf-8", "cache-control": "no-store" },
    body: Buffer.from(JSON.stringify(body)),
  };
}
