import type { AddressInfo } from "node:net";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Logger } from "pino";
import { createApp, type App } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";
import { createLogger } from "../../src/logger.js";

export interface TestServer {
  app: App;
  address: AddressInfo;
  baseUrl: string;
  close(): Promise<void>;
}

/**
 * Starts the real service on 127.0.0.1 and an ephemeral port, with env overrides (MODEL_PATH defaults
 * to FILTER_MODEL, not the service's trained default); by default it
 * resolves once the model is loaded (the API serves). `waitReady: false` returns as soon as the
 * port listens (health NOT_SERVING, API UNAVAILABLE until the model loads).
 */
export async function startServer(
  env: Record<string, string> = {},
  options: { waitReady?: boolean; logger?: Logger } = {},
): Promise<TestServer> {
  const config = loadConfig({
    PORT: "0",
    HOST: "127.0.0.1",
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent",
    MODEL_PATH: FILTER_MODEL,
    ...env,
  });
  const app = await createApp(config, options.logger ?? createLogger(config.logLevel));
  const address = await app.server.listen(config.port, config.host);
  if (options.waitReady !== false) await app.ready;
  return {
    app,
    address,
    baseUrl: `http://127.0.0.1:${address.port}`,
    close: () => app.close(),
  };
}

/**
 * The fixed-filter model built for the synthetic road scenes the tests draw: deterministic, and it finds
 * exactly what the scene generator paints. Tests that mean the trained default pass MODEL_PATH.
 */
export const FILTER_MODEL = fileURLToPath(new URL("../../models/road-hazard-filter.onnx", import.meta.url));

/** `../shared` beside the checkout: real models and photos (test use only, never copied here). */
export const SHARED_DIR = fileURLToPath(new URL("../../../shared/", import.meta.url));
export const SHARED_YOLO = `${SHARED_DIR}testdata/models/pothole-yolov8n-640-int8/best_dynamic_int8.onnx`;
export const SHARED_POTHOLES = `${SHARED_DIR}testdata/images/potholes-67`;
export const hasSharedYolo = existsSync(SHARED_YOLO);
export function skipMessage(what: string): string {
  return `skipped: ${what} not found (../shared beside the checkout holds the test data)`;
}
