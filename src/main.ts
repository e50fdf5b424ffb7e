import { ConfigError, loadConfig } from "./config.js";
import { createApp } from "./app.js";
import { createLogger } from "./logger.js";

/** Past the shutdown deadline, closing the store and the engine gets this much more before a hard exit. */
const EXIT_GRACE_MS = 2000;
/**
 * One stop request can arrive twice: Ctrl-C signals the terminal's whole process group and `npm start`
 * forwards what it receives to us, as does systemd's default KillMode=control-group. A repeat this
 * soon is that echo, not an operator asking to skip the drain.
 */
const SIGNAL_ECHO_MS = 1000;

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
  // Node ends the process on an uncaught exception or an unhandled rejection (its default, kept:
  // the state may be broken); this puts the reason in the JSON log first, where operators look.
  process.on("uncaughtExceptionMonitor", (err, origin) => {
    logger.fatal({ err, origin }, origin === "unhandledRejection" ? "unhandled rejection: exiting" : "uncaught exception: exiting");
  });
  const app = await createApp(config, logger);
  // Listening comes first so probes get an answer (NOT_SERVING) while the model loads, or while a
  // model that failed to load is retried; "listening on" is logged once the API serves.
  const addr = await app.server.listen(config.port, config.host);
  const url = `${config.tls ? "https" : "http"}://${config.host}:${addr.port}`;
  const metricsAddr = app.server.metricsAddress();
  logger.info(
    { address: addr.address, port: addr.port, tls: Boolean(config.tls), metricsPort: metricsAddr?.port },
    `port ${addr.port} open: health NOT_SERVING until the model is loaded`,
  );

  let stopping = false;
  let stoppingSince = 0;
  void app.ready.then(() => {
    if (!stopping) logger.info({ address: addr.address, port: addr.port, tls: Boolean(config.tls) }, `listening on ${url}`);
  });
  const stop = (signal: string) => {
    if (stopping) {
      if (Date.now() - stoppingSince < SIGNAL_ECHO_MS) return;
      logger.warn(`${signal} again: exiting now`);
      process.exit(1);
    }
    stopping = true;
    stoppingSince = Date.now();
    logger.info({ shutdownTimeoutMs: config.shutdownTimeoutMs }, `${signal}: draining streams`);
    // The server's own deadline cuts connections; this one also bounds closing the store and engine.
    setTimeout(() => {
      logger.error("shutdown did not finish in time: exiting");
      process.exit(1);
    }, config.shutdownTimeoutMs + EXIT_GRACE_MS).unref();
    app.close().then(
      () => {
        logger.info("shutdown complete");
        process.exit(0);
      },
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
