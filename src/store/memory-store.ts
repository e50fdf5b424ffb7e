import { create } from "@bufbuild/protobuf";
import { WatchSessionResponseSchema, type WatchSessionResponse } from "../../gen/hazard/stream/v1/session_service_pb.js";
import type { DropReason } from "../../gen/hazard/stream/v1/types_pb.js";
import type { EffectiveConfig } from "../streaming/session-config.js";
import { eventBytes } from "../streaming/event-size.js";
import {
  DEFAULT_REPLAY_WINDOW_BYTES,
  outcomeField,
  REPLAY_WINDOW,
  TRACK_ID_BLOCK,
  type CounterSnapshot,
  type CreateOutcome,
  type EventListener,
  type InstanceReport,
  type LatencySnapshot,
  type SessionEvent,
  type SessionQuota,
  type SessionRecord,
  type SessionStore,
} from "./session-store.js";

interface Entry {
  record: SessionRecord;
  nextEventId: bigint;
  replay: WatchSessionResponse[];
  /** What `replay` holds, as eventBytes counts it. */
  replayBytes: number;
  listeners: Set<EventListener>;
  counters: CounterSnapshot;
  latency?: LatencySnapshot;
  trackIdBlocks: number;
}

/** The embedded default: one instance, everything in this process. Expiry is the manager's sweep. */
export class MemoryStore implements SessionStore {
  readonly kind = "memory";
  private readonly entries = new Map<string, Entry>();
  private report: InstanceReport | undefined;
  private readonly replayWindowBytes: number;

  constructor(opts: { replayWindowBytes?: number } = {}) {
    this.replayWindowBytes = opts.replayWindowBytes ?? DEFAULT_REPLAY_WINDOW_BYTES;
  }

  /** Bytes the session's replay window holds (0 once the session is gone). */
  replayBytes(clientId: string): number {
    return this.entries.get(clientId)?.replayBytes ?? 0;
  }

  async create(record: SessionRecord, quota?: SessionQuota): Promise<CreateOutcome> {
    if (quota) {
      if (this.entries.size >= quota.maxSessions) return "store_full";
      if (record.owner !== "") {
        let owned = 0;
        for (const e of this.entries.values()) if (e.record.owner === record.owner) owned++;
        if (owned >= quota.maxPerOwner) return "owner_full";
      }
    }
    this.entries.set(record.clientId, {
      record: { ...record },
      nextEventId: 1n,
      replay: [],
      replayBytes: 0,
      listeners: new Set(),
      counters: emptyCounters(),
      trackIdBlocks: 0,
    });
    return "created";
  }

  async get(clientId: string): Promise<SessionRecord | undefined> {
    const e = this.entries.get(clientId);
    return e ? { ...e.record } : undefined;
  }

  async updateConfig(clientId: string, update: (c: EffectiveConfig) => EffectiveConfig): Promise<SessionRecord | undefined> {
    const e = this.entries.get(clientId);
    if (!e) return undefined;
    e.record.config = update(e.record.config);
    e.record.configVersion++;
    return { ...e.record };
  }

  async touch(clientId: string, nowMs: number, received: number): Promise<void> {
    const e = this.entries.get(clientId);
    if (!e) return;
    e.record.lastActivityMs = nowMs;
    e.counters.received += received;
  }

  async delete(clientId: string): Promise<boolean> {
    return this.entries.delete(clientId);
  }

  async list(): Promise<SessionRecord[]> {
    return [...this.entries.values()].map((e) => ({ ...e.record }));
  }

  async counters(clientId: string): Promise<CounterSnapshot> {
    const c = this.entries.get(clientId)?.counters;
    return c ? { ...c, drops: new Map(c.drops), hazards: new Map(c.hazards) } : emptyCounters();
  }

  async countHazards(clientId: string, byClass: ReadonlyMap<string, number>): Promise<void> {
    const hazards = this.entries.get(clientId)?.counters.hazards;
    if (!hazards) return;
    for (const [name, n] of byClass) hazards.set(name, (hazards.get(name) ?? 0) + n);
  }

  async reserveTrackIds(clientId: string): Promise<number> {
    const e = this.entries.get(clientId);
    const block = e ? e.trackIdBlocks++ : 0;
    return 1 + block * TRACK_ID_BLOCK;
  }

  async saveLatency(clientId: string, snapshot: LatencySnapshot): Promise<void> {
    const e = this.entries.get(clientId);
    if (e) e.latency = snapshot;
  }

  async latency(clientId: string): Promise<LatencySnapshot | undefined> {
    return this.entries.get(clientId)?.latency;
  }

  async publish(clientId: string, event: SessionEvent): Promise<WatchSessionResponse> {
    const e = this.entries.get(clientId);
    const msg = create(WatchSessionResponseSchema, { eventId: e ? e.nextEventId++ : 0n, event });
    if (!e) return msg;
    countOutcome(e.counters, outcomeField(event));
    e.replay.push(msg);
    e.replayBytes += eventBytes(msg);
    while (e.replay.length > 1 && (e.replay.length > REPLAY_WINDOW || e.replayBytes > this.replayWindowBytes)) {
      const old = e.replay.shift();
      if (old) e.replayBytes -= eventBytes(old);
    }
    for (const l of e.listeners) l(msg);
    return msg;
  }

  async subscribe(clientId: string, listener: EventListener): Promise<() => void> {
    const e = this.entries.get(clientId);
    e?.listeners.add(listener);
    return () => e?.listeners.delete(listener);
  }

  async replay(clientId: string, afterEventId: bigint): Promise<WatchSessionResponse[]> {
    return (this.entries.get(clientId)?.replay ?? []).filter((m) => m.eventId > afterEventId);
  }

  async lostContents(): Promise<boolean> {
    return false;
  }

  async restore(): Promise<boolean> {
    // This process is the store: what it holds cannot vanish under it.
    return false;
  }

  async reportInstance(report: InstanceReport): Promise<void> {
    this.report = report;
  }

  async instances(): Promise<InstanceReport[]> {
    return this.report ? [this.report] : [];
  }

  async close(): Promise<void> {
    this.entries.clear();
  }
}

function emptyCounters(): CounterSnapshot {
  return { received: 0, processed: 0, failed: 0, drops: new Map(), hazards: new Map() };
}

export function countOutcome(c: CounterSnapshot, field: string | undefined): void {
  if (field === "processed") c.processed++;
  else if (field === "failed") c.failed++;
  else if (field?.startsWith("drop:")) {
    const reason = Number(field.slice(5)) as DropReason;
    c.drops.set(reason, (c.drops.get(reason) ?? 0) + 1);
  }
}
