import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { SessionSchema, type Door, type Session } from "../../gen/hazard/stream/v1/session_pb.js";
import type { WatchSessionResponse } from "../../gen/hazard/stream/v1/session_service_pb.js";
import {
  DropReason,
  FlowControlSchema,
  FrameDroppedSchema,
  type FlowControl,
  type Frame,
} from "../../gen/hazard/stream/v1/types_pb.js";
import type { SessionEvent, SessionRecord } from "../store/session-store.js";
import { FpsLimiter } from "./rate-limiter.js";
import { toProtoConfig, type EffectiveConfig } from "./session-config.js";
import { SessionCounters } from "./session-counters.js";
import { SessionTracking } from "./session-tracking.js";
import { eventBytes } from "./event-size.js";
import { SubscriberQueue } from "./subscriber-queue.js";

/** A frame accepted into a session's queue. */
export interface QueuedFrame {
  frame: Frame;
  receivedAtMs: number;
}

/** How a session runtime reaches its manager. */
export interface SessionHooks {
  /** The session has a frame waiting. */
  onReady(session: LiveSession): void;
  /** Publishes an event of the session to every instance (drops, flow control). */
  publish(session: LiveSession, event: SessionEvent): void;
}

export interface SubmitOutcome {
  frameId: string;
  accepted: boolean;
  dropReason: DropReason;
  queueDepth: number;
}

/**
 * The runtime of one session on this instance: a copy of its shared record, its bounded frame
 * queue and FPS limit (frames are processed where they arrive), local latency stats, and the
 * fan-out of the session's events (from the store's bus, so they may come from any instance) to
 * this instance's subscribers (bidi stream, watchers, SSE, WebSocket).
 */
export class LiveSession {
  private readonly queue: QueuedFrame[] = [];
  private readonly limiter: FpsLimiter;
  private readonly subscribers = new Set<SubscriberQueue<WatchSessionResponse>>();
  private frameSeq = 0;
  readonly clientId: string;
  /** Hash of the API key that created the session ("" without keys). */
  readonly owner: string;
  readonly door: Door;
  readonly createdAtMs: number;
  config: EffectiveConfig;
  configVersion: number;
  /** Last frame or config change seen by this instance. */
  lastActivityMs: number;
  /** Frames per second this session is told it may send (fps_limit, or less under load). */
  allowedFps: number;
  readonly counters = new SessionCounters();
  /** Frames offered (admitted or not) since the manager last took the count: this session's demand. */
  private offered = 0;
  /** Tracker state lives where the session's frames are processed. */
  readonly tracking = new SessionTracking();
  ended = false;
  /** Set once the session is ending: no frame is queued any more (see closeQueue). */
  private closing = false;
  /** Frames of this session being processed (see track). */
  private readonly running = new Set<Promise<void>>();
  /**
   * Ended here only, because this instance shut down: the session lives on in the shared store and
   * its clients may resume it on another instance.
   */
  handedOff = false;
  /** Highest event id this instance published for the session, and the highest the bus delivered. */
  private lastPublishedId = 0n;
  private lastDeliveredId = 0n;
  private caughtUpWaiter: (() => void) | undefined;
  /** Set by the manager: stops delivery of bus events to this runtime. */
  detachBus: () => void = () => undefined;

  constructor(
    record: SessionRecord,
    private readonly queueSize: number,
    private readonly sessionTimeoutMs: number,
    private readonly hooks: SessionHooks,
  ) {
    this.clientId = record.clientId;
    this.owner = record.owner;
    this.door = record.door;
    this.createdAtMs = record.createdAtMs;
    this.config = record.config;
    this.configVersion = record.configVersion;
    this.lastActivityMs = record.lastActivityMs;
    this.limiter = new FpsLimiter(record.config.fpsLimit);
    this.allowedFps = record.config.fpsLimit;
  }

  get queueDepth(): number {
    return this.queue.length;
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }

  /** Bytes of events waiting in this instance's subscriber queues of the session. */
  get subscriberBytes(): number {
    let n = 0;
    for (const s of this.subscribers) n += s.bytes;
    return n;
  }

  toProto(): Session {
    return sessionProto(this);
  }

  /** Adopts a newer shared record (config changed here or on another instance). */
  applyRecord(r: Pick<SessionRecord, "config" | "configVersion">): void {
    if (r.configVersion <= this.configVersion) return;
    this.config = r.config;
    this.configVersion = r.configVersion;
    this.limiter.setFps(r.config.fpsLimit);
    this.allowedFps = Math.min(this.allowedFps, r.config.fpsLimit);
  }

  /** Frames offered since the last call; resets the count. */
  takeOffered(): number {
    const n = this.offered;
    this.offered = 0;
    return n;
  }

  flowControl(reason: string): FlowControl {
    return create(FlowControlSchema, { allowedFps: this.allowedFps, reason });
  }

  /** Admits a frame (FPS limit, queue bound) without waiting for it to be processed. */
  submit(frame: Frame, nowMs: number): SubmitOutcome {
    this.lastActivityMs = nowMs;
    this.offered++;
    if (frame.frameId === "") frame.frameId = `${this.clientId.slice(0, 8)}-${++this.frameSeq}`;
    if (this.closing) {
      this.drop(frame.frameId, DropReason.SESSION_CLOSED);
      return { frameId: frame.frameId, accepted: false, dropReason: DropReason.SESSION_CLOSED, queueDepth: 0 };
    }
    if (!this.limiter.tryAcquire(nowMs)) {
      this.drop(frame.frameId, DropReason.FPS_LIMIT);
      return { frameId: frame.frameId, accepted: false, dropReason: DropReason.FPS_LIMIT, queueDepth: this.queue.length };
    }
    if (this.queue.length >= this.queueSize) {
      const oldest = this.queue.shift();
      if (oldest) this.drop(oldest.frame.frameId, DropReason.QUEUE_FULL);
    }
    this.queue.push({ frame, receivedAtMs: nowMs });
    this.hooks.onReady(this);
    return { frameId: frame.frameId, accepted: true, dropReason: DropReason.UNSPECIFIED, queueDepth: this.queue.length };
  }

  /**
   * The frame to process next. Live video wants the latest frame: when several are waiting (the
   * server fell behind), the older ones are dropped as superseded rather than processed late, so
   * latency stays bounded under overload.
   */
  takeNext(): QueuedFrame | undefined {
    const newest = this.queue.pop();
    for (const stale of this.queue.splice(0)) this.drop(stale.frame.frameId, DropReason.SUPERSEDED);
    return newest;
  }

  hasPending(): boolean {
    return this.queue.length > 0;
  }

  private drop(frameId: string, reason: DropReason): void {
    this.hooks.publish(this, { case: "dropped", value: create(FrameDroppedSchema, { frameId, reason }) });
  }

  /**
   * The session is ending: the frames still waiting are reported dropped (SESSION_CLOSED) now, so
   * their drops are published before the session's `ended`, and later frames are refused the same way.
   */
  closeQueue(): void {
    this.closing = true;
    for (const f of this.queue.splice(0)) this.drop(f.frame.frameId, DropReason.SESSION_CLOSED);
  }

  /** Counts a frame of this session being processed until `work` settles (see settled). */
  track(work: Promise<void>): void {
    this.running.add(work);
    void work.finally(() => this.running.delete(work));
  }

  /** Resolves once the frames of this session being processed have published their outcome. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.running]);
  }

  /** An event of this session arrived from the bus: keep the config in step, fan out locally. */
  deliver(msg: WatchSessionResponse): void {
    if (msg.eventId > this.lastDeliveredId) this.lastDeliveredId = msg.eventId;
    if (this.caughtUpWaiter && this.lastDeliveredId >= this.lastPublishedId) this.caughtUpWaiter();
    const e = msg.event;
    if (e.case === "configApplied") this.applyRecord({ config: configOf(e.value, this.config), configVersion: e.value.configVersion });
    for (const s of this.subscribers) s.push(msg);
    if (e.case === "ended") this.endLocal();
  }

  /** The highest event id of the session this instance has seen (published or delivered). */
  get lastEventId(): bigint {
    return this.lastPublishedId > this.lastDeliveredId ? this.lastPublishedId : this.lastDeliveredId;
  }

  /** The store numbered an event this instance published (it comes back through the bus). */
  published(eventId: bigint): void {
    if (eventId > this.lastPublishedId) this.lastPublishedId = eventId;
  }

  /**
   * Resolves once every event this instance published has come back through the bus and reached
   * this runtime's subscribers, or after `timeoutMs` (a bus that is down must not hold anything up).
   */
  caughtUp(timeoutMs: number): Promise<void> {
    if (this.ended || this.lastDeliveredId >= this.lastPublishedId) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.caughtUpWaiter = undefined;
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.caughtUpWaiter = done;
    });
  }

  /** A subscriber cut off past `capacity` events or `maxBytes` of them waiting (see SubscriberQueue). */
  subscribe(capacity: number, maxBytes?: number): SubscriberQueue<WatchSessionResponse> {
    const q = new SubscriberQueue<WatchSessionResponse>(capacity, maxBytes, eventBytes);
    if (this.ended) q.close();
    else this.subscribers.add(q);
    return q;
  }

  unsubscribe(q: SubscriberQueue<WatchSessionResponse>): void {
    this.subscribers.delete(q);
    q.close();
  }

  /** This instance stops serving the session, which lives on in the shared store (see handedOff). */
  handOff(final: WatchSessionResponse): void {
    this.handedOff = true;
    this.endLocal(final);
  }

  /** Stops this runtime: waiting frames are reported dropped, local subscribers are closed. */
  endLocal(final?: WatchSessionResponse): void {
    if (this.ended) return;
    for (const f of this.queue.splice(0)) this.drop(f.frame.frameId, DropReason.SESSION_CLOSED);
    this.ended = true;
    this.detachBus();
    for (const s of this.subscribers) {
      if (final) s.push(final);
      s.close();
    }
    this.subscribers.clear();
  }

  get expiresAtMs(): number {
    return this.lastActivityMs + this.sessionTimeoutMs;
  }
}

export function sessionProto(s: {
  clientId: string;
  config: EffectiveConfig;
  configVersion: number;
  door: Door;
  createdAtMs: number;
  lastActivityMs: number;
  expiresAtMs: number;
}): Session {
  return create(SessionSchema, {
    clientId: s.clientId,
    config: toProtoConfig(s.config),
    configVersion: s.configVersion,
    door: s.door,
    createdAt: timestampFromMs(s.createdAtMs),
    lastActivityAt: timestampFromMs(s.lastActivityMs),
    expiresAt: timestampFromMs(s.expiresAtMs),
  });
}

/** The effective config carried by a configApplied event (every field is present there). */
function configOf(s: Session, fallback: EffectiveConfig): EffectiveConfig {
  const c = s.config;
  if (!c) return fallback;
  return {
    fpsLimit: c.fpsLimit ?? fallback.fpsLimit,
    confidenceThreshold: c.confidenceThreshold ?? fallback.confidenceThreshold,
    iouThreshold: c.iouThreshold ?? fallback.iouThreshold,
    enableTracking: c.enableTracking ?? fallback.enableTracking,
    maxDetections: c.maxDetections ?? fallback.maxDetections,
    classNames: c.classFilter?.classNames ?? fallback.classNames,
    quality: c.quality ?? fallback.quality,
  };
}
