import { create, type JsonObject, type MessageInitShape } from "@bufbuild/protobuf";
import { ConnectError, createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { DetectionService } from "../../gen/hazard/stream/v1/detection_service_pb.js";
import type { Session } from "../../gen/hazard/stream/v1/session_pb.js";
import {
  SessionService,
  type ServiceStats,
  type SessionStats,
  type SubmitFrameResponse,
  type WatchSessionResponse,
} from "../../gen/hazard/stream/v1/session_service_pb.js";
import {
  ErrorCode,
  ErrorDetailSchema,
  FrameSchema,
  Quality,
  SessionConfigSchema,
  type DetectionResult,
  type SessionConfig,
} from "../../gen/hazard/stream/v1/types_pb.js";
import type { ConfigPatch } from "./json-api.js";

/**
 * A typed client for browsers (and Node 18+, which has fetch) over the generated Connect clients:
 * sessions, single-image detection and session watching, over the Connect protocol or gRPC-Web on
 * HTTP/1.1 or HTTP/2. Browsers cannot open bidirectional streams; their live door is the WebSocket
 * route (see websocket.ts) or a session fed with submitFrame and read with watchSession.
 */

/** Connect (JSON or binary; readable in devtools) or gRPC-Web (what grpc-web proxies speak). */
export type RpcProtocol = "connect" | "grpc-web";

/** A SessionConfig as a plain object: `{ fpsLimit: 15, confidenceThreshold: 0.5, enableTracking: true }`. */
export type SessionConfigInit = MessageInitShape<typeof SessionConfigSchema>;

export interface HazardStreamClientOptions {
  /** Where the service is, e.g. `location.origin` or `http://127.0.0.1:8080`. */
  baseUrl: string;
  /** Default "connect". */
  protocol?: RpcProtocol;
  /**
   * Protobuf binary instead of JSON. Default: true for gRPC-Web (which only has binary framing in
   * practice), false for Connect (requests readable in the network panel).
   */
  useBinaryFormat?: boolean;
  /** Sent as `x-api-key` on every call, for a server run with STREAMING_API_KEYS. */
  apiKey?: string;
  /** E.g. logging, or other headers. */
  interceptors?: Interceptor[];
  /** A transport built elsewhere (tests: createRouterTransport); overrides the options above. */
  transport?: Transport;
}

export interface FrameInput {
  /** Encoded JPEG, PNG or WebP bytes. */
  image: Uint8Array;
  /** Echoed in the result; the server assigns one when empty. */
  frameId?: string;
  /** Capture time, seconds since the epoch; 0 means "on arrival". */
  timestamp?: number;
  /** Free-form data echoed in results (GPS, camera id, ...). */
  metadata?: JsonObject;
}

export interface CallOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
}

const frameOf = (f: FrameInput) =>
  create(FrameSchema, { imageData: f.image, frameId: f.frameId ?? "", timestamp: f.timestamp ?? 0, metadata: f.metadata });

/** The JSON doors' snake_case config patch as a SessionConfig, so one settings object serves every door. */
export function configFromPatch(p: ConfigPatch): SessionConfigInit {
  const c: SessionConfigInit = {};
  if (p.fps_limit !== undefined) c.fpsLimit = p.fps_limit;
  if (p.confidence_threshold !== undefined) c.confidenceThreshold = p.confidence_threshold;
  if (p.iou_threshold !== undefined) c.iouThreshold = p.iou_threshold;
  if (p.enable_tracking !== undefined) c.enableTracking = p.enable_tracking;
  if (p.max_detections !== undefined) c.maxDetections = p.max_detections;
  if (p.classes !== undefined) c.classFilter = { classNames: p.classes };
  if (p.quality !== undefined) c.quality = Quality[p.quality];
  return c;
}

/** The service's machine-readable error code (ErrorDetail), or UNSPECIFIED for transport failures. */
export function errorCodeOf(err: unknown): ErrorCode {
  return ConnectError.from(err).findDetails(ErrorDetailSchema)[0]?.code ?? ErrorCode.UNSPECIFIED;
}

/** The code as the JSON doors write it: `ERROR_CODE_INVALID_IMAGE` → `"INVALID_IMAGE"`. */
export function errorCodeName(code: ErrorCode): string {
  return ErrorCode[code] ?? "UNSPECIFIED";
}

export class HazardStreamClient {
  /** The generated clients, for calls this class does not wrap. */
  readonly detection: Client<typeof DetectionService>;
  readonly sessions: Client<typeof SessionService>;

  constructor(opts: HazardStreamClientOptions) {
    const protocol = opts.protocol ?? "connect";
    const interceptors = [...(opts.interceptors ?? [])];
    const key = opts.apiKey;
    if (key) {
      interceptors.push((next) => (req) => {
        req.header.set("x-api-key", key);
        return next(req);
      });
    }
    const common = { baseUrl: opts.baseUrl, interceptors };
    const transport =
      opts.transport ??
      (protocol === "grpc-web"
        ? createGrpcWebTransport({ ...common, useBinaryFormat: opts.useBinaryFormat ?? true })
        : createConnectTransport({ ...common, useBinaryFormat: opts.useBinaryFormat ?? false }));
    this.detection = createClient(DetectionService, transport);
    this.sessions = createClient(SessionService, transport);
  }

  /** Detects hazards in one image; `config` overrides the server defaults for this call only. */
  async detect(frame: FrameInput, config?: SessionConfigInit, opts?: CallOptions): Promise<DetectionResult> {
    const res = await this.detection.detect({ frame: frameOf(frame), config: config && create(SessionConfigSchema, config) }, opts);
    if (!res.result) throw new ConnectError("the server sent no result");
    return res.result;
  }

  async createSession(config?: SessionConfigInit, opts?: CallOptions): Promise<Session> {
    const res = await this.sessions.createSession({ config: config && create(SessionConfigSchema, config) }, opts);
    return sessionOf(res.session);
  }

  async getSession(clientId: string, opts?: CallOptions): Promise<Session> {
    return sessionOf((await this.sessions.getSession({ clientId }, opts)).session);
  }

  /** Changes only the given fields; results carry the new `configVersion` once it applies. */
  async updateConfig(clientId: string, config: SessionConfigInit | SessionConfig, opts?: CallOptions): Promise<Session> {
    const res = await this.sessions.updateSessionConfig({ clientId, config: create(SessionConfigSchema, config) }, opts);
    return sessionOf(res.session);
  }

  async deleteSession(clientId: string, opts?: CallOptions): Promise<void> {
    await this.sessions.deleteSession({ clientId }, opts);
  }

  /** Queues a frame; its result (or drop notice, or error) arrives on watchSession. */
  submitFrame(clientId: string, frame: FrameInput, opts?: CallOptions): Promise<SubmitFrameResponse> {
    return this.sessions.submitFrame({ clientId, frame: frameOf(frame) }, opts);
  }

  /**
   * The session's events until it ends (the iteration then finishes) or `signal` aborts (it throws
   * a Canceled ConnectError). The first event is a keepalive sent as soon as the watch is live. Pass
   * the last `eventId` seen as `afterEventId` to resume after a network failure without losing
   * events still in the replay window.
   */
  watchSession(clientId: string, opts: CallOptions & { afterEventId?: bigint } = {}): AsyncIterable<WatchSessionResponse> {
    const { afterEventId, ...call } = opts;
    return this.sessions.watchSession({ clientId, afterEventId: afterEventId ?? 0n }, call);
  }

  /**
   * Opens a watch and resolves once it is live — every event from then on reaches it — with the
   * events after the opening keepalive. Submit frames after this resolves and no result can slip
   * past; refusals (unknown session, wrong key, too many watchers) reject here.
   */
  async openWatch(clientId: string, opts: CallOptions & { afterEventId?: bigint } = {}): Promise<AsyncIterable<WatchSessionResponse>> {
    const it = this.watchSession(clientId, opts)[Symbol.asyncIterator]();
    const first = await it.next();
    const rest: AsyncIterable<WatchSessionResponse> = { [Symbol.asyncIterator]: () => it };
    if (first.done) return rest;
    if (first.value.event.case === "keepalive") return rest;
    // A server without the opening keepalive: hand the event on rather than lose it.
    const head = first.value;
    return {
      async *[Symbol.asyncIterator]() {
        yield head;
        yield* rest;
      },
    };
  }

  async sessionStats(clientId: string, opts?: CallOptions): Promise<SessionStats> {
    const res = await this.sessions.getSessionStats({ clientId }, opts);
    if (!res.stats) throw new ConnectError("the server sent no stats");
    return res.stats;
  }

  async serviceStats(opts?: CallOptions): Promise<ServiceStats> {
    const res = await this.sessions.getServiceStats({}, opts);
    if (!res.stats) throw new ConnectError("the server sent no stats");
    return res.stats;
  }
}

function sessionOf(s: Session | undefined): Session {
  if (!s) throw new ConnectError("the server sent no session");
  return s;
}
