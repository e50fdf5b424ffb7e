/**
 * Clients for web developers: everything here runs in a browser (and in Node with fetch); nothing
 * touches the DOM. The demo page (src/web/page/) is built on it.
 *
 *   HazardStreamClient  Connect / gRPC-Web: Detect, sessions, SubmitFrame, WatchSession (streaming)
 *   DetectionSocket     the /stream/detection WebSocket (binary or JSON frames)
 *   RestSseSession      REST uploads + Server-Sent Events
 */
export {
  configFromPatch,
  errorCodeName,
  errorCodeOf,
  HazardStreamClient,
  type CallOptions,
  type FrameInput,
  type HazardStreamClientOptions,
  type RpcProtocol,
  type SessionConfigInit,
} from "./hazard-client.js";
export * from "./json-api.js";
export { ApiError, globalEventSource, RestSseSession, type EventSourceFactory, type EventSourceLike, type RestSseOptions } from "./rest-sse.js";
export {
  DetectionSocket,
  globalWebSocket,
  SocketClosedError,
  type DetectionSocketOptions,
  type SocketEvent,
  type WebSocketFactory,
  type WebSocketLike,
} from "./websocket.js";
