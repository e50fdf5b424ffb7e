import { randomBytes } from "node:crypto";
import { availableParallelism } from "node:os";
import { create } from "@bufbuild/protobuf";
import type { Logger } from "pino";
import { Door } from "../../gen/hazard/stream/v1/session_pb.js";
import { EndReason, SessionEndedSchema, WatchSessionResponseSchema } from "../../gen/hazard/stream/v1/session_service_pb.js";
import { DropReason, ErrorCode, Quality, type Frame, type FrameError, type SessionConfig } from "../../gen/hazard/stream/v1/types_pb.js";
import type { DetectOptions, FrameDetections } from "../pipeline/types.js";
import type { SessionEvent, SessionQuota, SessionRecord, SessionStore } from "../store/session-store.js";
import { detectOptionsFor, errorCodeOf, frameErrorOf, toDetectionResult, toHazardEvent } from "./detection-result.js";
import { TRACKER_LOW_CONFIDENCE } from "./session-tracking.js";
import { FrameScheduler } from "./frame-scheduler.js";
import { RateWindow } from "./latency-window.js";
import { LiveSession, sessionProto, type QueuedFrame, type SessionHooks, type SubmitOutcome } from "./live-session.js";
import { applyConfig, type ConfigLimits } from "./session-config.js";
import { inputSizeFor, LoadMonitor } from "./load-monitor.js";
import { demandOf, splitAllowance, type Claimant } from "./allowance.js";
import { UnaryQueue, type UnaryJob } from "./unary-queue.js";
import type { FrameMetrics } from "./frame-metrics.js";

/** The part of the pipeline the session layer needs. */
export interface FrameDetector {
  detect(image: Uint8Array, options: DetectOptions): Promise<FrameDetections>;
}

export interface SessionManagerOptions {
  detector: FrameDetector;
  store: SessionStore;
  limits: ConfigLimits;
  queueSize: number;
  sessionTimeoutMs: number;
  /** Frames processed at once across all sessions and unary calls (sized to the engine). */
  slots: number;
  /** Unary Detect calls that may wait for a slot; more are refused with a retry hint. */
  unaryQueueSize?: number;
  /** The model's native input and stride, for quality modes. */
  model: { inputWidth: number; inputHeight: number; stride: number; dynamicInputSize: boolean };
  /** Sessions alive at once, in all and per API key (checked atomically by the store). */
  quota?: SessionQuota;
  logger: Logger;
  /** Counts frames by door and outcome (Prometheus); optional. */
  metrics?: FrameMetrics;
  now?: () => number;
}

/**
 * The share of the measured capacity handed out as allowances: at ~90 % frames rarely queue behind
 * each other (latency stays near one frame's), while little throughput is left unused.
 */
export const TARGET_UTILISATION = 0.9;
/**
 * An allowance is re-announced when it moves by more than this fraction (or reaches the limit): at
 * 10 % the announced total stayed up to 10 % above the target, queueing frames again.
 */
const NOTIFY_CHANGE = 0.05;
/** Unary calls that may wait for a slot by default (the queue of all Detect callers together). */
export const DEFAULT_UNARY_QUEUE_SIZE = 32;

/**
 * Frames processed at once when INFERENCE_SLOTS does not say: one per engine run, plus one decoding
 * while the runs are busy where there are cores to spare. On two cores that extra frame bought no
 * throughput (default model 43.8 fps with 2 in flight, 43.1 with 3) and cost 50 % more p50 latency
 * (42 → 65 ms), so there it is left out.
 */
export function defaultSlots(engineConcurrency: number, cores: number = availableParallelism()): number {
  return Math.max(1, engineConcurrency) + (cores > 2 ? 1 : 0);
}

/** A session limit refused a new session; the RPC layer maps it to RESOURCE_EXHAUSTED. */
export class SessionLimitError extends Error {
  override name = "SessionLimitError";
}

/** How long shutdown waits for this instance's last events to come back through the store's bus. */
const BUS_CATCH_UP_MS = 1000;

/** Thrown for an unknown or expired client_id; the RPC layer maps it to NOT_FOUND. */
export class SessionNotFoundError extends Error {
  override name = "SessionNotFoundError";
  constructor(readonly clientId: string) {
    super("session not found (unknown client_id, or it expired)");
  }
}

/** Thrown for frames and sessions that arrive once shutdown began; the RPC layer maps it to UNAVAILABLE. */
export class ShuttingDownError extends Error {
  override name = "ShuttingDownError";
  constructor() {
    super("server is shutting down: frame not accepted; reconnect (to another instance) and resend");
  }
}

/**
 * Owns this instance's session runtimes: creation, config changes, frame admission, fair
 * processing on the shared engine, expiry and shutdown. Shared state (records, counters, events)
 * goes through the SessionStore, so with Redis any instance can serve any session.
 */
export class SessionManager {
  private readonly runtimes = new Map<string, LiveSession>();
  private readonly attaching = new Map<string, Promise<LiveSession>>();
  /** Events on their way to the store (shutdown waits for them). */
  private readonly publishing = new Set<Promise<void>>();
  private readonly scheduler: FrameScheduler<LiveSession | UnaryQueue, QueuedFrame | UnaryJob>;
  private readonly unary: UnaryQueue;
  private lastAdjustMs: number;
  private readonly now: () => number;
  private timers: NodeJS.Timeout[] = [];
  readonly instanceStartedAtMs: number;
  /** This instance's counters since start. */
  readonly totals = { processed: 0, failed: 0, dropped: 0, processedRate: new RateWindow(1024) };
  private readonly hooks: SessionHooks = {
    onReady: (s) => this.scheduler.notify(s),
    publish: (s, event) => this.publish(s.clientId, event),
  };
  readonly load: LoadMonitor;
  /** Set when shutdown begins: from then on frames and new sessions are refused, never left unanswered. */
  private closing = false;

  constructor(private readonly opts: SessionManagerOptions) {
    this.now = opts.now ?? Date.now;
    this.instanceStartedAtMs = this.now();
    this.lastAdjustMs = this.instanceStartedAtMs;
    this.scheduler = new FrameScheduler<LiveSession | UnaryQueue, QueuedFrame | UnaryJob>(opts.slots, (s, f) => this.runSlot(s, f));
    this.unary = new UnaryQueue(opts.unaryQueueSize ?? DEFAULT_UNARY_QUEUE_SIZE, opts.slots, (q) => this.scheduler.notify(q));
    this.load = new LoadMonitor(opts.slots);
  }

  get limits(): ConfigLimits {
    return this.opts.limits;
  }

  get store(): SessionStore {
    return this.opts.store;
  }

  /** A new session, owned by `owner` (the caller's API key hash; "" without keys). */
  async create(door: Door, patch?: SessionConfig, owner = ""): Promise<LiveSession> {
    if (this.closing) throw new ShuttingDownError();
    const config = applyConfig(this.opts.limits.defaults, patch, this.opts.limits);
    const nowMs = this.now();
    // 128 bits from the CSPRNG: unguessable, so without API keys the client_id is the session's
    // only credential; with keys it is bound to its owner as well.
    const clientId = randomBytes(16).toString("base64url");
    const record: SessionRecord = { clientId, owner, door, config, configVersion: 1, createdAtMs: nowMs, lastActivityMs: nowMs };
    const outcome = await this.opts.store.create(record, this.opts.quota);
    if (outcome === "store_full") {
      throw new SessionLimitError(`the service has reached its limit of ${this.opts.quota?.maxSessions} sessions (STREAMING_MAX_SESSIONS); try again later`);
    }
    if (outcome === "owner_full") {
      throw new SessionLimitError(
        `this API key has reached its limit of ${this.opts.quota?.maxPerOwner} sessions (STREAMING_MAX_SESSIONS_PER_KEY); end one first`,
      );
    }
    this.opts.logger.info({ clientId, door: Door[door] }, "session created");
    return this.attach(record);
  }

  /**
   * The session as `owner` (the caller's API key hash) may see it: a session of another key is
   * reported exactly like an unknown one, so a caller learns nothing about other keys' sessions.
   * Internal lookups leave `owner` out.
   */
  async get(clientId: string, owner?: string): Promise<LiveSession> {
    const session = await this.runtime(clientId);
    if (owner !== undefined && session.owner !== owner) throw new SessionNotFoundError(clientId);
    return session;
  }

  /** This instance's runtime of the session, attached from the store when it lives elsewhere. */
  private async runtime(clientId: string): Promise<LiveSession> {
    const local = this.runtimes.get(clientId);
    if (local && !local.ended) return local;
    const pending = this.attaching.get(clientId);
    if (pending) return pending;
    const attach = (async () => {
      const record = await this.opts.store.get(clientId);
      if (!record) throw new SessionNotFoundError(clientId);
      return this.attach(record);
    })();
    this.attaching.set(clientId, attach);
    try {
      return await attach;
    } finally {
      this.attaching.delete(clientId);
    }
  }

  private async attach(record: SessionRecord): Promise<LiveSession> {
    const runtime = new LiveSession(record, this.opts.queueSize, this.opts.sessionTimeoutMs, this.hooks);
    runtime.detachBus = await this.opts.store.subscribe(record.clientId, (msg) => runtime.deliver(msg));
    this.runtimes.set(record.clientId, runtime);
    return runtime;
  }

  async list(): Promise<SessionRecord[]> {
    return this.opts.store.list();
  }

  async updateConfig(clientId: string, patch: SessionConfig | undefined, owner?: string): Promise<LiveSession> {
    const runtime = await this.get(clientId, owner);
    const fpsBefore = runtime.config.fpsLimit;
    const record = await this.opts.store.updateConfig(clientId, (cur) => applyConfig(cur, patch, this.opts.limits));
    if (!record) throw new SessionNotFoundError(clientId);
    // Take effect for the next frame here at once; other instances follow from the event.
    runtime.applyRecord(record);
    runtime.lastActivityMs = this.now();
    this.publish(clientId, { case: "configApplied", value: runtime.toProto() });
    if (record.config.fpsLimit !== fpsBefore) {
      runtime.allowedFps = Math.min(record.config.fpsLimit, runtime.allowedFps === fpsBefore ? record.config.fpsLimit : runtime.allowedFps);
      this.publish(clientId, { case: "flowControl", value: runtime.flowControl("fps_limit") });
    }
    return runtime;
  }

  async submit(clientId: string, frame: Frame, owner?: string): Promise<SubmitOutcome> {
    const runtime = await this.get(clientId, owner);
    this.opts.metrics?.frameReceived(runtime.door);
    if (this.closing) {
      // Queued now, it would never be processed: an answer it gets, but a refusal.
      this.opts.metrics?.frameFailed(runtime.door, ErrorCode.SERVICE_UNAVAILABLE);
      throw new ShuttingDownError();
    }
    const nowMs = this.now();
    await this.opts.store.touch(clientId, nowMs, 1);
    return runtime.submit(frame, nowMs);
  }

  /** Counts a frame refused before queueing (empty, too large) and reports it on the session's streams. */
  async reject(clientId: string, error: FrameError): Promise<void> {
    const door = this.runtimes.get(clientId)?.door;
    if (door !== undefined) this.opts.metrics?.frameReceived(door);
    await this.opts.store.touch(clientId, this.now(), 1);
    this.totals.failed++;
    this.publish(clientId, { case: "error", value: error });
  }

  /** Ends a session everywhere; false when it did not exist. */
  async end(clientId: string, reason: EndReason): Promise<boolean> {
    const runtime = this.runtimes.get(clientId);
    // Every frame the session accepted is answered before its end: the waiting ones are dropped
    // (SESSION_CLOSED) and the ones being processed publish their results first.
    runtime?.closeQueue();
    await runtime?.settled();
    // Open tracks end with the session: one hazard event each, delivered before the end.
    for (const hazard of runtime?.tracking.flush() ?? []) this.publish(clientId, { case: "hazard", value: toHazardEvent(hazard) });
    const event: SessionEvent = { case: "ended", value: create(SessionEndedSchema, { reason }) };
    let final = create(WatchSessionResponseSchema, { event });
    let existed = false;
    try {
      // Published before the record goes, so `ended` is numbered in the session's sequence like
      // every other event (SSE gives it an `id:`); the delete then frees the replay window too.
      final = await this.opts.store.publish(clientId, event);
    } finally {
      try {
        existed = await this.opts.store.delete(clientId);
      } finally {
        // The answers published above reach this instance's streams through the bus (with Redis a
        // round trip): let them arrive before the streams get their end and close.
        await runtime?.caughtUp(BUS_CATCH_UP_MS);
        // Even if the bus is down, this instance's streams get their end.
        runtime?.endLocal(final);
        this.runtimes.delete(clientId);
      }
    }
    if (existed) this.opts.logger.info({ clientId, door: runtime ? Door[runtime.door] : undefined, reason: EndReason[reason] }, "session ended");
    return existed;
  }

  sessionProto(r: SessionRecord) {
    return sessionProto({ ...r, expiresAtMs: r.lastActivityMs + this.opts.sessionTimeoutMs });
  }

  private publish(clientId: string, event: SessionEvent): void {
    const door = this.opts.metrics && this.runtimes.get(clientId)?.door;
    if (door !== undefined) {
      if (event.case === "dropped") this.opts.metrics?.frameDropped(door, event.value.reason);
      else if (event.case === "error") this.opts.metrics?.frameFailed(door, event.value.code);
    }
    if (event.case === "dropped") {
      this.totals.dropped++;
      const r = event.value.reason;
      if (r === DropReason.SUPERSEDED || r === DropReason.QUEUE_FULL) this.load.recordOverloadDrop();
    }
    const published = this.opts.store.publish(clientId, event).then(
      (msg) => this.runtimes.get(clientId)?.published(msg.eventId),
      (err: unknown) => {
        this.opts.logger.warn({ clientId, event: event.case, err: (err as Error).message }, "event not published");
      },
    );
    this.publishing.add(published);
    void published.finally(() => this.publishing.delete(published));
  }

  /** Expiry sweep and instance heartbeat. */
  start(intervalMs = 1000): void {
    const sweep = setInterval(() => void this.expireIdle().catch(() => undefined), intervalMs);
    const beat = setInterval(() => {
      void this.report().catch(() => undefined);
      void this.reconcile().catch((err: unknown) => {
        this.opts.logger.warn({ err: (err as Error).message }, "sessions not re-registered with the store; retrying");
      });
    }, 2000);
    const loadTick = setInterval(() => this.adjustToLoad(), 1000);
    this.timers = [sweep, beat, loadTick];
    for (const t of this.timers) t.unref();
    void this.report().catch(() => undefined);
    void this.reconcile().catch(() => undefined);
  }

  /** Set while a loss of the store was noticed but not every session could be written back yet. */
  private restorePending = false;

  /**
   * Writes this instance's live sessions back when the store lost them (a Redis restarted without
   * persistence, or emptied): they would otherwise go on here while the store's stats, quotas and
   * other instances knew nothing of them. Records, event numbering and track-id blocks come back;
   * frame counters start over. Runs with the heartbeat; returns how many sessions it restored.
   */
  async reconcile(): Promise<number> {
    if (!(await this.opts.store.lostContents()) && !this.restorePending) return 0;
    this.restorePending = true;
    let restored = 0;
    for (const r of [...this.runtimes.values()]) {
      if (r.ended) continue;
      const record: SessionRecord = {
        clientId: r.clientId,
        owner: r.owner,
        door: r.door,
        config: r.config,
        configVersion: r.configVersion,
        createdAtMs: r.createdAtMs,
        lastActivityMs: r.lastActivityMs,
      };
      if (await this.opts.store.restore(record, { lastEventId: r.lastEventId, trackIdBlocks: r.tracking.reservedBlocks })) restored++;
    }
    this.restorePending = false;
    this.opts.logger.warn({ restored }, "the session store lost its contents (Redis restarted without persistence?); this instance's sessions are registered again");
    return restored;
  }

  /**
   * Once a second: re-evaluate AUTO quality, and tell each active session how fast it may send —
   * its fps_limit, or its fair share of ≈90 % of the measured capacity when that is lower. Sessions
   * that send less than their share leave the rest to the others (max-min fairness over what each
   * offered), and unary Detect calls count as one more claimant. A session hears of a change when
   * its allowance moved by more than 5 %, so well-behaved clients skip frames before uploading them.
   */
  adjustToLoad(): void {
    const nowMs = this.now();
    this.load.tick(nowMs);
    const elapsedSec = Math.max(0.001, (nowMs - this.lastAdjustMs) / 1000);
    this.lastAdjustMs = nowMs;
    const unaryFps = this.unary.takeArrivals() / elapsedSec;
    const active: LiveSession[] = [];
    const claimants: Claimant[] = [];
    for (const r of this.runtimes.values()) {
      const offeredFps = r.takeOffered() / elapsedSec;
      if (r.ended || nowMs - r.lastActivityMs >= 2000) continue;
      active.push(r);
      claimants.push({ limitFps: r.config.fpsLimit, demandFps: demandOf(offeredFps, r.allowedFps, r.config.fpsLimit) });
    }
    if (active.length === 0) return;
    if (unaryFps > 0) claimants.push({ limitFps: Number.POSITIVE_INFINITY, demandFps: unaryFps });
    const allowances = splitAllowance(TARGET_UTILISATION * this.load.capacityFps, claimants);
    active.forEach((r, i) => {
      const allowed = allowances[i] ?? r.config.fpsLimit;
      const backToLimit = allowed === r.config.fpsLimit && r.allowedFps !== allowed;
      if (!backToLimit && Math.abs(allowed - r.allowedFps) <= NOTIFY_CHANGE * r.allowedFps) return;
      r.allowedFps = allowed;
      this.publish(r.clientId, { case: "flowControl", value: r.flowControl(allowed < r.config.fpsLimit ? "server_load" : "fps_limit") });
    });
  }

  /** Input size for a session's quality mode; undefined means the model's native size. */
  private inputSizeFor(quality: Quality): { width: number; height: number } | undefined {
    const m = this.opts.model;
    if (!m.dynamicInputSize) return undefined;
    const q = quality === Quality.AUTO ? this.load.autoQuality : quality;
    if (q === Quality.UNSPECIFIED || q === Quality.HIGH) return undefined;
    return inputSizeFor(q, m);
  }

  /** Reports this instance for service-wide stats. */
  async report(): Promise<void> {
    await this.opts.store.reportInstance({
      instanceId: this.instanceId,
      processed: this.totals.processed,
      dropped: this.totals.dropped,
      failed: this.totals.failed,
      throughputFps: this.totals.processedRate.rate(this.now()),
      startedAtMs: this.instanceStartedAtMs,
    });
  }

  readonly instanceId = randomBytes(6).toString("hex");

  /** Ends sessions idle for longer than the session timeout (as seen by every instance). */
  async expireIdle(): Promise<void> {
    const deadline = this.now() - this.opts.sessionTimeoutMs;
    for (const runtime of [...this.runtimes.values()]) {
      if (runtime.ended) {
        this.runtimes.delete(runtime.clientId);
        continue;
      }
      if (runtime.lastActivityMs >= deadline) continue;
      // Another instance may have fed it meanwhile; the store has the last word.
      const record = await this.opts.store.get(runtime.clientId);
      if (record && record.lastActivityMs >= deadline) {
        runtime.lastActivityMs = record.lastActivityMs;
        continue;
      }
      await this.end(runtime.clientId, EndReason.EXPIRED);
    }
  }

  /**
   * Waits for frames in flight, then ends this instance's sessions. With a shared store only the
   * local runtimes stop (other instances keep serving the sessions); alone, the sessions end.
   */
  async shutdown(): Promise<void> {
    this.closing = true;
    for (const t of this.timers) clearInterval(t);
    await this.scheduler.idle();
    if (this.opts.store.kind !== "memory") {
      // Handed-off sessions go on elsewhere with a fresh tracker: this instance's open tracks end here.
      for (const runtime of this.runtimes.values()) {
        for (const hazard of runtime.tracking.flush()) this.publish(runtime.clientId, { case: "hazard", value: toHazardEvent(hazard) });
      }
    }
    // The outcomes of the last frames come back to this instance's streams through the store's bus;
    // with Redis that is a round trip, and a stream closed before it would never answer them.
    await Promise.all(this.publishing);
    await Promise.all([...this.runtimes.values()].map((r) => r.caughtUp(BUS_CATCH_UP_MS)));
    const shared = this.opts.store.kind !== "memory";
    for (const runtime of [...this.runtimes.values()]) {
      const event: SessionEvent = { case: "ended", value: create(SessionEndedSchema, { reason: EndReason.SHUTDOWN }) };
      if (shared) {
        // Whatever door opened it, the session lives on in the store: its clients resume it by
        // client_id on another instance (or it expires after the session timeout).
        runtime.handOff(create(WatchSessionResponseSchema, { event }));
        this.runtimes.delete(runtime.clientId);
      } else {
        await this.end(runtime.clientId, EndReason.SHUTDOWN).catch(() => runtime.endLocal());
      }
    }
  }

  get inFlight(): number {
    return this.scheduler.inFlight;
  }

  /** True once shutdown began. */
  get shuttingDown(): boolean {
    return this.closing;
  }

  /** Live runtimes on this instance by door (read by the metrics at scrape time). */
  sessionsByDoor(): Map<Door, number> {
    const counts = new Map<Door, number>();
    for (const r of this.runtimes.values()) if (!r.ended) counts.set(r.door, (counts.get(r.door) ?? 0) + 1);
    return counts;
  }

  /** Runtimes on this instance (for tests and stats). */
  get localSessions(): number {
    return this.runtimes.size;
  }

  /**
   * One frame outside any session (unary Detect), processed in the same slots as session frames:
   * it waits its turn with them (bounded; ServerBusyError with a retry hint when full) and counts
   * toward the measured capacity.
   */
  detectOnce(image: Uint8Array, options: DetectOptions, signal?: AbortSignal): Promise<{ found: FrameDetections; queueMs: number }> {
    if (this.closing) return Promise.reject(new ShuttingDownError());
    return this.unary.run(
      async (waitedMs) => {
        const found = await this.opts.detector.detect(image, options);
        const t = found.timings;
        this.load.recordFrame(t.preprocessMs + t.inferenceMs + t.postprocessMs, waitedMs + t.engineWaitMs);
        return { found, queueMs: waitedMs };
      },
      () => this.retryAfterMs(),
      signal,
    );
  }

  /** How long until the unary queue has room again: its backlog at its round-robin share of capacity. */
  private retryAfterMs(): number {
    const capacity = this.load.capacityFps;
    if (!Number.isFinite(capacity) || capacity <= 0) return 1000;
    const share = capacity / (this.scheduler.waitingSessions + 1);
    const ms = (1000 * Math.max(1, this.unary.length)) / share;
    return Math.min(30_000, Math.max(100, Math.ceil(ms / 100) * 100));
  }

  /** Every slot's work, session frame or unary call, timed for the capacity estimate. */
  private async runSlot(source: LiveSession | UnaryQueue, item: QueuedFrame | UnaryJob): Promise<void> {
    this.load.frameStarted(this.now());
    try {
      if ("run" in item) await item.run();
      else if (source instanceof LiveSession) {
        const work = this.process(source, item);
        source.track(work);
        await work;
      }
    } finally {
      this.load.frameFinished(this.now());
    }
  }

  private async process(session: LiveSession, queued: QueuedFrame): Promise<void> {
    const startMs = this.now();
    const { frame } = queued;
    const configVersion = session.configVersion;
    try {
      const config = session.config;
      const options = detectOptionsFor(config, this.opts.limits.classNames);
      options.inputSize = this.inputSizeFor(config.quality);
      if (config.enableTracking) options.confidenceThreshold = Math.min(options.confidenceThreshold, TRACKER_LOW_CONFIDENCE);
      const found = await this.opts.detector.detect(frame.imageData, options);
      if (config.enableTracking) {
        // One store call per block of 2^20 ids: ids stay unique when other instances track the session too.
        await session.tracking.reserveIds(found.detections.length, () => this.opts.store.reserveTrackIds(session.clientId));
      }
      const trackStart = performance.now();
      const tracked = session.tracking.update(config.enableTracking, found.detections, config.confidenceThreshold, {
        timestampSec: frame.timestamp > 0 ? frame.timestamp : queued.receivedAtMs / 1000,
        frameId: frame.frameId,
        metadata: frame.metadata,
      });
      const trackingMs = performance.now() - trackStart;
      const doneMs = this.now();
      const result = toDetectionResult(frame, found, {
        configVersion,
        queueMs: startMs - queued.receivedAtMs,
        receivedAtMs: queued.receivedAtMs,
        detections: tracked.detections,
        trackingMs,
      });
      session.counters.countProcessed(result.processingTimeMs, doneMs - queued.receivedAtMs, doneMs);
      this.load.recordFrame(result.processingTimeMs, result.timings?.queueMs ?? startMs - queued.receivedAtMs);
      this.totals.processed++;
      this.totals.processedRate.add(doneMs);
      this.opts.metrics?.frameProcessed(session.door, result, doneMs - queued.receivedAtMs);
      if (tracked.confirmed.size > 0) {
        // Sent before the result on the same connection, so whoever sees the result sees the count.
        this.opts.store.countHazards(session.clientId, tracked.confirmed).catch((err: unknown) => {
          this.opts.logger.warn({ clientId: session.clientId, err: (err as Error).message }, "hazard count not stored");
        });
      }
      this.publish(session.clientId, { case: "result", value: result });
      for (const hazard of tracked.ended) this.publish(session.clientId, { case: "hazard", value: toHazardEvent(hazard) });
      this.saveLatency(session, doneMs);
    } catch (err) {
      this.totals.failed++;
      if (errorCodeOf(err) === ErrorCode.INTERNAL) {
        this.opts.logger.error({ err, clientId: session.clientId, door: Door[session.door], frameId: frame.frameId }, "frame processing failed");
      }
      this.publish(session.clientId, { case: "error", value: frameErrorOf(frame.frameId, err, this.now()) });
    }
  }

  /** Shares this instance's latency view of the session, at most once a second. */
  private saveLatency(session: LiveSession, nowMs: number): void {
    const c = session.counters;
    if (nowMs - c.lastSavedMs < 1000 && c.processingMs.size > 1) return;
    c.lastSavedMs = nowMs;
    this.opts.store
      .saveLatency(session.clientId, {
        processingMs: c.processingMs.summary(),
        latencyMs: c.latencyMs.summary(),
        effectiveFps: c.processedRate.rate(nowMs),
        queueDepth: session.queueDepth,
      })
      .catch(() => undefined);
  }
}
