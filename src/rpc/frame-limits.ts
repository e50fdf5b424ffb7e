import type { JsonValue } from "@bufbuild/protobuf";
import { ErrorCode } from "../../gen/hazard/stream/v1/types_pb.js";
import { apiError } from "./errors.js";

/**
 * Bounds on the parts of a frame other than its image, the same on every door. The image is bounded
 * by MAX_FRAME_BYTES and MAX_IMAGE_PIXELS; these keep the rest from costing more than the image.
 */

/** Frame ids are echoed in every result, error and drop notice (and SSE replay), so they stay short. */
export const MAX_FRAME_ID_LENGTH = 256;

/**
 * Nesting of `metadata` (objects and arrays). protobuf-es stops decoding at 100 message levels and
 * each JSON level is two (Struct, Value), so deeper metadata could not even cross the in-process
 * transport the JSON doors use; GPS fixes and camera ids need two or three levels.
 */
export const MAX_METADATA_DEPTH = 32;

/**
 * Size of `metadata` as JSON (UTF-8 bytes). Results echo a frame's metadata and hazard events keep
 * their peak frame's, so it is held in the session's replay window, in every watcher's queue and in
 * open tracks: unbounded, a few frames of megabytes each kept a gigabyte resident. GPS fixes,
 * camera ids and the like take well under a kilobyte.
 */
export const MAX_METADATA_BYTES = 64 * 1024;

/** A frame id an error may repeat: an over-long one is itself the error and is not echoed back. */
export function echoableFrameId(frameId: string | undefined): string {
  return frameId !== undefined && frameId.length <= MAX_FRAME_ID_LENGTH ? frameId : "";
}

export function checkFrameId(frameId: string): void {
  if (frameId.length > MAX_FRAME_ID_LENGTH) {
    throw apiError(ErrorCode.INVALID_MESSAGE, `frame_id is ${frameId.length} characters long; the limit is ${MAX_FRAME_ID_LENGTH}`, {
      field: "frame_id",
    });
  }
}

/** Whether a JSON value nests objects/arrays deeper than `limit`; iterative, so any depth is safe to ask about. */
export function nestedDeeperThan(value: JsonValue, limit: number): boolean {
  const stack: Array<[JsonValue, number]> = [[value, 0]];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const [v, depth] = item;
    if (typeof v !== "object" || v === null) continue;
    if (depth + 1 > limit) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push([child, depth + 1]);
  }
  return false;
}

export function checkMetadata(metadata: JsonValue | undefined, frameId: string): void {
  if (metadata === undefined) return;
  if (nestedDeeperThan(metadata, MAX_METADATA_DEPTH)) {
    throw apiError(ErrorCode.INVALID_MESSAGE, `metadata is nested more than ${MAX_METADATA_DEPTH} levels deep`, {
      field: "metadata",
      frameId: echoableFrameId(frameId),
    });
  }
  // Depth is bounded by now, so stringifying cannot exhaust the stack.
  const bytes = Buffer.byteLength(JSON.stringify(metadata));
  if (bytes > MAX_METADATA_BYTES) {
    throw apiError(ErrorCode.INVALID_MESSAGE, `metadata is ${bytes} bytes as JSON; the limit is ${MAX_METADATA_BYTES}`, {
      field: "metadata",
      frameId: echoableFrameId(frameId),
    });
  }
}
