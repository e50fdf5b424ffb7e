import type { DoorName } from "../cli.js";
import { openGrpc } from "./grpc.js";
import { openRestSse } from "./rest-sse.js";
import type { OpenDoor } from "./types.js";
import { openUnary } from "./unary.js";
import { openWsBinary, openWsJson } from "./websocket.js";

export const OPENERS: Record<DoorName, OpenDoor> = {
  grpc: openGrpc,
  unary: openUnary,
  "ws-json": openWsJson,
  "ws-binary": openWsBinary,
  "rest-sse": openRestSse,
};

export const DOOR_TITLES: Record<DoorName, string> = {
  grpc: "gRPC bidi StreamDetections (h2c, binary)",
  unary: "Connect unary Detect (HTTP/1.1, binary)",
  "ws-json": "WebSocket JSON/base64",
  "ws-binary": "WebSocket binary",
  "rest-sse": "REST POST (JSON/base64) + SSE",
};
