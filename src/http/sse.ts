import type { Client } from "@connectrpc/connect";
import type { Logger } from "pino";
import type { SessionService, WatchSessionResponse } from "../../gen/hazard/stream/v1/session_service_pb.js";
import { ErrorCode } from "../../gen/hazard/stream/v1/types_pb.js";
import { apiError } from "../rpc/errors.js";
import { errorJsonOf, httpErrorOf } from "./http-errors.js";
import {
  configAppliedJson,
  detectionResultJson,
  flowControlJson,
  frameDroppedJson,
  frameErrorJson,
  hazardJson,
  sessionEndedJson,
  type OutboundJson,
} from "./json-messages.js";
import type { NodeRequest, NodeResponse } from "./node-types.js";
import { isHttp1, sendJson } from "./reply.js";

/**
 * `GET /stream/events/{client_id}`: Server-Sent Events over SessionService.WatchSession.
 *
 * Every event is an unnamed `data:` event carrying the document's JSON (so `EventSource.onmessage`
 * sees it; clients tell them apart by `type`), with the watch event id as its `id:` so a
 * reconnecting EventSource resumes with `Last-Event-ID` from the service's replay window. The
 * service's keepalives become `: keepalive` comments, which proxies count as traffic but
 * EventSource ignores.
 */

export interface SseOptions {
  sessions: Client<typeof SessionService>;
  /** The caller's API key as headers for the in-process watch. */
  call: { headers: Record<string, string> };
  /** Reconnection delay suggested to EventSource (`retry:`). */
  retryMs: number;
  logger: Logger;
  now: () => number;
  /** Aborted when the server shuts down. */
  shutdown: AbortSignal;
  /** True once the server is closing. */
  closing: () => boolean;
}

/** One event as SSE text, or undefined for events the browser door does not carry. */
export function sseChunk(ev: WatchSessionResponse): string | undefined {
  const e = ev.event;
  let json: OutboundJson;
  switch (e.case) {
    case "result":
      json = detectionResultJson(e.value);
      break;
    case "error":
      json = frameErrorJson(e.value);
      break;
    case "dropped":
      json = frameDroppedJson(e.value);
      break;
    case "flowControl":
      json = flowControlJson(e.value);
      break;
    case "hazard":
      json = hazardJson(e.value);
      break;
    case "configApplied":
      json = configAppliedJson(e.value);
      break;
    case "ended":
      json = sessionEndedJson(e.value.reason);
      break;
    case "keepalive":
      return ": keepalive\n\n";
    default:
      return undefined;
  }
  // Only numbered events carry an id: an `id:` line would otherwise reset EventSource's resume point.
  const id = ev.eventId > 0n ? `id: ${ev.eventId}\n` : "";
  return `${id}data: ${JSON.stringify(json)}\n\n`;
}

/** `Last-Event-ID` (set by EventSource on reconnect), or `?last_event_id=` for clients that cannot set headers. */
function lastEventId(req: NodeRequest, params: URLSearchParams): bigint {
  const raw = (req.headers["last-event-id"] as string | undefined) ?? params.get("last_event_id") ?? "";
  const trimmed = raw.trim();
  if (trimmed === "") return 0n;
  if (!/^\d{1,20}$/.test(trimmed)) {
    throw apiError(ErrorCode.INVALID_MESSAGE, `Last-Event-ID must be an event id from this stream, got "${raw}"`, {
      field: "last_event_id",
    });
  }
  return BigInt(trimmed);
}

/** Resolves when the response can take more data, or when the stream is going away. */
function drained(res: NodeResponse, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      signal.removeEventListener("abort", done);
      resolve();
    };
    res.on("drain", done);
    signal.addEventListener("abort", done, { once: true });
  });
}

export async function serveSse(
  req: NodeRequest,
  res: NodeResponse,
  clientId: string,
  params: URLSearchParams,
  opts: SseOptions,
): Promise<void> {
  let afterEventId: bigint;
  try {
    afterEventId = lastEventId(req, params);
  } catch (err) {
    const { status, body } = httpErrorOf(err, opts.now());
    sendJson(res, status, body);
    return;
  }

  const abort = new AbortController();
  const stop = () => abort.abort();
  res.on("close", stop);
  opts.shutdown.addEventListener("abort", stop, { once: true });
  const unlisten = () => {
    res.off("close", stop);
    opts.shutdown.removeEventListener("abort", stop);
  };

  const events = opts.sessions
    .watchSession({ clientId, afterEventId }, { ...opts.call, signal: abort.signal })
    [Symbol.asyncIterator]();
  // The watch's first event comes at once (a keepalive: the watch is live), or its refusal does.
  // Waiting for it before the headers makes a refusal a status — 404 for an unknown session (which
  // also stops EventSource from reconnecting), 401 without a key, 429 past the watcher limit —
  // rather than an error event on a stream EventSource would reopen every few seconds.
  let first: IteratorResult<WatchSessionResponse>;
  try {
    first = await events.next();
  } catch (err) {
    unlisten();
    if (abort.signal.aborted) res.end();
    else {
      const { status, body } = httpErrorOf(err, opts.now());
      sendJson(res, status, body);
    }
    return;
  }

  res.writeHead(200, {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache, no-transform",
    // nginx buffers responses unless told otherwise, which would hold events back.
    "X-Accel-Buffering": "no",
    ...(isHttp1(req) ? { Connection: "keep-alive" } : {}),
  });
  res.write(`retry: ${opts.retryMs}\n: connected\n\n`);

  try {
    let next = first;
    while (!next.done) {
      // The opening keepalive only says the watch is live, as ": connected" did.
      const chunk = next === first && next.value.event.case === "keepalive" ? undefined : sseChunk(next.value);
      // Pull the next event only once this one is out: a slow reader then leaves events in the
      // service's bounded watch queue, which cuts it off, instead of in this process's memory.
      if (chunk !== undefined && !res.write(chunk)) await drained(res, abort.signal);
      if (abort.signal.aborted || next.value.event.case === "ended") break;
      next = await events.next();
    }
  } catch (err) {
    if (!abort.signal.aborted) {
      opts.logger.debug({ err, clientId }, "SSE watch ended with an error");
      res.write(`data: ${JSON.stringify(errorJsonOf(err, opts.now()))}\n\n`);
    }
  } finally {
    unlisten();
    abort.abort();
    // Ends the watch generator in the service even when it is parked at a yield (no pending next).
    await events.return?.().catch(() => undefined);
    // While the server closes, an HTTP/1.1 connection would otherwise sit idle in keep-alive and
    // hold the shutdown up until its timeout.
    if (opts.closing() && isHttp1(req)) res.once("finish", () => req.socket.end());
    res.end();
  }
}
