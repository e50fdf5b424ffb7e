import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { SessionSchema, type Door, type Session } from "../../gen/hazard/stream/v1/session_pb.js";
import {
  DropReason,
  FlowControlSchema,
  FrameDroppedSchema,
  type FlowControl,
  type Frame,
} from "../../gen/hazard/stream/v1/types_pb.js";
import {
  WatchSessionResponseSchema,
  type WatchSessionResponse,
} from "../../gen/hazard/stream/v1/session_service_pb.js";
import { FpsLimiter } from "./rate-limiter.js";
import { toProtoConfig, type EffectiveConfig } from "./session-config.js";
import { SessionCounters } from "./session-counters.js";
import { SubscriberQueue } from "./subscriber-queue.js";

/** A frame accepted into a session's queue. */
export interface QueuedFrame {
  frame: Frame;
  receivedAtMs: number;
}

/** How a session tells its manager about work and drops. */
export interface SessionHooks {
  /** The session has a frame waiting. */
  onReady(session: LiveSession): void;
  onDrop(reason: DropReason): void;
}

/** The event oneof of WatchSessionResponse: the one event type every door consumes. */
export type SessionEvent = WatchSessionResponse["event"];

export interface SubmitOutcome {
  frameId: string;
  accepted: boolean;
  dropReason: DropReason;
  queueDepth: number;
}

/** How many past events a late subscriber can replay (SSE Last-Event-ID, watch resumption). */
const REPLAY_WINDOW = 64;

/**
 * One session on this instance: its config, its bounded frame queue, its FPS limit, its counters,
 * and the fan-out of its events to subscribers (bidi stream, watchers, SSE, WebSocket).
 */
export class LiveSession {
  private readonly queue: QueuedFrame[] = [];
  private readonly limiter: FpsLimiter;
  private readonly subscribers = new Set<SubscriberQueue<WatchSessionResponse>>();
  private readonly replay: WatchSessionResponse[] = [];
  private nextEventId = 1n;
  private frameSeq = 0;
  configVersion = 1;
  lastActivityMs: number;
  readonly createdAtMs: number;
  readonly counters = new SessionCounters();
  ended = false;

  constructor(
    readonly clientId: string,
    readonly door: Door,
    public config: EffectiveConfig,
    private readonly queueSize: number,
    private readonly sessionTimeoutMs: number,
    private readonly hooks: SessionHooks,
    nowMs: number,
  ) {
    this.limiter = new FpsLimiter(config.fpsLimit);
    this.createdAtMs = nowMs;
    this.lastActivityMs = nowMs;
  }

  get queueDepth(): number {
    return this.queue.length;
  }

  toProto(): Session {
    return create(SessionSchema, {
      clientId: this.clientId,
      config: toProtoConfig(this.config),
      configVersion: this.configVersion,
      door: this.door,
      createdAt: timestampFromMs(this.createdAtMs),
      lastActivityAt: timestampFromMs(this.lastActivityMs),
      expiresAt: timestampFromMs(this.lastActivityMs + this.sessionTimeoutMs),
    });
  }

  setConfig(config: EffectiveConfig): void {
    const fpsChanged = config.fpsLimit !== this.config.fpsLimit;
    this.config = config;
    this.configVersion++;
    this.limiter.setFps(config.fpsLimit);
    this.publish({ case: "configApplied", value: this.toProto() });
    if (fpsChanged) this.publishFlowControl("fps_limit");
  }

  flowControl(reason: string): FlowControl {
    return create(FlowControlSchema, { allowedFps: this.config.fpsLimit, reason });
  }

  publishFlowControl(reason: string): void {
    this.publish({ case: "flowControl", value: this.flowControl(reason) });
  }

  /** Admits a frame (FPS limit, queue bound) without waiting for it to be processed. */
  submit(frame: Frame, nowMs: number): SubmitOutcome {
    this.lastActivityMs = nowMs;
    this.counters.received++;
    if (frame.frameId === "") frame.frameId = `${this.clientId.slice(0, 8)}-${++this.frameSeq}`;
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
    this.counters.countDrop(reason);
    this.hooks.onDrop(reason);
    this.publish({ case: "dropped", value: create(FrameDroppedSchema, { frameId, reason }) });
  }

  publish(event: SessionEvent): void {
    const msg = create(WatchSessionResponseSchema, { eventId: this.nextEventId++, event });
    this.replay.push(msg);
    if (this.replay.length > REPLAY_WINDOW) this.replay.shift();
    for (const s of this.subscribers) s.push(msg);
  }

  /** Subscribes to future events, after replaying those newer than `afterEventId` still held. */
  subscribe(capacity: number, afterEventId?: bigint): SubscriberQueue<WatchSessionResponse> {
    const q = new SubscriberQueue<WatchSessionResponse>(capacity);
    if (afterEventId !== undefined) for (const e of this.replay) if (e.eventId > afterEventId) q.push(e);
    if (this.ended) q.close();
    else this.subscribers.add(q);
    return q;
  }

  unsubscribe(q: SubscriberQueue<WatchSessionResponse>): void {
    this.subscribers.delete(q);
    q.close();
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }

  /** Ends the session: pending frames are reported as dropped, subscribers get `ended` and close. */
  end(event: SessionEvent): void {
    if (this.ended) return;
    for (const f of this.queue.splice(0)) this.drop(f.frame.frameId, DropReason.SESSION_CLOSED);
    this.publish(event);
    this.ended = true;
    for (const s of this.subscribers) s.close();
    this.subscribers.clear();
  }
}
