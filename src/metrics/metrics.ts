import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { Door } from "../../gen/hazard/stream/v1/session_pb.js";
import { DropReason, ErrorCode, type DetectionResult } from "../../gen/hazard/stream/v1/types_pb.js";
import type { InferenceEngine } from "../inference/engine.js";

/**
 * The service's Prometheus metrics. Labels only take values from closed sets (doors, drop reasons,
 * error codes, stages, protocols, RPC methods the router serves): nothing per client, session or
 * frame, so the series count stays fixed however many clients come and go.
 *
 * Hot-path cost is one counter increment or histogram observe per event; everything that can be
 * read from state (sessions, connections, subscribers) is read at scrape time instead.
 */

/** The `door` label: how frames reached the service. `detect` is the unary Detect RPC (any protocol). */
export type DoorLabel = "grpc_stream" | "websocket" | "session_api" | "detect" | "unspecified";
export type StageLabel = "queue_wait" | "preprocess" | "inference" | "postprocess";
export type ProtocolLabel = "h2" | "http1";
export type SubscriberKind = "websocket" | "sse";

export function doorLabel(door: Door): DoorLabel {
  switch (door) {
    case Door.GRPC_STREAM:
      return "grpc_stream";
    case Door.WEBSOCKET:
      return "websocket";
    case Door.SESSION_API:
      return "session_api";
    default:
      return "unspecified";
  }
}

/** Enum names as label values: `ERROR_CODE_INFERENCE_ERROR` → `inference_error`. */
export const errorCodeLabel = (code: ErrorCode): string => (ErrorCode[code] ?? "UNSPECIFIED").toLowerCase();
export const dropReasonLabel = (reason: DropReason): string => (DropReason[reason] ?? "UNSPECIFIED").toLowerCase();

/** What the metrics read at scrape time; each part is optional until the app has it. */
export interface MetricsSources {
  sessionsByDoor?: () => ReadonlyMap<Door, number>;
  framesInFlight?: () => number;
  subscribers?: () => Readonly<Record<SubscriberKind, number>>;
}

/** Frame latencies run from a few ms (small model, idle) to seconds (big model, overloaded 2-core box). */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * Process metrics (CPU, memory, GC, event-loop lag) exist once per process: prom-client's collector
 * starts an event-loop-delay monitor and a GC observer that are never stopped, so it runs once and
 * every app's registry is merged with it at scrape time.
 */
let processRegistry: Registry | undefined;
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

export class HazardMetrics {
  readonly registry = new Registry();
  readonly sources: MetricsSources = {};

  readonly framesReceived = new Counter({
    name: "hazard_frames_received_total",
    help: "Frames that reached a session or the Detect RPC, by door.",
    labelNames: ["door"] as const,
    registers: [this.registry],
  });
  readonly framesProcessed = new Counter({
    name: "hazard_frames_processed_total",
    help: "Frames answered with a detection result, by door.",
    labelNames: ["door"] as const,
    registers: [this.registry],
  });
  readonly framesDropped = new Counter({
    name: "hazard_frames_dropped_total",
    help: "Frames dropped without processing, by door and reason (fps_limit, superseded, queue_full, stale, session_closed).",
    labelNames: ["door", "reason"] as const,
    registers: [this.registry],
  });
  readonly framesFailed = new Counter({
    name: "hazard_frames_failed_total",
    help: "Frames answered with an error, by door and error code (invalid_image, inference_error, ...).",
    labelNames: ["door", "code"] as const,
    registers: [this.registry],
  });
  readonly stageSeconds = new Histogram({
    name: "hazard_frame_stage_seconds",
    help: "Time a processed frame spent in each stage: queue_wait (session queue and engine wait), preprocess (decode + letterbox), inference, postprocess (YOLO decode, NMS, tracking).",
    labelNames: ["stage"] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly frameSeconds = new Histogram({
    name: "hazard_frame_latency_seconds",
    help: "Server-side end-to-end time of a processed frame, from its arrival to its result, by door.",
    labelNames: ["door"] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly connections = new Gauge({
    name: "hazard_connections_open",
    help: "Open client connections by protocol (h2: gRPC and HTTP/2; http1: HTTP/1.1, including WebSocket).",
    labelNames: ["protocol"] as const,
    registers: [this.registry],
  });
  readonly rpcHandled = new Counter({
    name: "hazard_rpc_handled_total",
    help: "RPCs completed, by method and status code (ok, or Connect's code string: invalid_argument, not_found, ...; the HTTP routes' in-process calls count too).",
    labelNames: ["method", "code"] as const,
    registers: [this.registry],
  });
  readonly rpcStreamsActive = new Gauge({
    name: "hazard_rpc_streams_active",
    help: "Streaming RPCs in progress, by method (network and in-process).",
    labelNames: ["method"] as const,
    registers: [this.registry],
  });
  readonly modelReady = new Gauge({
    name: "hazard_model_ready",
    help: "1 once the model is loaded and the API serves, 0 while it is loading or failed to load.",
    registers: [this.registry],
  });
  readonly modelLoadFailures = new Counter({
    name: "hazard_model_load_failures_total",
    help: "Failed attempts to load the model (each is retried with backoff).",
    registers: [this.registry],
  });
  readonly engineInfo = new Gauge({
    name: "hazard_engine_info",
    help: "The loaded inference engine (always 1): backend, device, model file name and model_version (first 12 hex digits of the file's SHA-256).",
    labelNames: ["backend", "device", "model", "model_version"] as const,
    registers: [this.registry],
  });
  readonly engineConcurrency = new Gauge({
    name: "hazard_engine_concurrency",
    help: "Inference runs the engine executes in parallel.",
    labelNames: ["backend", "device"] as const,
    registers: [this.registry],
  });

  constructor() {
    const sources = this.sources;
    new Gauge({
      name: "hazard_sessions_active",
      help: "Sessions with a runtime on this instance, by door.",
      labelNames: ["door"] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        // Every door appears, at 0 when it has no session, so rate() and alerts see a series.
        for (const door of [Door.GRPC_STREAM, Door.WEBSOCKET, Door.SESSION_API]) this.set({ door: doorLabel(door) }, 0);
        for (const [door, n] of sources.sessionsByDoor?.() ?? []) this.inc({ door: doorLabel(door) }, n);
      },
    });
    new Gauge({
      name: "hazard_frames_in_flight",
      help: "Frames being processed right now on this instance.",
      registers: [this.registry],
      collect() {
        this.set(sources.framesInFlight?.() ?? 0);
      },
    });
    new Gauge({
      name: "hazard_stream_subscribers",
      help: "Open WebSocket connections and SSE streams.",
      labelNames: ["kind"] as const,
      registers: [this.registry],
      collect() {
        const open = sources.subscribers?.() ?? { websocket: 0, sse: 0 };
        this.set({ kind: "websocket" }, open.websocket);
        this.set({ kind: "sse" }, open.sse);
      },
    });
    this.connections.set({ protocol: "h2" }, 0);
    this.connections.set({ protocol: "http1" }, 0);
    this.modelReady.set(0);
  }

  /** A frame reached a session (`detect` frames are counted by the metrics interceptor). */
  frameReceived(door: Door): void {
    this.framesReceived.inc({ door: doorLabel(door) });
  }

  /** A frame's result: counts it and observes its stage and end-to-end times. */
  frameProcessed(source: Door | "detect", result: DetectionResult, endToEndMs: number): void {
    const door = source === "detect" ? source : doorLabel(source);
    this.framesProcessed.inc({ door });
    const t = result.timings;
    if (t) {
      if (door !== "detect") this.stageSeconds.observe({ stage: "queue_wait" }, t.queueMs / 1000);
      this.stageSeconds.observe({ stage: "preprocess" }, t.preprocessMs / 1000);
      this.stageSeconds.observe({ stage: "inference" }, t.inferenceMs / 1000);
      this.stageSeconds.observe({ stage: "postprocess" }, t.postprocessMs / 1000);
    }
    this.frameSeconds.observe({ door }, endToEndMs / 1000);
  }

  frameFailed(source: Door | "detect", code: ErrorCode): void {
    this.framesFailed.inc({ door: source === "detect" ? source : doorLabel(source), code: errorCodeLabel(code) });
  }

  frameDropped(door: Door, reason: DropReason): void {
    this.framesDropped.inc({ door: doorLabel(door), reason: dropReasonLabel(reason) });
  }

  engineLoaded(engine: InferenceEngine, modelVersion: string): void {
    const model = engine.model.path.split(/[\\/]/).pop() ?? "";
    this.engineInfo.reset();
    this.engineInfo.set({ backend: engine.backend, device: engine.device, model, model_version: modelVersion }, 1);
    this.engineConcurrency.reset();
    this.engineConcurrency.set({ backend: engine.backend, device: engine.device }, engine.concurrency);
    this.modelReady.set(1);
  }

  /** The exposition text with process metrics; for `GET /metrics`. */
  async render(): Promise<{ contentType: string; body: string }> {
    const merged = Registry.merge([processMetrics(), this.registry]);
    return { contentType: merged.contentType, body: await merged.metrics() };
  }
}
