import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorCode } from "../../gen/hazard/stream/v1/types_pb.js";
import { apiError } from "../rpc/errors.js";
import type { NodeRequest } from "./node-types.js";

/** A request body that is over the limit; the route answers 413 and does not read the rest. */
export const bodyTooLarge = (limit: number, size?: number) =>
  apiError(
    ErrorCode.MESSAGE_TOO_LARGE,
    size === undefined
      ? `request body is larger than the limit of ${limit} bytes (MAX_REQUEST_BYTES)`
      : `request body is ${size} bytes; the limit is ${limit} bytes (MAX_REQUEST_BYTES)`,
  );

/**
 * Reads a request body into memory, never more than `limit` bytes: a declared Content-Length over
 * the limit is refused before reading anything, and a chunked body is cut off as soon as it passes
 * the limit, so a client cannot make the server buffer without bound.
 */
export async function readBody(req: NodeRequest, limit: number): Promise<Buffer> {
  const declared = req.headers["content-length"];
  if (declared !== undefined && Number(declared) > limit) throw bodyTooLarge(limit, Number(declared));
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    // Not a plain `for await`: leaving it early would destroy the request, and with it the socket
    // the 413 answer has to go out on.
    for await (const chunk of req.iterator({ destroyOnReturn: false })) {
      const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
      size += buf.length;
      if (size > limit) throw bodyTooLarge(limit);
      chunks.push(buf);
    }
  } catch (err) {
    // The client went away in the middle of its upload ("aborted"): its doing, not a server fault
    // (so no 500 and no error in the log), and nobody is left to read an answer.
    if (!(err instanceof ConnectError) && req.destroyed) {
      throw new ConnectError("the client closed the connection before the request body arrived", Code.Canceled);
    }
    throw err;
  }
  return chunks.length === 1 && chunks[0] ? chunks[0] : Buffer.concat(chunks, size);
}

/** The media type of a request without parameters, lower case ("" when absent). */
export function mediaTypeOf(req: NodeRequest): string {
  return (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
}
