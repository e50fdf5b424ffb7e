/**
 * Settings of the REST, SSE and WebSocket routes, read from the environment in config.ts. Kept
 * apart from the adapter so loading the config does not load the adapter.
 */
export interface HttpRoutesConfig {
  /** Largest request body (REST); larger ones are answered 413 without being read. */
  maxRequestBytes: number;
  /** Largest WebSocket message answered with MESSAGE_TOO_LARGE; twice this closes the connection. */
  maxWsMessageBytes: number;
  /** CORS_ORIGINS: browser origins allowed to call; `*` for any. */
  corsOrigins: readonly string[];
  /** WebSocket keepalive ping interval; a peer silent for two intervals is cut off. */
  wsPingIntervalMs: number;
  /**
   * Offer permessage-deflate on the WebSocket route. Off by default: frames are JPEG/PNG/WebP (or
   * their base64), which do not compress, and deflating them cost 3-6 ms of server and of client
   * CPU per frame (bench/notes.md); results are a few hundred bytes.
   */
  wsPerMessageDeflate?: boolean;
  /** Reconnection delay suggested to EventSource (default 3 s). */
  sseRetryMs?: number;
}

/** Defaults for a given MAX_FRAME_BYTES: a maximal frame as base64 (4/3) inside JSON, plus room for the rest. */
export function defaultHttpRoutesConfig(maxFrameBytes: number): HttpRoutesConfig {
  const maxJsonFrame = Math.ceil((maxFrameBytes * 4) / 3) + 64 * 1024;
  return { maxRequestBytes: maxJsonFrame, maxWsMessageBytes: maxJsonFrame, corsOrigins: [], wsPingIntervalMs: 30_000, wsPerMessageDeflate: false };
}

/** `CORS_ORIGINS`: a comma list of origins (`https://app.example.com`), or `*`. */
export function parseCorsOrigins(raw: string | undefined): string[] {
  return (raw ?? "")
    .split(",")
    .map((o) => o.trim().replace(/\/+$/, ""))
    .filter((o) => o !== "");
}
