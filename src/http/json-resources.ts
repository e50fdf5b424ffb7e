import type {
  LatencySummary,
  ServiceStats,
  SessionStats,
  SubmitFrameResponse,
} from "../../gen/hazard/stream/v1/session_service_pb.js";
import { DropReason } from "../../gen/hazard/stream/v1/types_pb.js";
import { doorName, dropReasonName, round, seconds } from "./json-messages.js";

/**
 * REST response bodies (stats, health, frame submission) in snake_case, built from the service's
 * messages. Counters are uint64 (bigint) in protobuf; they are far below 2^53 in practice, so they
 * become plain JSON numbers rather than strings.
 */

const count = (v: bigint): number => Number(v);

export interface LatencyJson {
  p50: number;
  p95: number;
  p99: number;
  mean: number;
  samples: number;
}

const latencyJson = (l: LatencySummary | undefined): LatencyJson => ({
  p50: round(l?.p50 ?? 0, 2),
  p95: round(l?.p95 ?? 0, 2),
  p99: round(l?.p99 ?? 0, 2),
  mean: round(l?.mean ?? 0, 2),
  samples: l?.samples ?? 0,
});

export interface SubmitFrameJson {
  frame_id: string;
  accepted: boolean;
  /** Only when the frame was not queued. */
  drop_reason?: string;
  queue_depth: number;
  allowed_fps: number;
}

export function submitFrameJson(r: SubmitFrameResponse): SubmitFrameJson {
  const json: SubmitFrameJson = {
    frame_id: r.frameId,
    accepted: r.accepted,
    queue_depth: r.queueDepth,
    allowed_fps: round(r.allowedFps, 2),
  };
  if (!r.accepted || r.dropReason !== DropReason.UNSPECIFIED) json.drop_reason = dropReasonName(r.dropReason);
  return json;
}

export interface SessionStatsJson {
  client_id: string;
  frames_received: number;
  frames_processed: number;
  frames_dropped: number;
  frames_failed: number;
  /** Drops by reason name, e.g. `{"FPS_LIMIT": 3}`. */
  drops: Record<string, number>;
  effective_fps: number;
  processing_time_ms: LatencyJson;
  latency_ms: LatencyJson;
  queue_depth: number;
  allowed_fps: number;
  /** Confirmed tracks per class name (tracking only). */
  unique_hazards: Record<string, number>;
  created_at: number | null;
  last_activity_at: number | null;
}

export function sessionStatsJson(s: SessionStats): SessionStatsJson {
  return {
    client_id: s.clientId,
    frames_received: count(s.framesReceived),
    frames_processed: count(s.framesProcessed),
    frames_dropped: count(s.framesDropped),
    frames_failed: count(s.framesFailed),
    drops: Object.fromEntries(s.drops.map((d) => [dropReasonName(d.reason), count(d.count)])),
    effective_fps: round(s.effectiveFps, 2),
    processing_time_ms: latencyJson(s.processingTimeMs),
    latency_ms: latencyJson(s.latencyMs),
    queue_depth: s.queueDepth,
    allowed_fps: round(s.allowedFps, 2),
    unique_hazards: Object.fromEntries(s.uniqueHazards.map((c) => [c.className, count(c.count)])),
    created_at: seconds(s.createdAt),
    last_activity_at: seconds(s.lastActivityAt),
  };
}

export interface EngineJson {
  backend: string;
  device: string;
  model: string;
  classes: string[];
  input_size: [width: number, height: number];
  dynamic_input_size: boolean;
  dynamic_batch: boolean;
  description: string;
}

export interface ServiceStatsJson {
  active_sessions: number;
  /** Live sessions per door name, e.g. `{"SESSION_API": 2, "WEBSOCKET": 1}`. */
  sessions_by_door: Record<string, number>;
  frames_processed: number;
  frames_dropped: number;
  frames_failed: number;
  throughput_fps: number;
  uptime_seconds: number;
  instances: number;
  started_at: number | null;
  engine: EngineJson;
}

export function serviceStatsJson(s: ServiceStats): ServiceStatsJson {
  const e = s.engine;
  return {
    active_sessions: s.activeSessions,
    sessions_by_door: Object.fromEntries(s.sessionsByDoor.map((d) => [doorName(d.door), d.count])),
    frames_processed: count(s.framesProcessed),
    frames_dropped: count(s.framesDropped),
    frames_failed: count(s.framesFailed),
    throughput_fps: round(s.throughputFps, 2),
    uptime_seconds: round(s.uptimeSeconds, 1),
    instances: s.instances,
    started_at: seconds(s.startedAt),
    engine: {
      backend: e?.backend ?? "",
      device: e?.device ?? "",
      model: e?.model ?? "",
      classes: [...(e?.classNames ?? [])],
      input_size: [e?.inputWidth ?? 0, e?.inputHeight ?? 0],
      dynamic_input_size: e?.dynamicInputSize ?? false,
      dynamic_batch: e?.dynamicBatch ?? false,
      description: e?.description ?? "",
    },
  };
}

export interface HealthJson {
  status: "healthy";
  model: string;
  backend: string;
  device: string;
  classes: string[];
  active_sessions: number;
  uptime_seconds: number;
}

/** Health is "the service answers its own stats call": the model is loaded and the RPC path works. */
export function healthJson(s: ServiceStats): HealthJson {
  const stats = serviceStatsJson(s);
  return {
    status: "healthy",
    model: stats.engine.model,
    backend: stats.engine.backend,
    device: stats.engine.device,
    classes: stats.engine.classes,
    active_sessions: stats.active_sessions,
    uptime_seconds: stats.uptime_seconds,
  };
}
