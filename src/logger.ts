import { pino, type Logger } from "pino";

/** Structured JSON logs on stdout. Frames and image data are never logged. */
export function createLogger(level: string): Logger {
  return pino({ level, base: { service: "hazard-stream" } });
}
