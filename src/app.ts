import { readFile } from "node:fs/promises";
import type { Logger } from "pino";
import type { Config } from "./config.js";
import type { InferenceEngine } from "./inference/engine.js";
import { loadEngine } from "./inference/load-engine.js";
import { Detector } from "./pipeline/detector.js";
import { Quality } from "../gen/hazard/stream/v1/types_pb.js";
import { HealthCheckResponse_ServingStatus } from "../gen/grpc/health/v1/health_pb.js";
import { HealthState, OVERALL } from "./rpc/health-state.js";
import { createServer, type HazardServer } from "./server.js";
import { defaultSlots, SessionManager } from "./streaming/session-manager.js";
import { MemoryStore } from "./store/memory-store.js";
import { RedisStore } from "./store/redis-store.js";
import type { SessionStore } from "./store/session-store.js";

export interface App {
  server: HazardServer;
  engine: InferenceEngine;
  sessions: SessionManager;
  /** gRPC health (grpc.health.v1): "" is SERVING once the engine is loaded, NOT_SERVING from close(). */
  health: HealthState;
  /** Graceful stop: server first, then the engine. */
  close(): Promise<void>;
}

/** In-memory unless REDIS_URL is set. Redis being down at start is not fatal: calls fail with UNAVAILABLE until it answers. */
async function createStore(config: Config, logger: Logger): Promise<SessionStore> {
  if (!config.redis) return new MemoryStore();
  const store = new RedisStore({
    url: config.redis.url,
    keyPrefix: config.redis.keyPrefix,
    // A little longer than the session timeout: the expiry sweep ends sessions (and tells their
    // watchers) before their keys vanish.
    sessionTtlMs: (config.streaming.sessionTimeoutSec + 30) * 1000,
    logger,
  });
  await store.connect().then(
    () => logger.info({ keyPrefix: config.redis?.keyPrefix }, "session store: redis"),
    (err: unknown) => logger.warn({ err: (err as Error).message }, "session store: redis not reachable yet; retrying"),
  );
  return store;
}

/** Wires config → engine → pipeline → sessions → server. Nothing listens yet. */
export async function createApp(config: Config, logger: Logger): Promise<App> {
  const { engine, reason } = await loadEngine({
    modelPath: config.modelPath,
    backend: config.inference.backend,
    threads: config.inference.threads || undefined,
    device: config.inference.device,
    cacheDir: config.inference.cacheDir,
    performanceHint: config.inference.performanceHint,
  });
  const m = engine.model;
  logger.info(
    { backend: engine.backend, device: engine.device, model: m.path, classes: m.classNames, input: [m.inputWidth, m.inputHeight] },
    `inference: ${engine.backend} (${reason})`,
  );
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
        quality: Quality.UNSPECIFIED,
      },
    },
    queueSize: config.streaming.queueSize,
    sessionTimeoutMs: config.streaming.sessionTimeoutSec * 1000,
    slots: config.inference.slots || defaultSlots(engine.concurrency),
    unaryQueueSize: config.limits.detectQueueSize,
    model: m,
    logger,
  });
  sessions.start();
  const tls = config.tls
    ? { cert: await readFile(config.tls.certFile), key: await readFile(config.tls.keyFile) }
    : undefined;
  // --- health: the engine is loaded, so the whole server ("") may take traffic.
  const health = new HealthState();
  health.setStatus(OVERALL, HealthCheckResponse_ServingStatus.SERVING);
  const server = createServer({
    deps: { sessions, engine, maxFrameBytes: config.limits.maxFrameBytes, startedAtMs: Date.now(), health },
    sessions,
    logger,
    tls,
    shutdownTimeoutMs: config.shutdownTimeoutMs,
    http: config.http,
  });
  return {
    server,
    engine,
    sessions,
    health,
    async close() {
      // --- health: probes and Watch streams see NOT_SERVING before connections start closing.
      health.shutdown();
      await server.close();
      await store.close();
      await engine.close();
    },
  };
}
