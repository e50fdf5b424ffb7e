import { Code, ConnectError, createContextKey, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import { REQUEST_ID_HEADER, requestIdFrom } from "./request-id.js";
import { onStreamEnd } from "./stream-end.js";

/** The request id and logger of one RPC, for handlers that log (via `ctx.values.get(requestLogKey)`). */
export interface RequestLog {
  readonly id: string;
  /** A logger whose lines carry reqId, rpc and whatever was bound. */
  readonly logger: Logger;
  /** Adds fields (clientId, door) to later lines of this request, its completion line included. */
  bind(fields: Record<string, string>): void;
}

export const requestLogKey = createContextKey<RequestLog | undefined>(undefined, { description: "request id and logger" });

/** Server faults are errors; UNAVAILABLE (not ready, shutting down, Redis down) is a warning; the rest is the client's doing. */
function levelOf(code: Code | undefined, streaming: boolean): "error" | "warn" | "info" | "debug" {
  if (code === Code.Internal || code === Code.Unknown || code === Code.DataLoss) return "error";
  if (code === Code.Unavailable) return "warn";
  // One line per unary call would be one per frame for Detect callers: those are debug.
  return streaming ? "info" : "debug";
}

/**
 * Gives every RPC a request id (the client's `x-request-id` when it is a plain token, else a new
 * one), returns it in the `x-request-id` response header, and logs the call's end with its method,
 * code and duration: streams at info (they are sessions), unary calls at debug unless they fail on
 * the server's side. `via` tells the network router from the HTTP routes' in-process calls.
 */
export function requestLogInterceptor(logger: Logger, via: "network" | "http"): Interceptor {
  return (next) => async (req) => {
    const id = requestIdFrom(req.header.get(REQUEST_ID_HEADER));
    const rpc = `${req.service.typeName}/${req.method.name}`;
    let fields: Record<string, string> = {};
    // Built on first use: most unary calls never log anything at the level in force.
    let child: Logger | undefined;
    const log: RequestLog = {
      id,
      get logger() {
        return (child ??= logger.child({ reqId: id, rpc, via, ...fields }));
      },
      bind(more) {
        fields = { ...fields, ...more };
        child = child?.child(more);
      },
    };
    // Unary calls about a session name it in the request (SessionService); streams bind it themselves.
    if (!req.stream && "clientId" in req.message && typeof req.message.clientId === "string" && req.message.clientId !== "") {
      fields.clientId = req.message.clientId;
    }
    req.contextValues.set(requestLogKey, log);
    const t0 = performance.now();
    const finish = (err: unknown, streaming: boolean) => {
      const code = err === undefined ? undefined : ConnectError.from(err).code;
      const level = levelOf(code, streaming);
      if (!logger.isLevelEnabled(level)) return;
      const ms = Math.round((performance.now() - t0) * 10) / 10;
      const outcome = code === undefined ? { code: "ok" } : { code: Code[code], error: ConnectError.from(err).rawMessage };
      log.logger[level]({ ...outcome, ms }, streaming ? "stream closed" : "rpc done");
    };
    try {
      const res = await next(req);
      res.header.set(REQUEST_ID_HEADER, id);
      if (!res.stream) {
        finish(undefined, false);
        return res;
      }
      return { ...res, message: onStreamEnd(withRequestIdOnError(res.message, id), (err) => finish(err, true), req.signal) };
    } catch (err) {
      finish(err, req.stream);
      throw withRequestId(err, id);
    }
  };
}

/**
 * A failed call carries its id too: Connect sends an error's metadata as the response headers of a
 * Connect unary error, in the end-stream message of a Connect stream and in the trailers of gRPC and
 * gRPC-Web, where the response headers set above never go once the call has failed.
 */
function withRequestId(err: unknown, id: string): ConnectError {
  // What Connect itself makes of an error that is not a ConnectError: its text may hold internals.
  const out = err instanceof ConnectError ? err : new ConnectError("internal error", Code.Internal, undefined, undefined, err);
  out.metadata.set(REQUEST_ID_HEADER, id);
  return out;
}

async function* withRequestIdOnError<T>(source: AsyncIterable<T>, id: string): AsyncIterable<T> {
  try {
    yield* source;
  } catch (err) {
    throw withRequestId(err, id);
  }
}
