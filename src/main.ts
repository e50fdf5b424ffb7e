import { ConfigError, loadConfig } from "./config.js";
import { createApp } from "./app.js";
import { createLogger } from "./logger.js";

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`hazard-stream: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger(config.logLevel);
  const app = await createApp(config, logger);
  const addr = await app.server.listen(config.port, config.host);
  const scheme = config.tls ? "https" : "http";
  logger.info({ address: addr.address, port: addr.port, tls: Boolean(config.tls) }, `listening on ${scheme}://${config.host}:${addr.port}`);

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      logger.warn(`${signal} again: exiting now`);
      process.exit(1);
    }
    stopping = true;
    logger.info(`${signal}: draining streams`);
    app.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

main().catch((err: unknown) => {
  console.error("hazard-stream failed to start:", err instanceof Error ? err.message : err);
  process.exit(1);
});
