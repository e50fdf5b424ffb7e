import type { Detection as DetectionProto, DetectionResult } from "../../../gen/hazard/stream/v1/types_pb.js";
import type { WatchSessionResponse } from "../../../gen/hazard/stream/v1/session_service_pb.js";
import { DropReason } from "../../../gen/hazard/stream/v1/types_pb.js";
import {
  ApiError,
  configFromPatch,
  DetectionSocket,
  errorCodeName,
  errorCodeOf,
  HazardStreamClient,
  RestSseSession,
  type ConfigJson,
  type ConfigPatch,
  type DetectionJson,
  type ServerMessage,
} from "../../client/index.js";
import { ConnectError } from "@connectrpc/connect";

/**
 * One interface over the five ways a browser can stream frames, so the page's loop does not care
 * which door it drives: send a frame with the page's own id, get exactly one answer event for it
 * (result, error or dropped). No DOM here.
 */

export type DoorKind = "ws-binary" | "ws-json" | "rest-sse" | "connect-unary" | "connect-session";

export const DOORS: ReadonlyArray<{ kind: DoorKind; label: string; note: string }> = [
  { kind: "ws-binary", label: "WebSocket · binary frames", note: "Raw JPEG per message; the lowest overhead." },
  { kind: "ws-json", label: "WebSocket · JSON frames", note: "The seed document's JSON: base64 image, own frame ids." },
  { kind: "rest-sse", label: "REST + SSE", note: "One POST per frame, results on an EventSource." },
  {
    kind: "connect-unary",
    label: "Connect · Detect (unary)",
    note: "One Detect call per frame; stateless, so no tracking and the FPS limit is kept by the page.",
  },
  {
    kind: "connect-session",
    label: "Connect · SubmitFrame + gRPC-Web watch",
    note: "Session API over Connect; results stream back over gRPC-Web (WatchSession).",
  },
];

export interface Box {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
  confidence: number;
  className: string;
  trackId?: number;
}

export type DoorEvent =
  | { kind: "result"; frameId: string; boxes: Box[]; width: number; height: number; processingMs: number; configVersion: number }
  | { kind: "error"; frameId?: string; code: string; message: string }
  | { kind: "dropped"; frameId: string; reason: string }
  | { kind: "allowance"; fps: number; reason: string }
  | { kind: "config"; config: ConfigJson; version: number }
  | { kind: "hazard"; trackId: number; className: string; framesSeen: number }
  | { kind: "closed"; reason: string };

export interface Door {
  readonly kind: DoorKind;
  /** The session, for doors that have one (every door but connect-unary). */
  readonly clientId?: string;
  readonly tracking: boolean;
  send(image: Uint8Array, frameId: string): void;
  updateConfig(patch: ConfigPatch): Promise<void>;
  close(): Promise<void>;
}

export interface DoorOptions {
  baseUrl: string;
  config: ConfigPatch;
  onEvent: (e: DoorEvent) => void;
}

export function boxFromJson(d: DetectionJson): Box {
  const [x1, y1, x2, y2] = d.bbox;
  return { x1, y1, x2, y2, confidence: d.confidence, className: d.class_name, ...(d.track_id === undefined ? {} : { trackId: d.track_id }) };
}

export function boxFromProto(d: DetectionProto): Box {
  const b = d.bbox;
  return {
    x1: b?.x1 ?? 0,
    y1: b?.y1 ?? 0,
    x2: b?.x2 ?? 0,
    y2: b?.y2 ?? 0,
    confidence: d.confidence,
    className: d.className,
    ...(d.trackId === undefined ? {} : { trackId: d.trackId }),
  };
}

function resultEvent(r: DetectionResult, frameId = r.frameId, configVersion = r.configVersion): DoorEvent {
  return {
    kind: "result",
    frameId,
    boxes: r.detections.map(boxFromProto),
    width: r.imageWidth,
    height: r.imageHeight,
    processingMs: r.processingTimeMs,
    configVersion,
  };
}

/** A JSON message (WebSocket, SSE) as a door event; `frameId` maps the server's id to the page's. */
function jsonEvent(m: ServerMessage, frameId: (serverId: string) => string | undefined): DoorEvent | undefined {
  switch (m.type) {
    case "detection_result": {
      const d = m.data;
      const id = frameId(d.frame_id);
      if (id === undefined) return undefined;
      return {
        kind: "result",
        frameId: id,
        boxes: d.detections.map(boxFromJson),
        width: d.image_width,
        height: d.image_height,
        processingMs: d.processing_time_ms,
        configVersion: d.config_version,
      };
    }
    case "error": {
      const id = m.frame_id === null ? undefined : frameId(m.frame_id);
      return { kind: "error", ...(id === undefined ? {} : { frameId: id }), code: m.error_code, message: m.error };
    }
    case "frame_dropped": {
      const id = frameId(m.frame_id);
      return id === undefined ? undefined : { kind: "dropped", frameId: id, reason: m.reason };
    }
    case "flow_control":
      return { kind: "allowance", fps: m.allowed_fps, reason: m.reason };
    case "config_applied":
      return { kind: "config", config: m.config, version: m.config_version };
    case "hazard":
      return { kind: "hazard", trackId: m.data.track_id, className: m.data.class_name, framesSeen: m.data.frames_seen };
    case "session_ended":
      return { kind: "closed", reason: `session ended (${m.reason})` };
    default:
      return undefined;
  }
}

export async function openDoor(kind: DoorKind, o: DoorOptions): Promise<Door> {
  switch (kind) {
    case "ws-binary":
    case "ws-json":
      return openWebSocketDoor(kind, o);
    case "rest-sse":
      return openRestDoor(o);
    case "connect-unary":
      return openUnaryDoor(o);
    case "connect-session":
      return openSessionDoor(o);
  }
}

async function openWebSocketDoor(kind: "ws-binary" | "ws-json", o: DoorOptions): Promise<Door> {
  const socket = await DetectionSocket.open({ baseUrl: o.baseUrl, config: o.config });
  const binary = kind === "ws-binary";
  // Binary frames are numbered by the server and answered in the order sent (drop notices
  // included), so the oldest unanswered frame is the one an answer is about.
  const fifo: string[] = [];
  const frameId = (serverId: string) => (binary ? fifo.shift() : serverId);
  socket.onMessage((m) => {
    const e = jsonEvent(m, frameId);
    if (e) o.onEvent(e);
  });
  socket.onClose((e) => o.onEvent({ kind: "closed", reason: e.message }));
  return {
    kind,
    clientId: socket.clientId,
    tracking: true,
    send(image, id) {
      if (binary) {
        fifo.push(id);
        socket.sendImage(image);
      } else {
        socket.sendFrame({ image, frameId: id, timestamp: Date.now() / 1000 });
      }
    },
    async updateConfig(patch) {
      socket.updateConfig(patch);
    },
    async close() {
      socket.close();
    },
  };
}

async function openRestDoor(o: DoorOptions): Promise<Door> {
  const rest = await RestSseSession.create({ baseUrl: o.baseUrl, config: o.config });
  const stop = rest.listen(
    (m) => {
      const e = jsonEvent(m, (id) => id);
      if (e) o.onEvent(e);
    },
    () => o.onEvent({ kind: "closed", reason: "event stream closed" }),
  );
  return {
    kind: "rest-sse",
    clientId: rest.clientId,
    tracking: true,
    send(image, frameId) {
      rest.submitImage(image, { frameId, timestamp: Date.now() / 1000 }).then(
        (r) => {
          // A frame the server did not queue gets no event: the upload's answer is the drop notice.
          if (!r.accepted) o.onEvent({ kind: "dropped", frameId, reason: r.drop_reason ?? "UNSPECIFIED" });
        },
        (err: unknown) => o.onEvent(errorEvent(err, frameId)),
      );
    },
    async updateConfig(patch) {
      await rest.updateConfig(patch);
    },
    async close() {
      stop();
      await rest.delete().catch(() => undefined);
    },
  };
}

function openUnaryDoor(o: DoorOptions): Door {
  const rpc = new HazardStreamClient({ baseUrl: o.baseUrl, protocol: "connect" });
  // Detect has no session: thresholds travel with every call; fps_limit and tracking do not apply.
  let config = o.config;
  let version = 1;
  return {
    kind: "connect-unary",
    tracking: false,
    send(image, frameId) {
      const { fps_limit: _fps, enable_tracking: _tracking, ...perCall } = config;
      rpc.detect({ image, frameId, timestamp: Date.now() / 1000 }, configFromPatch(perCall)).then(
        (r) => o.onEvent(resultEvent(r, frameId, version)),
        (err: unknown) => o.onEvent(errorEvent(err, frameId)),
      );
    },
    async updateConfig(patch) {
      config = { ...config, ...patch };
      version++;
    },
    async close() {},
  };
}

async function openSessionDoor(o: DoorOptions): Promise<Door> {
  const rpc = new HazardStreamClient({ baseUrl: o.baseUrl, protocol: "connect" });
  // Server streaming over gRPC-Web: what a browser behind a grpc-web proxy would use.
  const watcher = new HazardStreamClient({ baseUrl: o.baseUrl, protocol: "grpc-web" });
  const session = await rpc.createSession(configFromPatch(o.config));
  const abort = new AbortController();
  void (async () => {
    try {
      for await (const ev of watcher.watchSession(session.clientId, { signal: abort.signal })) {
        const e = watchEvent(ev);
        if (e) o.onEvent(e);
      }
      o.onEvent({ kind: "closed", reason: "watch ended" });
    } catch (err) {
      if (!abort.signal.aborted) o.onEvent({ kind: "closed", reason: ConnectError.from(err).message });
    }
  })();
  return {
    kind: "connect-session",
    clientId: session.clientId,
    tracking: true,
    send(image, frameId) {
      rpc.submitFrame(session.clientId, { image, frameId, timestamp: Date.now() / 1000 }).then(
        (r) => {
          if (!r.accepted) o.onEvent({ kind: "dropped", frameId, reason: DropReason[r.dropReason] ?? "UNSPECIFIED" });
        },
        (err: unknown) => o.onEvent(errorEvent(err, frameId)),
      );
    },
    async updateConfig(patch) {
      await rpc.updateConfig(session.clientId, configFromPatch(patch));
    },
    async close() {
      abort.abort();
      await rpc.deleteSession(session.clientId).catch(() => undefined);
    },
  };
}

/** A WatchSession event as a door event (results keep the frame ids the page sent). */
export function watchEvent(ev: WatchSessionResponse): DoorEvent | undefined {
  const e = ev.event;
  switch (e.case) {
    case "result":
      return resultEvent(e.value);
    case "error":
      return { kind: "error", frameId: e.value.frameId, code: errorCodeName(e.value.code), message: e.value.message };
    case "dropped":
      return { kind: "dropped", frameId: e.value.frameId, reason: DropReason[e.value.reason] ?? "UNSPECIFIED" };
    case "flowControl":
      return { kind: "allowance", fps: e.value.allowedFps, reason: e.value.reason };
    case "hazard":
      return { kind: "hazard", trackId: e.value.trackId, className: e.value.className, framesSeen: e.value.framesSeen };
    case "configApplied": {
      const c = e.value.config;
      return {
        kind: "config",
        version: e.value.configVersion,
        config: {
          fps_limit: c?.fpsLimit ?? 0,
          confidence_threshold: c?.confidenceThreshold ?? 0,
          iou_threshold: c?.iouThreshold ?? 0,
          enable_tracking: c?.enableTracking ?? false,
          max_detections: c?.maxDetections ?? 0,
          classes: [...(c?.classFilter?.classNames ?? [])],
          quality: "",
        },
      };
    }
    case "ended":
      return { kind: "closed", reason: "session ended" };
    default:
      return undefined;
  }
}

function errorEvent(err: unknown, frameId: string): DoorEvent {
  if (err instanceof ApiError) return { kind: "error", frameId, code: err.code, message: err.message };
  const e = ConnectError.from(err);
  return { kind: "error", frameId, code: errorCodeName(errorCodeOf(e)), message: e.rawMessage };
}
