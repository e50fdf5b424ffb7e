import { toBinary } from "@bufbuild/protobuf";
import { WatchSessionResponseSchema, type WatchSessionResponse } from "../../gen/hazard/stream/v1/session_service_pb.js";

/**
 * What a session event costs to hold, in bytes, for the byte budgets of the replay window and of
 * subscriber queues: counted as its protobuf encoding, which is dominated by the frame `metadata`
 * results echo (the in-memory objects are larger still, so the budgets are a floor, not a ceiling).
 * One event object is shared by the replay window and every local subscriber: it is measured once.
 */
const sizes = new WeakMap<WatchSessionResponse, number>();

export function eventBytes(msg: WatchSessionResponse): number {
  let n = sizes.get(msg);
  if (n === undefined) {
    n = toBinary(WatchSessionResponseSchema, msg).byteLength;
    sizes.set(msg, n);
  }
  return n;
}

/** Records a size already known (an event decoded from the bus: its encoded length). */
export function knownEventBytes(msg: WatchSessionResponse, bytes: number): void {
  sizes.set(msg, bytes);
}
