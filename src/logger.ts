import { pino, stdSerializers, type DestinationStream, type Logger, type LoggerOptions } from "pino";

/**
 * Structured JSON logs on stdout. Frames and image data are never logged: no code logs a frame,
 * and as a second line of defence against an error message or a field that quotes one (a base64
 * body echoed by a parser, a client-sent string), image fields are redacted by name and any long
 * base64-like run in a logged string is replaced by its length.
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options: LoggerOptions = {
    level,
    base: { service: "hazard-stream" },
    redact: {
      paths: ["imageData", "image_data", "*.imageData", "*.image_data", "frame.imageData", "*.frame.imageData"],
      censor: "[image data]",
    },
    serializers: { err: scrubError },
    formatters: { log: (obj) => scrubFields(obj) },
    hooks: {
      logMethod(args, method) {
        // The message itself (the string argument) gets the same treatment as fields.
        method.apply(this, args.map((a: unknown) => (typeof a === "string" ? scrub(a) : a)) as typeof args);
      },
    },
  };
  return destination ? pino(options, destination) : pino(options);
}

/** Shorter runs are ids, hashes and words; a 96-character base64 run is 72 bytes of binary. */
const BASE64_RUN = /[A-Za-z0-9+/_-]{96,}={0,2}/g;
const MAX_STRING = 4096;

/** Replaces base64-like runs and cuts very long strings; short strings pass untouched and cheaply. */
export function scrub(s: string): string {
  if (s.length < 96) return s;
  const out = s.replace(BASE64_RUN, (run) => `[${run.length} base64-like chars removed]`);
  return out.length > MAX_STRING ? `${out.slice(0, MAX_STRING)}…[${out.length - MAX_STRING} more chars]` : out;
}

/** pino's error serializer (its message and stack include the causes), with every string scrubbed. */
function scrubError(e: unknown): unknown {
  // Whatever is logged under `err` comes here, a bare message string too (`{ err: err.message }`);
  // a serializer that throws turns that log line into an unhandled error that ends the process.
  if (!(e instanceof Error)) return scrubValue(e);
  const s = stdSerializers.err(e);
  for (const key of Object.keys(s)) {
    const v: unknown = s[key];
    if (typeof v === "string") s[key] = scrub(v);
  }
  return s;
}

function scrubValue(v: unknown, depth = 0): unknown {
  if (typeof v === "string") return scrub(v);
  if (depth > 4 || v === null || typeof v !== "object") return v;
  if (v instanceof Uint8Array) return `[${v.length} bytes]`;
  if (Array.isArray(v)) return v.map((x) => scrubValue(x, depth + 1));
  // Errors (and other class instances) are left to their serializers.
  if (v instanceof Error || Object.getPrototypeOf(v) !== Object.prototype) return v;
  return scrubFields(v as Record<string, unknown>, depth + 1);
}

function scrubFields(obj: Record<string, unknown>, depth = 0): Record<string, unknown> {
  let out: Record<string, unknown> | undefined;
  for (const [k, v] of Object.entries(obj)) {
    const s = scrubValue(v, depth);
    if (s !== v) (out ??= { ...obj })[k] = s;
  }
  return out ?? obj;
}
