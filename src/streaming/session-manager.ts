import { randomBytes } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import type { Logger } from "pino";
import { Door } from "../../gen/hazard/stream/v1/session_pb.js";
import { EndReason, SessionEndedSchema } from "../../gen/hazard/stream/v1/session_service_pb.js";
import { ErrorCode, type Frame, type SessionConfig } from "../../gen/hazard/stream/v1/types_pb.js";
import type { DetectOptions, FrameDetections } from "../pipeline/types.js";
import { detectOptionsFor, errorCodeOf, frameErrorOf, toDetectionResult } from "./detection-result.js";
import { FrameScheduler } from "./frame-scheduler.js";
import { RateWindow } from "./latency-window.js";
import { LiveSession, type QueuedFrame, type SessionHooks, type SubmitOutcome } from "./live-session.js";
import { applyConfig, type ConfigLimits } from "./session-config.js";

/** The part of the pipeline the session layer needs. */
export interface FrameDetector {
  detect(image: Uint8Array, options: DetectOptions): Promise<FrameDetections>;
}

export interface SessionManagerOptions {
  detector: FrameDetector;
  limits: ConfigLimits;
  queueSize: number;
  sessionTimeoutMs: number;
  /** Frames processed at once across all sessions (sized to the engine). */
  slots: number;
  /** Events a subscriber may fall behind before it is cut off as too slow. */
  subscriberCapacity?: number;
  logger: Logger;
  now?: () => number;
}

/** Thrown for an unknown or expired client_id; the RPC layer maps it to NOT_FOUND. */
export class SessionNotFoundError extends Error {
  override name = "SessionNotFoundError";
  constructor(readonly clientId: string) {
    super("session not found (unknown client_id, or it expired)");
  }
}

/**
 * Owns every session of this instance: creation, config changes, frame admission, fair
 * processing on the shared engine, expiry and shutdown.
 */
export class SessionManager {
  private readonly sessions = new Map<string, LiveSession>();
  private readonly scheduler: FrameScheduler<LiveSession, QueuedFrame>;
  private readonly now: () => number;
  private expiryTimer: NodeJS.Timeout | undefined;
  /** Instance-wide counters since start. */
  readonly totals = { processed: 0, failed: 0, dropped: 0, processedRate: new RateWindow(1024) };
  private readonly hooks: SessionHooks = {
    onReady: (s) => this.scheduler.notify(s),
    onDrop: () => void this.totals.dropped++,
  };

  constructor(private readonly opts: SessionManagerOptions) {
    this.now = opts.now ?? Date.now;
    this.scheduler = new FrameScheduler(opts.slots, (s, f) => this.process(s, f));
  }

  get limits(): ConfigLimits {
    return this.opts.limits;
  }

  create(door: Door, patch?: SessionConfig): LiveSession {
    const config = applyConfig(this.opts.limits.defaults, patch, this.opts.limits);
    // 128 bits from the CSPRNG: the client_id is the only credential for a session.
    const clientId = randomBytes(16).toString("base64url");
    const session = new LiveSession(
      clientId,
      door,
      config,
      this.opts.queueSize,
      this.opts.sessionTimeoutMs,
      this.hooks,
      this.now(),
    );
    this.sessions.set(clientId, session);
    this.opts.logger.info({ clientId, door: Door[door] }, "session created");
    return session;
  }

  get(clientId: string): LiveSession {
    const s = this.sessions.get(clientId);
    if (!s || s.ended) throw new SessionNotFoundError(clientId);
    return s;
  }

  list(): LiveSession[] {
    return [...this.sessions.values()];
  }

  updateConfig(clientId: string, patch: SessionConfig | undefined): LiveSession {
    const s = this.get(clientId);
    s.setConfig(applyConfig(s.config, patch, this.opts.limits));
    s.lastActivityMs = this.now();
    return s;
  }

  submit(clientId: string, frame: Frame): SubmitOutcome {
    return this.get(clientId).submit(frame, this.now());
  }

  end(clientId: string, reason: EndReason): void {
    const s = this.sessions.get(clientId);
    if (!s) return;
    this.sessions.delete(clientId);
    s.end({ case: "ended", value: create(SessionEndedSchema, { reason }) });
    this.opts.logger.info({ clientId, reason: EndReason[reason] }, "session ended");
  }

  /** Closes sessions idle for longer than the session timeout. */
  startExpiry(intervalMs = 1000): void {
    this.expiryTimer = setInterval(() => this.expireIdle(), intervalMs);
    this.expiryTimer.unref();
  }

  expireIdle(): void {
    const deadline = this.now() - this.opts.sessionTimeoutMs;
    for (const s of this.sessions.values()) {
      // Only frames and config changes count as activity: a forgotten watcher must not pin a session.
      if (s.lastActivityMs < deadline) this.end(s.clientId, EndReason.EXPIRED);
    }
  }

  /** Ends every session and waits (bounded by the caller) for frames in flight. */
  async shutdown(): Promise<void> {
    if (this.expiryTimer) clearInterval(this.expiryTimer);
    await this.scheduler.idle();
    for (const id of [...this.sessions.keys()]) this.end(id, EndReason.SHUTDOWN);
  }

  get inFlight(): number {
    return this.scheduler.inFlight;
  }

  private async process(session: LiveSession, queued: QueuedFrame): Promise<void> {
    const startMs = this.now();
    const { frame } = queued;
    const configVersion = session.configVersion;
    try {
      const found = await this.opts.detector.detect(
        frame.imageData,
        detectOptionsFor(session.config, this.opts.limits.classNames),
      );
      const doneMs = this.now();
      const result = toDetectionResult(frame, found, {
        configVersion,
        queueMs: startMs - queued.receivedAtMs,
        receivedAtMs: queued.receivedAtMs,
      });
      session.counters.countProcessed(result.processingTimeMs, doneMs - queued.receivedAtMs, doneMs);
      this.totals.processed++;
      this.totals.processedRate.add(doneMs);
      session.publish({ case: "result", value: result });
    } catch (err) {
      session.counters.failed++;
      this.totals.failed++;
      if (errorCodeOf(err) === ErrorCode.INTERNAL) {
        this.opts.logger.error({ err, clientId: session.clientId, frameId: frame.frameId }, "frame processing failed");
      }
      session.publish({ case: "error", value: frameErrorOf(frame.frameId, err, this.now()) });
    }
  }
}
