import { basename } from "node:path";
import type { Logger } from "pino";
import type { InferenceEngine } from "./engine.js";
import { firstLine } from "./error-text.js";

export interface EngineLoaderOptions {
  /** One attempt; resolves with the engine and a sentence for the log saying which backend runs and why. */
  load: () => Promise<{ engine: InferenceEngine; reason: string }>;
  modelPath: string;
  /** Delay before the second attempt; it doubles after each failure up to maxMs. */
  initialMs: number;
  maxMs: number;
  logger: Logger;
  /** Called after each failed attempt (metrics). */
  onFailure?: () => void;
  now?: () => number;
}

export interface EngineLoader {
  /** Resolves with the engine once an attempt succeeds, or with undefined when stopped first. Never rejects. */
  readonly engine: Promise<InferenceEngine | undefined>;
  /** Why the API cannot serve yet, for clients (UNAVAILABLE messages, /stream/health). */
  describe(): string;
  /** Stops retrying; an engine that loads after this is closed at once. */
  stop(): void;
}

/**
 * Loads the model, and when that fails keeps the process up and retries with exponential backoff:
 * a model file that is missing, being copied, or on a volume that mounts late is a condition to
 * report (health NOT_SERVING, UNAVAILABLE with the reason) and outlive, not a crash loop. Each
 * failure is logged with the full cause; clients get it with the model's directory left out.
 */
export function loadEngineWithRetry(opts: EngineLoaderOptions): EngineLoader {
  const now = opts.now ?? Date.now;
  let attempt = 0;
  let failures = 0;
  let lastError: string | undefined;
  let retryAtMs = 0;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let wake: (() => void) | undefined;
  const dir = opts.modelPath.slice(0, opts.modelPath.length - basename(opts.modelPath).length);

  const engine = (async (): Promise<InferenceEngine | undefined> => {
    for (;;) {
      attempt++;
      try {
        const { engine, reason } = await opts.load();
        if (stopped) {
          await engine.close().catch(() => undefined);
          return undefined;
        }
        const m = engine.model;
        opts.logger.info(
          { backend: engine.backend, device: engine.device, model: m.path, classes: m.classNames, input: [m.inputWidth, m.inputHeight], attempt },
          `inference: ${engine.backend} (${reason})`,
        );
        return engine;
      } catch (err) {
        failures++;
        opts.onFailure?.();
        const delayMs = Math.min(opts.maxMs, opts.initialMs * 2 ** Math.min(attempt - 1, 30));
        lastError = firstLine(err);
        retryAtMs = now() + delayMs;
        opts.logger.error({ err, modelPath: opts.modelPath, attempt, retryInMs: delayMs }, "model load failed; the API answers UNAVAILABLE until it loads");
        if (stopped) return undefined;
        await new Promise<void>((resolve) => {
          wake = resolve;
          timer = setTimeout(resolve, delayMs);
        });
        if (stopped) return undefined;
      }
    }
  })();

  return {
    engine,
    describe() {
      if (lastError === undefined) return "the detection model is loading; retry in a moment";
      const why = dir === "" ? lastError : lastError.split(dir).join("");
      const inSec = Math.max(0, Math.ceil((retryAtMs - now()) / 1000));
      return `the detection model is not loaded (attempt ${failures} failed: ${why}); next attempt in ${inSec} s`;
    },
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      wake?.();
    },
  };
}
