import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { readFile } from "node:fs/promises";
import type { Logger } from "pino";
import type { Config } from "./config.js";
import type { InferenceEngine } from "./inference/engine.js";
import { loadEngineWithRetry } from "./inference/engine-loader.js";
import { loadEngine } from "./inference/load-engine.js";
import { HazardMetrics } from "./metrics/metrics.js";
import { Detector } from "./pipeline/detector.js";
import { Quality } from "../gen/hazard/stream/v1/types_pb.js";
import { HealthCheckResponse_ServingStatus } from "../gen/grpc/health/v1/health_pb.js";
import { isLoopbackHost } from "./rpc/auth.js";
import { HealthState, OVERALL } from "./rpc/health-state.js";
import { createServer, type HazardServer } from "./server.js";
import { defaultSlots, SessionManager } from "./streaming/session-manager.js";
import { MemoryStore } from "./store/memory-store.js";
import { RedisStore } from "./store/redis-store.js";
import type { SessionStore } from "./store/session-store.js";

export interface App {
  server: HazardServer;
  /** gRPC health (grpc.health.v1): "" is SERVING once the model is loaded, NOT_SERVING before and from close(). */
  health: HealthState;
  metrics: HazardMetrics;
  /**
   * Resolves once the model is loaded and the API serves, however many attempts that takes (a model
   * that fails to load is retried with backoff while the server answers UNAVAILABLE). Never rejects.
   */
  ready: Promise<void>;
  /** The loaded engine and the sessions; reading them before `ready` throws. */
  readonly engine: InferenceEngine;
  readonly sessions: SessionManager;
  /** Graceful stop: server first, then the store and the engine. */
  close(): Promise<void>;
}

/** In-memory unless REDIS_URL is set. Redis being down at start is not fatal: calls fail with UNAVAILABLE until it answers. */
async function createStore(config: Config, logger: Logger): Promise<SessionStore> {
  if (!config.redis) return new MemoryStore({ replayWindowBytes: config.streaming.replayWindowBytes });
  const store = new RedisStore({
    url: config.redis.url,
    keyPrefix: config.redis.keyPrefix,
    // A little longer than the session timeout: the expiry sweep ends sessions (and tells their
    // watchers) before their keys vanish.
    sessionTtlMs: (config.streaming.sessionTimeoutSec + 30) * 1000,
    replayWindowBytes: config.streaming.replayWindowBytes,
    logger,
  });
  await store.connect().then(
    () => logger.info({ keyPrefix: config.redis?.keyPrefix }, "session store: redis"),
    (err: unknown) => logger.warn({ err: (err as Error).message }, "session store: redis not reachable yet; retrying"),
  );
  return store;
}

/** The model file's identity for the engine-info metric: first 12 hex digits of its SHA-256. */
async function modelVersion(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex").slice(0, 12);
}

interface Core {
  engine: InferenceEngine;
  sessions: SessionManager;
  store: SessionStore;
}

/**
 * Wires config → server, then (in the background, retried until it works) engine → pipeline →
 * sessions → API. Nothing listens yet; once the entry point listens, health answers NOT_SERVING
 * and the API UNAVAILABLE until the model is loaded.
 */
export async function createApp(config: Config, logger: Logger): Promise<App> {
  const startedAtMs = Date.now();
  const health = new HealthState();
  const metrics = new HazardMetrics();
  const tls = config.tls
    ? { cert: await readFile(config.tls.certFile), key: await readFile(config.tls.keyFile) }
    : undefined;
  let closing = false;
  let core: Core | undefined;

  const loader = loadEngineWithRetry({
    load: () =>
      loadEngine({
        modelPath: config.modelPath,
        backend: config.inference.backend,
        threads: config.inference.threads || undefined,
        device: config.inference.device,
        cacheDir: config.inference.cacheDir,
        performanceHint: config.inference.performanceHint,
      }),
    modelPath: config.modelPath,
    initialMs: config.modelRetry.initialMs,
    maxMs: config.modelRetry.maxMs,
    logger,
    onFailure: () => metrics.modelLoadFailures.inc(),
  });
  const server = createServer({
    health,
    logger,
    metrics,
    metricsPort: config.metricsPort,
    maxFrameBytes: config.limits.maxFrameBytes,
    unavailableReason: () => (closing ? "server is shutting down" : loader.describe()),
    tls,
    shutdownTimeoutMs: config.shutdownTimeoutMs,
    http: config.http,
    apiKeys: config.access.apiKeys,
    connections: config.connections,
  });
  if (config.access.apiKeys.length === 0 && !isLoopbackHost(config.host)) {
    logger.warn(
      { host: config.host },
      "no STREAMING_API_KEYS: anyone who can reach this address may create, watch and feed sessions (see docs/SECURITY.md)",
    );
  }

  async function start(engine: InferenceEngine): Promise<Core> {
    const m = engine.model;
    const detector = new Detector(engine, {
      maxImageBytes: config.limits.maxFrameBytes,
      maxImagePixels: config.limits.maxImagePixels,
    });
    const store = await createStore(config, logger);
    const sessions = new SessionManager({
      detector,
      store,
      limits: {
        maxFps: config.streaming.maxFps,
        classNames: m.classNames,
        dynamicInputSize: m.dynamicInputSize,
        defaults: {
          fpsLimit: config.streaming.defaultFps,
          confidenceThreshold: config.detection.confidenceThreshold,
          iouThreshold: config.detection.iouThreshold,
          enableTracking: config.streaming.enableTracking,
          maxDetections: config.detection.maxDetections,
          classNames: [],
          quality: Quality.HIGH,
        },
      },
      queueSize: config.streaming.queueSize,
      sessionTimeoutMs: config.streaming.sessionTimeoutSec * 1000,
      slots: config.inference.slots || defaultSlots(engine.concurrency),
      unaryQueueSize: config.limits.detectQueueSize,
      model: m,
      logger,
      metrics,
      quota: { maxSessions: config.access.maxSessions, maxPerOwner: config.access.maxSessionsPerKey },
    });
    metrics.engineLoaded(engine, await modelVersion(m.path).catch(() => "unknown"));
    return { engine, sessions, store };
  }

  const ready = loader.engine.then(async (engine) => {
    if (!engine) return;
    const started = await start(engine);
    if (closing) {
      await started.store.close();
      await engine.close();
      return;
    }
    core = started;
    started.sessions.start();
    server.serve(
      {
        sessions: started.sessions,
        engine,
        maxFrameBytes: config.limits.maxFrameBytes,
        startedAtMs,
        health,
        maxWatchersPerSession: config.access.maxWatchersPerSession,
        watcherBufferBytes: config.streaming.watcherBufferBytes,
      },
      started.sessions,
    );
    // --- health: the engine is loaded and the API serves, so the whole server ("") may take traffic.
    health.setStatus(OVERALL, HealthCheckResponse_ServingStatus.SERVING);
  }).catch((err: unknown) => {
    // Nothing above is expected to throw; if it does, stay up and say so rather than serve half-wired.
    logger.error({ err }, "startup failed after the model loaded; the API stays UNAVAILABLE");
  });

  const loaded = (): Core => {
    if (!core) throw new Error("the model is not loaded yet (await app.ready)");
    return core;
  };
  return {
    server,
    health,
    metrics,
    ready,
    get engine() {
      return loaded().engine;
    },
    get sessions() {
      return loaded().sessions;
    },
    async close() {
      closing = true;
      loader.stop();
      // --- health: probes and Watch streams see NOT_SERVING before connections start closing.
      health.shutdown();
      await server.close();
      // A load that was under way finishes (and is closed) before the process may exit.
      await ready;
      if (core) {
        await core.store.close();
        await core.engine.close();
      }
    },
  };
}
