import {
  bytesToBase64,
  configQuery,
  parseServerMessage,
  webSocketUrl,
  type ConfigPatch,
  type SessionCreatedJson,
  type ServerMessage,
} from "./json-api.js";
import type { JsonObject } from "@bufbuild/protobuf";

/**
 * The `/stream/detection` WebSocket door for browsers (or Node with the `ws` package): one socket is
 * one session with tracking and mid-stream config changes, the lowest-latency door a browser has.
 * Frames go out as binary messages (raw JPEG, the server numbers them) or as the seed document's
 * JSON (base64, with the client's own frame_id); every frame is answered by one `detection_result`,
 * `error` or — this helper always asks for notices — `frame_dropped`.
 */

/** What the helper uses of a WHATWG WebSocket: the browser's, or `ws` in Node. */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: "open" | "message" | "close" | "error", listener: (ev: SocketEvent) => void): void;
}

export interface SocketEvent {
  readonly type: string;
  data?: unknown;
  code?: number;
  reason?: string;
}

export type WebSocketFactory = (url: string) => WebSocketLike;

/** The runtime's own WebSocket (browsers, Node 22+). */
export const globalWebSocket: WebSocketFactory = (url) => {
  const Ctor = (globalThis as unknown as { WebSocket?: new (url: string) => WebSocketLike }).WebSocket;
  if (!Ctor) throw new Error("this runtime has no WebSocket: pass `connect` (e.g. url => new WebSocket(url) from the ws package)");
  return new Ctor(url);
};

export interface DetectionSocketOptions {
  /** The service, e.g. `location.origin`; ws: or wss: follows http: or https:. */
  baseUrl: string;
  /** Initial config (query parameters); for a resumed session, a change to it. */
  config?: ConfigPatch;
  /** Join this existing session instead of opening one. */
  clientId?: string;
  /** For a server run with STREAMING_API_KEYS; sent as `?api_key=` (browsers cannot set WebSocket headers). */
  apiKey?: string;
  connect?: WebSocketFactory;
}

export class SocketClosedError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
  ) {
    super(`WebSocket closed (${code}${reason ? `: ${reason}` : ""})`);
    this.name = "SocketClosedError";
  }
}

const OPEN = 1;

export class DetectionSocket {
  private readonly messageListeners = new Set<(m: ServerMessage) => void>();
  private readonly closeListeners = new Set<(e: SocketClosedError) => void>();

  private constructor(
    private readonly ws: WebSocketLike,
    /** The session the socket runs in (client_id, effective config, ...). */
    readonly session: SessionCreatedJson,
  ) {}

  /** Connects and resolves once the server has opened (or resumed) the session. */
  static open(opts: DetectionSocketOptions): Promise<DetectionSocket> {
    const q = configQuery(opts.config ?? {});
    q.set("session_info", "true");
    q.set("notify", "true");
    if (opts.clientId) q.set("client_id", opts.clientId);
    if (opts.apiKey) q.set("api_key", opts.apiKey);
    const ws = (opts.connect ?? globalWebSocket)(webSocketUrl(opts.baseUrl, "/stream/detection", q));
    ws.binaryType = "arraybuffer";
    return new Promise((resolve, reject) => {
      let socket: DetectionSocket | undefined;
      let refusal = "";
      ws.addEventListener("message", (ev) => {
        const msg = typeof ev.data === "string" ? parseServerMessage(ev.data) : undefined;
        if (!msg) return;
        if (socket) {
          for (const l of socket.messageListeners) l(msg);
        } else if (msg.type === "session_created") {
          socket = new DetectionSocket(ws, msg);
          resolve(socket);
        } else if (msg.type === "error") {
          // An invalid query or unknown client_id: the close that follows carries less detail.
          refusal = `${msg.error_code}: ${msg.error}`;
        }
      });
      ws.addEventListener("close", (ev) => {
        const err = new SocketClosedError(ev.code ?? 1006, refusal || (ev.reason ?? ""));
        if (!socket) reject(err);
        else for (const l of socket.closeListeners) l(err);
      });
    });
  }

  get clientId(): string {
    return this.session.client_id;
  }

  get isOpen(): boolean {
    return this.ws.readyState === OPEN;
  }

  /** Every message after `session_created`; returns a function that removes the listener. */
  onMessage(listener: (m: ServerMessage) => void): () => void {
    this.messageListeners.add(listener);
    return () => this.messageListeners.delete(listener);
  }

  /** The session ended (code 1000), the server is shutting down (1001), or the network failed. */
  onClose(listener: (e: SocketClosedError) => void): () => void {
    this.closeListeners.add(listener);
    return () => this.closeListeners.delete(listener);
  }

  /** A raw JPEG/PNG/WebP frame: no base64, no JSON; the server assigns its frame_id. */
  sendImage(image: Uint8Array): void {
    this.ws.send(image);
  }

  /** The seed document's JSON frame: base64 image, the client's frame_id, timestamp and metadata. */
  sendFrame(frame: { image: Uint8Array; frameId: string; timestamp?: number; metadata?: JsonObject }): void {
    this.ws.send(
      JSON.stringify({
        type: "frame",
        image_data: bytesToBase64(frame.image),
        frame_id: frame.frameId,
        timestamp: frame.timestamp ?? Date.now() / 1000,
        metadata: frame.metadata ?? {},
      }),
    );
  }

  /** Applies from the next processed frame; acknowledged with `config_applied`. */
  updateConfig(config: ConfigPatch): void {
    this.ws.send(JSON.stringify({ type: "config_update", config }));
  }

  ping(): void {
    this.ws.send(JSON.stringify({ type: "ping" }));
  }

  /** Ends the session (a socket's session lives as long as the socket). */
  close(): void {
    this.ws.close(1000, "client closed");
  }
}
