import { randomBytes } from "node:crypto";
import { fromBinary, toBinary, create } from "@bufbuild/protobuf";
import { Redis } from "ioredis";
import type { Logger } from "pino";
import type { Door } from "../../gen/hazard/stream/v1/session_pb.js";
import { WatchSessionResponseSchema, type WatchSessionResponse } from "../../gen/hazard/stream/v1/session_service_pb.js";
import type { DropReason } from "../../gen/hazard/stream/v1/types_pb.js";
import type { EffectiveConfig } from "../streaming/session-config.js";
import { knownEventBytes } from "../streaming/event-size.js";
import { REDIS_SCRIPTS } from "./redis-scripts.js";
import {
  DEFAULT_REPLAY_WINDOW_BYTES,
  outcomeField,
  REPLAY_WINDOW,
  TRACK_ID_BLOCK,
  StoreUnavailableError,
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

export interface RedisStoreOptions {
  url: string;
  /** Every key and channel starts with this, so several deployments (or tests) share one Redis. */
  keyPrefix: string;
  /** Keys live this long past the last activity; the expiry sweep normally ends sessions first. */
  sessionTtlMs: number;
  /** Byte budget of a session's replay list (default DEFAULT_REPLAY_WINDOW_BYTES). */
  replayWindowBytes?: number;
  logger: Logger;
}

type ScriptedRedis = Redis & {
  hsCreate(s: string, idx: string, owned: string, ...argv: string[]): Promise<number>;
  hsTouch(s: string, c: string, q: string, r: string, l: string, idx: string, now: string, ttl: string, received: string, id: string): Promise<number>;
  hsSetConfig(s: string, expectedVersion: string, config: string): Promise<number>;
  hsRestore(s: string, idx: string, owned: string, c: string, q: string, ...argv: string[]): Promise<number>;
  hsPublish(q: string, r: string, c: string, channel: string, payload: Buffer, field: string, ttl: string, window: string, windowBytes: string): Promise<number>;
};

/** Separates the event id from the protobuf payload in replay entries and pub/sub messages. */
const SEP = 0x7c; // '|'

/**
 * Sessions shared by every instance through Redis: records and counters in hashes with a TTL,
 * events numbered per session and fanned out with pub/sub, a bounded replay list per session.
 * Commands fail fast while Redis is away (no offline queue), so callers get UNAVAILABLE at once
 * instead of hanging; ioredis reconnects by itself and the subscriber resubscribes.
 */
export class RedisStore implements SessionStore {
  readonly kind = "redis";
  private readonly cmd: ScriptedRedis;
  private readonly sub: Redis;
  private readonly listeners = new Map<string, Set<EventListener>>();
  readonly instanceId = randomBytes(6).toString("hex");
  /**
   * The store's epoch as this instance last read it: a random value written once under the prefix
   * (no TTL), so only a Redis that lost its data (restart without persistence, FLUSHALL, the prefix
   * deleted) is without it. Sessions deleted one by one never touch it.
   */
  private epoch: string | undefined;

  constructor(private readonly opts: RedisStoreOptions) {
    const common = {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      commandTimeout: 2000,
      retryStrategy: (times: number) => Math.min(100 * times, 2000),
      lazyConnect: true,
    };
    this.cmd = new Redis(opts.url, common) as ScriptedRedis;
    this.sub = new Redis(opts.url, { ...common, commandTimeout: undefined });
    for (const [name, def] of Object.entries(REDIS_SCRIPTS)) this.cmd.defineCommand(name, def);
    for (const c of [this.cmd, this.sub]) {
      c.on("error", (err: Error) => opts.logger.warn({ err: err.message }, "redis connection error"));
    }
    this.sub.on("messageBuffer", (channel: Buffer, message: Buffer) => this.dispatch(channel.toString(), message));
  }

  /** Connects both connections; rejects (and keeps retrying in the background) if Redis is down. */
  async connect(): Promise<void> {
    await Promise.all([this.cmd.connect(), this.sub.connect()]);
  }

  get ready(): boolean {
    return this.cmd.status === "ready" && this.sub.status === "ready";
  }

  private key(kind: string, id = ""): string {
    return `${this.opts.keyPrefix}${kind}:${id}`;
  }

  private keys(clientId: string) {
    return {
      s: this.key("s", clientId),
      c: this.key("c", clientId),
      q: this.key("q", clientId),
      r: this.key("r", clientId),
      l: this.key("l", clientId),
      idx: this.key("idx"),
      channel: this.key("e", clientId),
    };
  }

  private async run<T>(op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (err) {
      if (err instanceof StoreUnavailableError) throw err;
      throw new StoreUnavailableError("session store (Redis) is unavailable", { cause: err });
    }
  }

  async create(r: SessionRecord, quota?: SessionQuota): Promise<CreateOutcome> {
    const k = this.keys(r.clientId);
    // One script: the count and the creation are atomic across every instance.
    const outcome = await this.run(() =>
      this.cmd.hsCreate(
        k.s,
        k.idx,
        this.key("o", r.owner),
        String(r.lastActivityMs),
        String(this.opts.sessionTtlMs),
        r.clientId,
        String(quota?.maxSessions ?? 0),
        String(quota?.maxPerOwner ?? 0),
        r.owner,
        String(r.door),
        JSON.stringify(r.config),
        String(r.configVersion),
        String(r.createdAtMs),
        String(r.lastActivityMs),
      ),
    );
    return outcome === -1 ? "store_full" : outcome === -2 ? "owner_full" : "created";
  }

  async get(clientId: string): Promise<SessionRecord | undefined> {
    const h = await this.run(() => this.cmd.hgetall(this.keys(clientId).s));
    if (!h.config) return undefined;
    return {
      clientId,
      // Records written before sessions had owners belong to no key.
      owner: h.owner ?? "",
      door: Number(h.door) as Door,
      config: JSON.parse(h.config) as EffectiveConfig,
      configVersion: Number(h.configVersion),
      createdAtMs: Number(h.createdAtMs),
      lastActivityMs: Number(h.lastActivityMs),
    };
  }

  async updateConfig(clientId: string, update: (c: EffectiveConfig) => EffectiveConfig): Promise<SessionRecord | undefined> {
    // Optimistic concurrency: validate in TypeScript, commit only if nobody changed it meanwhile.
    for (let attempt = 0; attempt < 5; attempt++) {
      const cur = await this.get(clientId);
      if (!cur) return undefined;
      const next = update(cur.config);
      const version = await this.run(() =>
        this.cmd.hsSetConfig(this.keys(clientId).s, String(cur.configVersion), JSON.stringify(next)),
      );
      if (version === 0) return undefined;
      if (version > 0) return { ...cur, config: next, configVersion: version };
    }
    throw new StoreUnavailableError("config changed concurrently too often; try again");
  }

  async touch(clientId: string, nowMs: number, received: number): Promise<void> {
    const k = this.keys(clientId);
    await this.run(() =>
      this.cmd.hsTouch(k.s, k.c, k.q, k.r, k.l, k.idx, String(nowMs), String(this.opts.sessionTtlMs), String(received), clientId),
    );
  }

  async delete(clientId: string): Promise<boolean> {
    const k = this.keys(clientId);
    const res = await this.run(() => this.cmd.multi().del(k.s).del(k.c, k.l, k.r, k.q).zrem(k.idx, clientId).exec());
    return Number(res?.[0]?.[1] ?? 0) > 0;
  }

  async list(): Promise<SessionRecord[]> {
    const idx = this.key("idx");
    const now = Date.now();
    await this.run(() => this.cmd.zremrangebyscore(idx, "-inf", now));
    const ids = await this.run(() => this.cmd.zrangebyscore(idx, now, "+inf"));
    const records = await Promise.all(ids.map((id) => this.get(id)));
    return records.filter((r): r is SessionRecord => r !== undefined);
  }

  async counters(clientId: string): Promise<CounterSnapshot> {
    const h = await this.run(() => this.cmd.hgetall(this.keys(clientId).c));
    const drops = new Map<DropReason, number>();
    const hazards = new Map<string, number>();
    for (const [f, v] of Object.entries(h)) {
      if (f.startsWith("drop:")) drops.set(Number(f.slice(5)) as DropReason, Number(v));
      else if (f.startsWith("hazard:")) hazards.set(f.slice(7), Number(v));
    }
    return { received: Number(h.received ?? 0), processed: Number(h.processed ?? 0), failed: Number(h.failed ?? 0), drops, hazards };
  }

  async countHazards(clientId: string, byClass: ReadonlyMap<string, number>): Promise<void> {
    if (byClass.size === 0) return;
    const c = this.keys(clientId).c;
    const tx = this.cmd.multi();
    for (const [name, n] of byClass) tx.hincrby(c, `hazard:${name}`, n);
    // The counters hash normally exists (touch wrote it); a TTL keeps a late write from leaking it.
    await this.run(() => tx.pexpire(c, this.opts.sessionTtlMs).exec());
  }

  async reserveTrackIds(clientId: string): Promise<number> {
    const c = this.keys(clientId).c;
    const res = await this.run(() => this.cmd.multi().hincrby(c, "trackIdBlocks", 1).pexpire(c, this.opts.sessionTtlMs).exec());
    const blocks = Number(res?.[0]?.[1] ?? 1);
    return 1 + (blocks - 1) * TRACK_ID_BLOCK;
  }

  async saveLatency(clientId: string, snapshot: LatencySnapshot): Promise<void> {
    await this.run(() => this.cmd.set(this.keys(clientId).l, JSON.stringify(snapshot), "PX", this.opts.sessionTtlMs));
  }

  async latency(clientId: string): Promise<LatencySnapshot | undefined> {
    const raw = await this.run(() => this.cmd.get(this.keys(clientId).l));
    return raw ? (JSON.parse(raw) as LatencySnapshot) : undefined;
  }

  async publish(clientId: string, event: SessionEvent): Promise<WatchSessionResponse> {
    const k = this.keys(clientId);
    const payload = Buffer.from(toBinary(WatchSessionResponseSchema, create(WatchSessionResponseSchema, { event })));
    const id = await this.run(() =>
      this.cmd.hsPublish(
        k.q,
        k.r,
        k.c,
        k.channel,
        payload,
        outcomeField(event) ?? "",
        String(this.opts.sessionTtlMs),
        String(REPLAY_WINDOW),
        String(this.opts.replayWindowBytes ?? DEFAULT_REPLAY_WINDOW_BYTES),
      ),
    );
    return create(WatchSessionResponseSchema, { eventId: BigInt(id), event });
  }

  async subscribe(clientId: string, listener: EventListener): Promise<() => void> {
    const channel = this.keys(clientId).channel;
    let set = this.listeners.get(channel);
    if (!set) {
      set = new Set();
      this.listeners.set(channel, set);
      try {
        await this.run(() => this.sub.subscribe(channel));
      } catch (err) {
        this.listeners.delete(channel);
        throw err;
      }
    }
    set.add(listener);
    return () => {
      const s = this.listeners.get(channel);
      if (!s) return;
      s.delete(listener);
      if (s.size === 0) {
        this.listeners.delete(channel);
        this.sub.unsubscribe(channel).catch(() => undefined);
      }
    };
  }

  async replay(clientId: string, afterEventId: bigint): Promise<WatchSessionResponse[]> {
    const entries = await this.run(() => this.cmd.lrangeBuffer(this.keys(clientId).r, 0, -1));
    return entries.map(decodeEntry).filter((m): m is WatchSessionResponse => m !== undefined && m.eventId > afterEventId);
  }

  async lostContents(): Promise<boolean> {
    const key = this.key("epoch");
    let current = await this.run(() => this.cmd.get(key));
    if (current !== null && current === this.epoch) return false;
    if (current === null) {
      // NX: when several instances notice at once, they all adopt the first one's new epoch.
      await this.run(() => this.cmd.set(key, randomBytes(8).toString("hex"), "NX"));
      current = await this.run(() => this.cmd.get(key));
    }
    const first = this.epoch === undefined;
    this.epoch = current ?? undefined;
    return !first;
  }

  async restore(r: SessionRecord, used: { lastEventId: bigint; trackIdBlocks: number }): Promise<boolean> {
    const k = this.keys(r.clientId);
    const restored = await this.run(() =>
      this.cmd.hsRestore(
        k.s,
        k.idx,
        this.key("o", r.owner),
        k.c,
        k.q,
        String(r.lastActivityMs),
        String(this.opts.sessionTtlMs),
        r.clientId,
        r.owner,
        String(r.door),
        JSON.stringify(r.config),
        String(r.configVersion),
        String(r.createdAtMs),
        String(used.lastEventId),
        String(used.trackIdBlocks),
      ),
    );
    return restored === 1;
  }

  async reportInstance(report: InstanceReport): Promise<void> {
    const ttl = 6000;
    const insts = this.key("insts");
    await this.run(() =>
      this.cmd
        .multi()
        .set(this.key("i", report.instanceId), JSON.stringify(report), "PX", ttl)
        .zadd(insts, Date.now() + ttl, report.instanceId)
        .zremrangebyscore(insts, "-inf", Date.now())
        .exec(),
    );
  }

  async instances(): Promise<InstanceReport[]> {
    const ids = await this.run(() => this.cmd.zrangebyscore(this.key("insts"), Date.now(), "+inf"));
    if (ids.length === 0) return [];
    const raws = await this.run(() => this.cmd.mget(ids.map((id) => this.key("i", id))));
    return raws.filter((r): r is string => r !== null).map((r) => JSON.parse(r) as InstanceReport);
  }

  async close(): Promise<void> {
    this.listeners.clear();
    this.cmd.disconnect();
    this.sub.disconnect();
  }

  private dispatch(channel: string, message: Buffer): void {
    const set = this.listeners.get(channel);
    if (!set) return;
    const msg = decodeEntry(message);
    if (!msg) return;
    knownEventBytes(msg, message.length);
    for (const l of set) l(msg);
  }
}

function decodeEntry(entry: Buffer): WatchSessionResponse | undefined {
  const sep = entry.indexOf(SEP);
  if (sep <= 0) return undefined;
  try {
    const msg = fromBinary(WatchSessionResponseSchema, entry.subarray(sep + 1));
    msg.eventId = BigInt(entry.subarray(0, sep).toString());
    return msg;
  } catch {
    return undefined;
  }
}
