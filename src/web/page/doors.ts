import { ConnectError } from "@connectrpc/connect";
import { DropReason } from "../../../gen/hazard/stream/v1/types_pb.js";
import { configFromPatch, DetectionSocket, HazardStreamClient, RestSseSession, type ConfigPatch } from "../../client/index.js";
import { errorEvent, jsonEvent, resultEvent, watchEvent, type DoorEvent } from "./events.js";

/**
 * One interface over the five ways a browser can stream frames, so the page's loop does not care
 * which door it drives: send a frame with the page's own id, get exactly one answer event for it
 * (result, error or dropped). No DOM here.
 */

export type { Box, DoorEvent } from "./events.js";

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
  /** Only for a server run with STREAMING_API_KEYS. */
  apiKey?: string;
  config: ConfigPatch;
  onEvent: (e: DoorEvent) => void;
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
  const socket = await DetectionSocket.open({ baseUrl: o.baseUrl, apiKey: o.apiKey, config: o.config });
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
  const rest = await RestSseSession.create({ baseUrl: o.baseUrl, apiKey: o.apiKey, config: o.config });
  // Live before the first frame goes out, or that frame's result could pass unseen.
  const stop = await rest
    .listen(
      (m) => {
        const e = jsonEvent(m, (id) => id);
        if (e) o.onEvent(e);
      },
      () => o.onEvent({ kind: "closed", reason: "event stream closed" }),
    )
    .catch(async (err: unknown) => {
      await rest.delete().catch(() => undefined);
      throw err;
    });
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

/** Frames as protobuf bytes: Connect's JSON would carry every image as base64 (a third larger, and encoded in JS). */
const frameClient = (o: DoorOptions) => new HazardStreamClient({ baseUrl: o.baseUrl, apiKey: o.apiKey, protocol: "connect", useBinaryFormat: true });

function openUnaryDoor(o: DoorOptions): Door {
  const rpc = frameClient(o);
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
  const rpc = frameClient(o);
  // Server streaming over gRPC-Web: what a browser behind a grpc-web proxy would use.
  const watcher = new HazardStreamClient({ baseUrl: o.baseUrl, apiKey: o.apiKey, protocol: "grpc-web" });
  const session = await rpc.createSession(configFromPatch(o.config));
  const abort = new AbortController();
  // Live before the first frame goes out, or that frame's result could pass unseen.
  const events = await watcher.openWatch(session.clientId, { signal: abort.signal }).catch(async (err: unknown) => {
    await rpc.deleteSession(session.clientId).catch(() => undefined);
    throw err;
  });
  void (async () => {
    try {
      for await (const ev of events) {
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

