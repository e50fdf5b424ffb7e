import { fileURLToPath } from "node:url";
import { defaultHttpRoutesConfig, parseCorsOrigins, type HttpRoutesConfig } from "./http/http-config.js";
import { DEFAULT_REPLAY_WINDOW_BYTES } from "./store/session-store.js";

/**
 * Default STREAMING_WATCHER_BUFFER_BYTES: a reader this far behind is cut off (it may resume from the
 * replay window). 256 results without metadata are about 1 MB; at the metadata limit, ~128 events.
 */
export const DEFAULT_WATCHER_BUFFER_BYTES = 8 * 1024 * 1024;

/** Everything the service reads from its environment, validated once at start. */
export interface Config {
  host: string;
  port: number;
  tls?: { certFile: string; keyFile: string };
  modelPath: string;
  inference: {
    backend: "auto" | "openvino" | "onnxruntime";
    /** Threads per inference run; 0 lets the backend decide. */
    threads: number;
    /** Frames processed at once (decode + inference); 0 sizes it to the engine and the cores. */
    slots: number;
    device: string;
    cacheDir: string;
    performanceHint: "LATENCY" | "THROUGHPUT";
  };
  limits: {
    maxFrameBytes: number;
    maxImagePixels: number;
    /** Unary Detect calls that may wait for a processing slot; more are refused (RESOURCE_EXHAUSTED). */
    detectQueueSize: number;
  };
  streaming: {
    sessionTimeoutSec: number;
    maxFps: number;
    defaultFps: number;
    queueSize: number;
    enableTracking: boolean;
    /** Byte budget of a session's replay window (the oldest events go first). */
    replayWindowBytes: number;
    /** Bytes of events one watcher or stream may fall behind before it is cut off. */
    watcherBufferBytes: number;
  };
  detection: {
    confidenceThreshold: number;
    iouThreshold: number;
    maxDetections: number;
  };
  /** Shared session store for several instances; unset = in-memory (one instance). */
  redis?: { url: string; keyPrefix: string };
  shutdownTimeoutMs: number;
  /** METRICS_PORT: a separate listener for `GET /metrics`; unset = the main port serves it. */
  metricsPort?: number;
  /** A model that fails to load is retried with exponential backoff from initialMs up to maxMs. */
  modelRetry: { initialMs: number; maxMs: number };
  logLevel: string;
  /** REST, SSE and WebSocket routes: body and message limits, CORS origins. */
  http: HttpRoutesConfig;
  /** API keys and per-key, per-session limits (docs/SECURITY.md). */
  access: AccessConfig;
  /** Connection-level limits and idle timeouts (docs/SECURITY.md). */
  connections: ConnectionLimits;
}

export interface AccessConfig {
  /** STREAMING_API_KEYS; empty = no access control (every caller is the same owner). */
  apiKeys: readonly string[];
  /** Sessions alive at once on the whole service (all instances sharing a Redis). */
  maxSessions: number;
  /** Sessions alive at once per API key (only with keys). */
  maxSessionsPerKey: number;
  /** Subscribers (SSE, WatchSession, a resumed stream) of one session on one instance. */
  maxWatchersPerSession: number;
}

export interface ConnectionLimits {
  /** TCP connections open at once from one address; 0 = no limit. */
  maxPerIp: number;
  /** HTTP/1.1: time to receive a request's headers (also: a new connection's first bytes). */
  headersTimeoutMs: number;
  /** HTTP/1.1: time to receive a whole request, body included. */
  requestTimeoutMs: number;
  /** HTTP/1.1: an idle keep-alive connection is closed after this. */
  keepAliveTimeoutMs: number;
  /** HTTP/2: a connection without open streams is closed (GOAWAY) after this. */
  http2IdleTimeoutMs: number;
  /** HTTP/2: streams (calls) open at once on one connection. */
  http2MaxConcurrentStreams: number;
}

// Our crack/pothole detector trained on real survey photos (models/README.md); the fixed-filter model
// models/road-hazard-filter.onnx stays for synthetic scenes (tests, demo video).
export const DEFAULT_MODEL_PATH = fileURLToPath(new URL("../models/road-hazard-yolo.onnx", import.meta.url));

/** A setting that cannot be used; the message names the variable so operators can fix it. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

type Env = Readonly<Record<string, string | undefined>>;

function str(env: Env, name: string, fallback: string): string {
  const v = env[name]?.trim();
  return v === undefined || v === "" ? fallback : v;
}

function num(env: Env, name: string, fallback: number, min: number, max: number, integer = true): number {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === "") return fallback;
  const v = Number(raw);
  if (!Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < min || v > max) {
    throw new ConfigError(`${name}=${raw} is invalid: expected ${integer ? "an integer" : "a number"} in ${min}..${max}`);
  }
  return v;
}

function bool(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name]?.trim().toLowerCase();
  if (raw === undefined || raw === "") return fallback;
  if (["1", "true", "yes", "on"].includes(raw)) return true;
  if (["0", "false", "no", "off"].includes(raw)) return false;
  throw new ConfigError(`${name}=${raw} is invalid: expected true or false`);
}

function oneOf<T extends string>(env: Env, name: string, fallback: T, allowed: readonly T[]): T {
  const raw = str(env, name, fallback);
  const hit = allowed.find((a) => a.toLowerCase() === raw.toLowerCase());
  if (hit === undefined) throw new ConfigError(`${name}=${raw} is invalid: expected one of ${allowed.join(", ")}`);
  return hit;
}

export function loadConfig(env: Env = process.env): Config {
  const certFile = env.TLS_CERT_FILE?.trim();
  const keyFile = env.TLS_KEY_FILE?.trim();
  if (Boolean(certFile) !== Boolean(keyFile)) {
    throw new ConfigError("TLS_CERT_FILE and TLS_KEY_FILE must be set together");
  }
  const maxFps = num(env, "STREAMING_MAX_FPS", 30, 1, 240);
  const streaming = {
    sessionTimeoutSec: num(env, "STREAMING_SESSION_TIMEOUT", 300, 1, 86_400, false),
    maxFps,
    defaultFps: num(env, "STREAMING_DEFAULT_FPS", 10, 1, maxFps),
    queueSize: num(env, "STREAMING_QUEUE_SIZE", 50, 1, 10_000),
    enableTracking: bool(env, "STREAMING_ENABLE_TRACKING", true),
    replayWindowBytes: num(env, "STREAMING_REPLAY_WINDOW_BYTES", DEFAULT_REPLAY_WINDOW_BYTES, 1024, 1024 * 1024 * 1024),
    watcherBufferBytes: num(env, "STREAMING_WATCHER_BUFFER_BYTES", DEFAULT_WATCHER_BUFFER_BYTES, 1024, 1024 * 1024 * 1024),
  };
  const maxFrameBytes = num(env, "MAX_FRAME_BYTES", 8 * 1024 * 1024, 1024, 1024 * 1024 * 1024);
  const httpDefaults = defaultHttpRoutesConfig(maxFrameBytes);
  return {
    host: str(env, "HOST", "127.0.0.1"),
    port: num(env, "PORT", 8080, 0, 65_535),
    tls: certFile && keyFile ? { certFile, keyFile } : undefined,
    modelPath: str(env, "MODEL_PATH", DEFAULT_MODEL_PATH),
    inference: {
      backend: oneOf(env, "INFERENCE_BACKEND", "auto", ["auto", "openvino", "onnxruntime"] as const),
      threads: num(env, "INFERENCE_THREADS", 0, 0, 256),
      slots: num(env, "INFERENCE_SLOTS", 0, 0, 256),
      device: str(env, "OPENVINO_DEVICE", "AUTO"),
      cacheDir: str(env, "OPENVINO_CACHE_DIR", ".cache/openvino"),
      performanceHint: oneOf(env, "OPENVINO_PERFORMANCE_HINT", "LATENCY", ["LATENCY", "THROUGHPUT"] as const),
    },
    limits: {
      maxFrameBytes,
      // 8K UHD is 33 Mpx; the default leaves headroom while refusing decompression bombs.
      maxImagePixels: num(env, "MAX_IMAGE_PIXELS", 40_000_000, 1, 1_000_000_000),
      detectQueueSize: num(env, "DETECT_QUEUE_SIZE", 32, 1, 100_000),
    },
    streaming,
    detection: {
      confidenceThreshold: num(env, "DEFAULT_CONFIDENCE_THRESHOLD", 0.25, 0, 1, false),
      iouThreshold: num(env, "DEFAULT_IOU_THRESHOLD", 0.7, 0, 1, false),
      maxDetections: num(env, "DEFAULT_MAX_DETECTIONS", 300, 1, 1000),
    },
    redis: env.REDIS_URL?.trim()
      ? { url: str(env, "REDIS_URL", ""), keyPrefix: str(env, "REDIS_KEY_PREFIX", "hazard-stream:") }
      : undefined,
    shutdownTimeoutMs: num(env, "SHUTDOWN_TIMEOUT_MS", 10_000, 0, 600_000),
    metricsPort: env.METRICS_PORT?.trim() ? num(env, "METRICS_PORT", 0, 0, 65_535) : undefined,
    modelRetry: modelRetry(env),
    logLevel: str(env, "LOG_LEVEL", "info"),
    http: {
      maxRequestBytes: num(env, "MAX_REQUEST_BYTES", httpDefaults.maxRequestBytes, 1024, 2 * 1024 * 1024 * 1024),
      maxWsMessageBytes: num(env, "MAX_WS_MESSAGE_BYTES", httpDefaults.maxWsMessageBytes, 1024, 1024 * 1024 * 1024),
      corsOrigins: parseCorsOrigins(env.CORS_ORIGINS),
      wsPingIntervalMs: num(env, "WS_PING_INTERVAL_MS", httpDefaults.wsPingIntervalMs, 100, 3_600_000),
      wsPerMessageDeflate: bool(env, "WS_PERMESSAGE_DEFLATE", false),
    },
    access: loadAccess(env),
    connections: loadConnectionLimits(env),
  };
}

/** Keys are compared as given; what a header cannot carry, or a comma list cannot separate, is refused. */
const API_KEY = /^[\x21-\x2b\x2d-\x7e]{16,256}$/;

function loadAccess(env: Env): AccessConfig {
  const apiKeys = [...new Set((env.STREAMING_API_KEYS ?? "").split(",").map((k) => k.trim()).filter((k) => k !== ""))];
  for (const [i, key] of apiKeys.entries()) {
    // The message names the key's position, never the key: config errors end up in logs.
    if (!API_KEY.test(key)) {
      throw new ConfigError(
        `STREAMING_API_KEYS: key #${i + 1} is invalid: expected 16 to 256 visible ASCII characters other than ",", e.g. from \`openssl rand -base64 32\``,
      );
    }
  }
  const maxSessions = num(env, "STREAMING_MAX_SESSIONS", 1000, 1, 1_000_000);
  return {
    apiKeys,
    maxSessions,
    // A quarter of the service by default: one leaked or runaway key cannot take every session.
    maxSessionsPerKey: num(env, "STREAMING_MAX_SESSIONS_PER_KEY", Math.min(250, maxSessions), 1, maxSessions),
    maxWatchersPerSession: num(env, "STREAMING_MAX_WATCHERS_PER_SESSION", 16, 1, 10_000),
  };
}

function loadConnectionLimits(env: Env): ConnectionLimits {
  const headersTimeoutMs = num(env, "HTTP_HEADERS_TIMEOUT_MS", 20_000, 1000, 600_000);
  return {
    maxPerIp: num(env, "MAX_CONNECTIONS_PER_IP", 256, 0, 1_000_000),
    headersTimeoutMs,
    // Long enough for a maximal frame as JSON (~11 MB) over a slow uplink (~1 Mbit/s).
    requestTimeoutMs: num(env, "HTTP_REQUEST_TIMEOUT_MS", 120_000, headersTimeoutMs, 3_600_000),
    keepAliveTimeoutMs: num(env, "HTTP_KEEPALIVE_TIMEOUT_MS", 5000, 100, 3_600_000),
    http2IdleTimeoutMs: num(env, "HTTP2_IDLE_TIMEOUT_MS", 120_000, 1000, 86_400_000),
    http2MaxConcurrentStreams: num(env, "HTTP2_MAX_CONCURRENT_STREAMS", 100, 1, 100_000),
  };
}

function modelRetry(env: Env): { initialMs: number; maxMs: number } {
  const initialMs = num(env, "MODEL_LOAD_RETRY_MS", 1000, 10, 3_600_000);
  return { initialMs, maxMs: num(env, "MODEL_LOAD_RETRY_MAX_MS", Math.max(60_000, initialMs), initialMs, 86_400_000) };
}
