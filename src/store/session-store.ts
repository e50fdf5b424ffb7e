import type { Door } from "../../gen/hazard/stream/v1/session_pb.js";
import type { WatchSessionResponse } from "../../gen/hazard/stream/v1/session_service_pb.js";
import type { DropReason } from "../../gen/hazard/stream/v1/types_pb.js";
import type { EffectiveConfig } from "../streaming/session-config.js";

/** The shared, authoritative state of a session (what every instance must agree on). */
export interface SessionRecord {
  clientId: string;
  /** Hash of the API key that created the session ("" without keys); other keys cannot see it. */
  owner: string;
  door: Door;
  config: EffectiveConfig;
  configVersion: number;
  createdAtMs: number;
  lastActivityMs: number;
}

/** The event oneof of WatchSessionResponse: the one event type every door consumes. */
export type SessionEvent = WatchSessionResponse["event"];

/** Frame outcome counters of a session, summed over every instance that handled its frames. */
export interface CounterSnapshot {
  received: number;
  processed: number;
  failed: number;
  drops: Map<DropReason, number>;
  /** Confirmed hazard tracks per class name, summed over every instance's tracker of the session. */
  hazards: Map<string, number>;
}

/**
 * Track ids a session's tracker takes at a time (reserveTrackIds): each instance that tracks the
 * session's frames takes its own block, so ids stay unique within the session across instances.
 * 2^20 keeps 4095 blocks inside the uint32 `track_id`.
 */
export const TRACK_ID_BLOCK = 2 ** 20;

/** Latency percentiles, as last reported by an instance that processes the session's frames. */
export interface LatencySnapshot {
  processingMs: { p50: number; p95: number; p99: number; mean: number; samples: number };
  latencyMs: { p50: number; p95: number; p99: number; mean: number; samples: number };
  effectiveFps: number;
  queueDepth: number;
}

/** What one instance reports about itself for service-wide stats. */
export interface InstanceReport {
  instanceId: string;
  processed: number;
  dropped: number;
  failed: number;
  throughputFps: number;
  startedAtMs: number;
}

export type EventListener = (event: WatchSessionResponse) => void;

/** Limits checked atomically with a session's creation, across every instance sharing the store. */
export interface SessionQuota {
  /** Sessions alive at once in the store. */
  maxSessions: number;
  /** Sessions alive at once with the new session's owner (not checked for owner ""). */
  maxPerOwner: number;
}

/** `created`, or which quota refused the session. */
export type CreateOutcome = "created" | "store_full" | "owner_full";

/** A store operation failed because the backing store (Redis) is unreachable. */
export class StoreUnavailableError extends Error {
  override name = "StoreUnavailableError";
}

/**
 * Sessions and their event bus. In-memory for a single instance; Redis when several instances
 * behind a load balancer share sessions. Every method may reject with StoreUnavailableError.
 */
export interface SessionStore {
  readonly kind: "memory" | "redis";
  /** Stores a new session unless `quota` refuses it (checked atomically with the creation). */
  create(record: SessionRecord, quota?: SessionQuota): Promise<CreateOutcome>;
  get(clientId: string): Promise<SessionRecord | undefined>;
  /**
   * Replaces the config and bumps configVersion atomically; `update` may throw (validation) and
   * may be called again if another instance changed the config concurrently.
   */
  updateConfig(clientId: string, update: (current: EffectiveConfig) => EffectiveConfig): Promise<SessionRecord | undefined>;
  /** Records a received frame: refreshes last activity and the expiry of every key. */
  touch(clientId: string, nowMs: number, received: number): Promise<void>;
  /** Removes the session; false when it did not exist. */
  delete(clientId: string): Promise<boolean>;
  list(): Promise<SessionRecord[]>;
  counters(clientId: string): Promise<CounterSnapshot>;
  /** Adds confirmed hazard tracks (per class name) to the session's counters. */
  countHazards(clientId: string, byClass: ReadonlyMap<string, number>): Promise<void>;
  /**
   * Reserves the session's next block of TRACK_ID_BLOCK track ids and returns its first id: 1 for
   * the first block, then 1 + TRACK_ID_BLOCK, and so on.
   */
  reserveTrackIds(clientId: string): Promise<number>;
  saveLatency(clientId: string, snapshot: LatencySnapshot): Promise<void>;
  latency(clientId: string): Promise<LatencySnapshot | undefined>;

  /** Assigns the next event id of the session, counts the outcome, and delivers to subscribers everywhere. */
  publish(clientId: string, event: SessionEvent): Promise<WatchSessionResponse>;
  /** Delivers the session's future events to `listener`; resolves once the subscription is live. */
  subscribe(clientId: string, listener: EventListener): Promise<() => void>;
  /** Recent events after `afterEventId`, oldest first, from the bounded replay window. */
  replay(clientId: string, afterEventId: bigint): Promise<WatchSessionResponse[]>;

  /**
   * Whether the store lost its contents since the previous call (a Redis restarted without
   * persistence, or emptied): true once per loss, so the caller writes its live sessions back
   * (restore). The first call only learns the store's state. Never true for the in-memory store.
   */
  lostContents(): Promise<boolean>;
  /**
   * Writes a live session back after a loss: its record, its place in the index and its owner's set
   * (so quotas and stats count it again), without a quota check, and the session's event counter and
   * track-id blocks no lower than this instance has used. False when the record was there.
   */
  restore(record: SessionRecord, used: { lastEventId: bigint; trackIdBlocks: number }): Promise<boolean>;

  reportInstance(report: InstanceReport): Promise<void>;
  /** Reports of every live instance (this one included). */
  instances(): Promise<InstanceReport[]>;
  close(): Promise<void>;
}

/** Events kept for replay (SSE Last-Event-ID, watch resumption). */
export const REPLAY_WINDOW = 64;
/**
 * Default byte budget of a session's replay window (STREAMING_REPLAY_WINDOW_BYTES): the oldest
 * events go once the window holds more, the newest always stays. 64 events at the metadata limit
 * (64 KiB) fit; results without metadata are a few kilobytes.
 */
export const DEFAULT_REPLAY_WINDOW_BYTES = 4 * 1024 * 1024;

/** Counter field an event increments, if it is a frame outcome. */
export function outcomeField(event: SessionEvent): string | undefined {
  switch (event.case) {
    case "result":
      return "processed";
    case "error":
      return event.value.frameId === "" ? undefined : "failed";
    case "dropped":
      return `drop:${event.value.reason}`;
    default:
      return undefined;
  }
}
