import { create } from "@bufbuild/protobuf";
import { timestampFromMs, timestampNow } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  Door,
} from "../../gen/hazard/stream/v1/session_pb.js";
import {
  ClassCountSchema,
  DoorCountSchema,
  DropCountSchema,
  EngineInfoSchema,
  EndReason,
  GetServiceStatsResponseSchema,
  GetSessionStatsResponseSchema,
  KeepaliveSchema,
  LatencySummarySchema,
  ListSessionsResponseSchema,
  ServiceStatsSchema,
  SessionStatsSchema,
  SubmitFrameResponseSchema,
  WatchSessionResponseSchema,
  type SessionService,
  type SessionStats,
  type WatchSessionRequest,
  type WatchSessionResponse,
} from "../../gen/hazard/stream/v1/session_service_pb.js";
import { ErrorCode } from "../../gen/hazard/stream/v1/types_pb.js";
import type { InferenceEngine } from "../inference/engine.js";
import type { LatencyWindow } from "../streaming/latency-window.js";
import { SessionNotFoundError, type SessionManager } from "../streaming/session-manager.js";
import type { InstanceReport } from "../store/session-store.js";
import { checkFrame, checkWatcherRoom, frameErrorFromApi } from "./detection-service.js";
import { callerKey } from "./auth.js";
import { apiError, toApiError } from "./errors.js";
import { echoableFrameId } from "./frame-limits.js";
import { requestLogKey } from "./request-log.js";

export interface SessionServiceDeps {
  sessions: SessionManager;
  engine: InferenceEngine;
  maxFrameBytes: number;
  /** Events a watcher may fall behind before it is cut off. */
  watchBufferCapacity?: number;
  /** Bytes of events a watcher (or a stream) may fall behind before it is cut off (STREAMING_WATCHER_BUFFER_BYTES). */
  watcherBufferBytes?: number;
  /** Idle time after which a watch stream gets a keepalive, so proxies keep it open. */
  keepaliveMs?: number;
  /** Subscribers one session may have on this instance (watchers, its streams); more get RESOURCE_EXHAUSTED. */
  maxWatchersPerSession?: number;
  startedAtMs: number;
  now?: () => number;
}

const summary = (w: LatencyWindow) => create(LatencySummarySchema, w.summary());

/** Per-session stats: outcome counts from the store (all instances), latency from where frames run. */
export async function sessionStats(sessions: SessionManager, clientId: string, nowMs: number, owner?: string): Promise<SessionStats> {
  const s = await sessions.get(clientId, owner);
  const [c, shared] = await Promise.all([sessions.store.counters(clientId), sessions.store.latency(clientId)]);
  const local = s.counters;
  const useLocal = local.processingMs.size > 0 || !shared;
  let dropped = 0;
  for (const n of c.drops.values()) dropped += n;
  return create(SessionStatsSchema, {
    clientId,
    framesReceived: BigInt(c.received),
    framesProcessed: BigInt(c.processed),
    framesDropped: BigInt(dropped),
    framesFailed: BigInt(c.failed),
    drops: [...c.drops].map(([reason, count]) => create(DropCountSchema, { reason, count: BigInt(count) })),
    effectiveFps: useLocal ? local.processedRate.rate(nowMs) : shared.effectiveFps,
    processingTimeMs: useLocal ? summary(local.processingMs) : create(LatencySummarySchema, shared.processingMs),
    latencyMs: useLocal ? summary(local.latencyMs) : create(LatencySummarySchema, shared.latencyMs),
    queueDepth: useLocal ? s.queueDepth : shared.queueDepth,
    lastActivityAt: timestampFromMs(s.lastActivityMs),
    // From the store: summed over every instance that tracked the session's frames.
    uniqueHazards: [...c.hazards].map(([className, count]) => create(ClassCountSchema, { className, count: BigInt(count) })),
    allowedFps: s.allowedFps,
    createdAt: timestampFromMs(s.createdAtMs),
  });
}

export function createSessionService(deps: SessionServiceDeps): ServiceImpl<typeof SessionService> {
  const now = deps.now ?? Date.now;
  const sessions = deps.sessions;
  const capacity = deps.watchBufferCapacity ?? 256;
  const keepaliveMs = deps.keepaliveMs ?? 15_000;
  const wrap = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      throw toApiError(err);
    }
  };

  return {
    // Every call names its caller (the API key's owner id): sessions of other keys are NOT_FOUND.
    createSession: (req, ctx) =>
      wrap(async () => ({ session: (await sessions.create(Door.SESSION_API, req.config, ctx.values.get(callerKey))).toProto() })),
    getSession: (req, ctx) => wrap(async () => ({ session: (await sessions.get(req.clientId, ctx.values.get(callerKey))).toProto() })),
    updateSessionConfig: (req, ctx) =>
      wrap(async () => ({ session: (await sessions.updateConfig(req.clientId, req.config, ctx.values.get(callerKey))).toProto() })),
    deleteSession: (req, ctx) =>
      wrap(async () => {
        await sessions.get(req.clientId, ctx.values.get(callerKey));
        if (!(await sessions.end(req.clientId, EndReason.DELETED))) throw new SessionNotFoundError(req.clientId);
        return {};
      }),

    listSessions: (req, ctx) =>
      wrap(async () => {
        const size = req.pageSize === 0 ? 100 : Math.min(req.pageSize, 1000);
        const caller = ctx.values.get(callerKey);
        const all = (await sessions.list()).filter((r) => r.owner === caller).sort((a, b) => (a.clientId < b.clientId ? -1 : 1));
        const start = req.pageToken ? all.findIndex((s) => s.clientId > req.pageToken) : 0;
        const page = start < 0 ? [] : all.slice(start, start + size);
        const last = page.at(-1);
        const more = start >= 0 && start + size < all.length;
        return create(ListSessionsResponseSchema, {
          sessions: page.map((r) => sessions.sessionProto(r)),
          nextPageToken: more && last ? last.clientId : "",
        });
      }),

    submitFrame: (req, ctx) =>
      wrap(async () => {
        const session = await sessions.get(req.clientId, ctx.values.get(callerKey));
        try {
          checkFrame(req.frame, deps.maxFrameBytes);
        } catch (err) {
          const frameId = echoableFrameId(req.frame?.frameId);
          await sessions.reject(req.clientId, frameErrorFromApi(toApiError(err, frameId), frameId, now()));
          throw err;
        }
        const out = await sessions.submit(req.clientId, req.frame);
        return create(SubmitFrameResponseSchema, { ...out, allowedFps: session.allowedFps });
      }),

    async *watchSession(req: WatchSessionRequest, ctx: HandlerContext): AsyncGenerator<WatchSessionResponse> {
      const session = await wrap(() => sessions.get(req.clientId, ctx.values.get(callerKey)));
      checkWatcherRoom(session, deps.maxWatchersPerSession);
      ctx.values.get(requestLogKey)?.bind({ clientId: session.clientId, door: Door[session.door] });
      const sub = session.subscribe(capacity, deps.watcherBufferBytes);
      // In-process callers may stop pulling without resuming the generator: free on abort too.
      const release = () => session.unsubscribe(sub);
      ctx.signal.addEventListener("abort", release, { once: true });
      try {
        // First, at once: the watch is live (events from now on reach it). Callers can rely on it
        // before they submit, and the SSE route answers with a status only once it arrived.
        yield keepaliveEvent();
        let lastId = 0n;
        if (req.afterEventId > 0n) {
          for (const ev of await wrap(() => sessions.store.replay(req.clientId, req.afterEventId))) {
            lastId = ev.eventId;
            yield ev;
            if (ev.event.case === "ended") return;
          }
        }
        // An event already queued goes out even once the call is aborted: at shutdown the session's
        // final `ended` and the server's abort come together, and the client must learn why the
        // watch ends (a clean end without it looks like a finished session).
        for (;;) {
          const keepalive = AbortSignal.any([ctx.signal, AbortSignal.timeout(keepaliveMs)]);
          const ev = await sub.next(keepalive);
          if (ev === undefined) {
            if (ctx.signal.aborted) return;
            if (sub.isClosed) break;
            yield keepaliveEvent();
            continue;
          }
          if (ev.eventId !== 0n && ev.eventId <= lastId) continue; // already sent from the replay
          yield ev;
          if (ev.event.case === "ended") return;
        }
        if (sub.overflowed) {
          throw apiError(ErrorCode.RESOURCE_EXHAUSTED, "watcher is not reading events fast enough; stream closed");
        }
      } finally {
        ctx.signal.removeEventListener("abort", release);
        release();
      }
    },

    getSessionStats: (req, ctx) =>
      wrap(async () =>
        create(GetSessionStatsResponseSchema, { stats: await sessionStats(sessions, req.clientId, now(), ctx.values.get(callerKey)) }),
      ),

    getServiceStats: () =>
      wrap(async () => {
        const nowMs = now();
        // This instance's totals as of now, not as of its last heartbeat (up to 2 s old); other
        // instances' figures are as of theirs.
        await sessions.report();
        const [live, instances] = await Promise.all([sessions.list(), sessions.store.instances()]);
        const byDoor = new Map<Door, number>();
        for (const s of live) byDoor.set(s.door, (byDoor.get(s.door) ?? 0) + 1);
        const sum = (f: (i: InstanceReport) => number) => instances.reduce((acc, i) => acc + f(i), 0);
        const m = deps.engine.model;
        return create(GetServiceStatsResponseSchema, {
          stats: create(ServiceStatsSchema, {
            activeSessions: live.length,
            sessionsByDoor: [...byDoor].map(([door, count]) => create(DoorCountSchema, { door, count })),
            framesProcessed: BigInt(sum((i) => i.processed)),
            framesDropped: BigInt(sum((i) => i.dropped)),
            framesFailed: BigInt(sum((i) => i.failed)),
            throughputFps: sum((i) => i.throughputFps),
            engine: create(EngineInfoSchema, {
              backend: deps.engine.backend,
              device: deps.engine.device,
              model: m.path.split(/[\\/]/).pop() ?? "",
              classNames: [...m.classNames],
              inputWidth: m.inputWidth,
              inputHeight: m.inputHeight,
              dynamicInputSize: m.dynamicInputSize,
              dynamicBatch: m.dynamicBatch,
              description: m.description,
            }),
            uptimeSeconds: (nowMs - deps.startedAtMs) / 1000,
            instances: Math.max(instances.length, 1),
            startedAt: timestampFromMs(deps.startedAtMs),
          }),
        });
      }),
  };
}

const keepaliveEvent = (): WatchSessionResponse =>
  create(WatchSessionResponseSchema, { event: { case: "keepalive", value: create(KeepaliveSchema, { time: timestampNow() }) } });
