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
import type { LiveSession } from "../streaming/live-session.js";
import type { SessionManager } from "../streaming/session-manager.js";
import { checkFrame } from "./detection-service.js";
import { apiError, toApiError } from "./errors.js";

export interface SessionServiceDeps {
  sessions: SessionManager;
  engine: InferenceEngine;
  maxFrameBytes: number;
  /** Events a watcher may fall behind before it is cut off. */
  watchBufferCapacity?: number;
  /** Idle time after which a watch stream gets a keepalive, so proxies keep it open. */
  keepaliveMs?: number;
  startedAtMs: number;
  now?: () => number;
}

const summary = (w: LatencyWindow) => create(LatencySummarySchema, w.summary());

export function sessionStats(s: LiveSession, nowMs: number): SessionStats {
  const c = s.counters;
  return create(SessionStatsSchema, {
    clientId: s.clientId,
    framesReceived: BigInt(c.received),
    framesProcessed: BigInt(c.processed),
    framesDropped: BigInt(c.dropped),
    framesFailed: BigInt(c.failed),
    drops: [...c.drops].map(([reason, count]) => create(DropCountSchema, { reason, count: BigInt(count) })),
    effectiveFps: c.processedRate.rate(nowMs),
    processingTimeMs: summary(c.processingMs),
    latencyMs: summary(c.latencyMs),
    queueDepth: s.queueDepth,
    lastActivityAt: timestampFromMs(s.lastActivityMs),
    uniqueHazards: [...c.uniqueHazards].map(([className, count]) => create(ClassCountSchema, { className, count: BigInt(count) })),
    allowedFps: s.config.fpsLimit,
    createdAt: timestampFromMs(s.createdAtMs),
  });
}

export function createSessionService(deps: SessionServiceDeps): ServiceImpl<typeof SessionService> {
  const now = deps.now ?? Date.now;
  const sessions = deps.sessions;
  const capacity = deps.watchBufferCapacity ?? 256;
  const keepaliveMs = deps.keepaliveMs ?? 15_000;
  const wrap = <T>(fn: () => T): T => {
    try {
      return fn();
    } catch (err) {
      throw toApiError(err);
    }
  };

  return {
    createSession: (req) => wrap(() => ({ session: sessions.create(Door.SESSION_API, req.config).toProto() })),
    getSession: (req) => wrap(() => ({ session: sessions.get(req.clientId).toProto() })),
    updateSessionConfig: (req) => wrap(() => ({ session: sessions.updateConfig(req.clientId, req.config).toProto() })),
    deleteSession: (req) =>
      wrap(() => {
        sessions.get(req.clientId);
        sessions.end(req.clientId, EndReason.DELETED);
        return {};
      }),

    listSessions(req) {
      const size = req.pageSize === 0 ? 100 : Math.min(req.pageSize, 1000);
      const all = sessions.list().sort((a, b) => (a.clientId < b.clientId ? -1 : 1));
      const start = req.pageToken ? all.findIndex((s) => s.clientId > req.pageToken) : 0;
      const page = start < 0 ? [] : all.slice(start, start + size);
      const last = page.at(-1);
      const more = start >= 0 && start + size < all.length;
      return create(ListSessionsResponseSchema, {
        sessions: page.map((s) => s.toProto()),
        nextPageToken: more && last ? last.clientId : "",
      });
    },

    submitFrame: (req) =>
      wrap(() => {
        const session = sessions.get(req.clientId);
        try {
          checkFrame(req.frame, deps.maxFrameBytes);
        } catch (err) {
          session.counters.countRejected();
          throw err;
        }
        const out = sessions.submit(req.clientId, req.frame);
        return create(SubmitFrameResponseSchema, { ...out, allowedFps: session.config.fpsLimit });
      }),

    async *watchSession(req: WatchSessionRequest, ctx: HandlerContext): AsyncGenerator<WatchSessionResponse> {
      const session = wrap(() => sessions.get(req.clientId));
      const sub = session.subscribe(capacity, req.afterEventId > 0n ? req.afterEventId : undefined);
      try {
        for (;;) {
          const keepalive = AbortSignal.any([ctx.signal, AbortSignal.timeout(keepaliveMs)]);
          const ev = await sub.next(keepalive);
          if (ctx.signal.aborted) return;
          if (ev === undefined) {
            if (sub.isClosed) break;
            yield create(WatchSessionResponseSchema, {
              event: { case: "keepalive", value: create(KeepaliveSchema, { time: timestampNow() }) },
            });
            continue;
          }
          yield ev;
          if (ev.event.case === "ended") return;
        }
        if (sub.overflowed) {
          throw apiError(ErrorCode.RESOURCE_EXHAUSTED, "watcher is not reading events fast enough; stream closed");
        }
      } finally {
        session.unsubscribe(sub);
      }
    },

    getSessionStats: (req) =>
      wrap(() => create(GetSessionStatsResponseSchema, { stats: sessionStats(sessions.get(req.clientId), now()) })),

    getServiceStats() {
      const nowMs = now();
      const live = sessions.list();
      const byDoor = new Map<Door, number>();
      for (const s of live) byDoor.set(s.door, (byDoor.get(s.door) ?? 0) + 1);
      const m = deps.engine.model;
      return create(GetServiceStatsResponseSchema, {
        stats: create(ServiceStatsSchema, {
          activeSessions: live.length,
          sessionsByDoor: [...byDoor].map(([door, count]) => create(DoorCountSchema, { door, count })),
          framesProcessed: BigInt(sessions.totals.processed),
          framesDropped: BigInt(sessions.totals.dropped),
          framesFailed: BigInt(sessions.totals.failed),
          throughputFps: sessions.totals.processedRate.rate(nowMs),
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
          instances: 1,
          startedAt: timestampFromMs(deps.startedAtMs),
        }),
      });
    },
  };
}
