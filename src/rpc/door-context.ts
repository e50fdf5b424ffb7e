import { createContextKey, type Interceptor } from "@connectrpc/connect";
import { Door } from "../../gen/hazard/stream/v1/session_pb.js";

/**
 * The door a StreamDetections session is opened through, for ServiceStats.sessions_by_door. Network
 * clients are gRPC/Connect streams; the WebSocket route calls the same method through an in-process
 * transport whose router sets the key with doorInterceptor, so no network client can claim a door.
 */
export const streamDoorKey = createContextKey<Door>(Door.GRPC_STREAM, { description: "door of a StreamDetections session" });

/** Marks every call through a router as coming from `door`. */
export function doorInterceptor(door: Door): Interceptor {
  return (next) => (req) => {
    req.contextValues.set(streamDoorKey, door);
    return next(req);
  };
}
