import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import {
  DetectResponseSchema,
  StreamDetectionsResponseSchema,
  type DetectionService,
  type DetectRequest,
  type DetectResponse,
  type StreamDetectionsRequest,
  type StreamDetectionsResponse,
} from "../../gen/hazard/stream/v1/detection_service_pb.js";
import { EndReason, type WatchSessionResponse } from "../../gen/hazard/stream/v1/session_service_pb.js";
import { ErrorCode, ErrorDetailSchema, FrameErrorSchema, type Frame, type FrameError } from "../../gen/hazard/stream/v1/types_pb.js";
import { detectOptionsFor, toDetectionResult } from "../streaming/detection-result.js";
import type { LiveSession } from "../streaming/live-session.js";
import { applyConfig } from "../streaming/session-config.js";
import type { SessionManager } from "../streaming/session-manager.js";
import { eventBytes } from "../streaming/event-size.js";
import { SubscriberQueue } from "../streaming/subscriber-queue.js";
import { Door } from "../../gen/hazard/stream/v1/session_pb.js";
import { callerKey } from "./auth.js";
import { streamDoorKey } from "./door-context.js";
import { apiError, errorCodeOfConnectError, toApiError } from "./errors.js";
import { checkFrameId, checkMetadata, echoableFrameId } from "./frame-limits.js";
import { PendingFrames, terminalFrameId } from "./pending-frames.js";
import { requestLogKey } from "./request-log.js";

export interface DetectionServiceDeps {
  sessions: SessionManager;
  maxFrameBytes: number;
  /** Responses a stream may hold for a client that stops reading before it is cut off. */
  streamBufferCapacity?: number;
  /** Subscribers one session may have on this instance; joining a session past it is RESOURCE_EXHAUSTED. */
  maxWatchersPerSession?: number;
  /** Bytes of responses a stream may hold for a client that stops reading before it is cut off. */
  watcherBufferBytes?: number;
  now?: () => number;
}

/** Checks what every door checks before a frame reaches a session; throws the API error. */
export function checkFrame(frame: Frame | undefined, maxFrameBytes: number): asserts frame is Frame {
  if (!frame) throw apiError(ErrorCode.INVALID_MESSAGE, "frame is required", { field: "frame" });
  checkFrameId(frame.frameId);
  checkMetadata(frame.metadata, frame.frameId);
  if (frame.imageData.length === 0) {
    throw apiError(ErrorCode.INVALID_IMAGE, "image_data is empty", { frameId: frame.frameId, field: "image_data" });
  }
  if (frame.imageData.length > maxFrameBytes) {
    throw apiError(
      ErrorCode.MESSAGE_TOO_LARGE,
      `image_data is ${frame.imageData.length} bytes; the limit is ${maxFrameBytes}`,
      { frameId: frame.frameId, field: "image_data" },
    );
  }
}

/**
 * STREAMING_MAX_WATCHERS_PER_SESSION: each subscriber holds a bounded queue of events; without a
 * cap, one client_id could be watched a thousand times over. Counted on this instance.
 */
export function checkWatcherRoom(session: LiveSession, max: number | undefined): void {
  if (max !== undefined && session.subscriberCount >= max) {
    throw apiError(
      ErrorCode.RESOURCE_EXHAUSTED,
      `this session already has ${session.subscriberCount} watchers, the limit (STREAMING_MAX_WATCHERS_PER_SESSION)`,
    );
  }
}

export function createDetectionService(deps: DetectionServiceDeps): ServiceImpl<typeof DetectionService> {
  const now = deps.now ?? Date.now;
  const capacity = deps.streamBufferCapacity ?? 256;

  async function detect(req: DetectRequest, ctx: HandlerContext): Promise<DetectResponse> {
    const receivedAtMs = now();
    checkFrame(req.frame, deps.maxFrameBytes);
    const frame = req.frame;
    try {
      const limits = deps.sessions.limits;
      const config = applyConfig(limits.defaults, req.config, limits);
      // Through the sessions' scheduler: a turn like a session's, a bounded wait, no unbounded pile-up.
      const { found, queueMs } = await deps.sessions.detectOnce(frame.imageData, detectOptionsFor(config, limits.classNames), ctx.signal);
      return create(DetectResponseSchema, {
        result: toDetectionResult(frame, found, { configVersion: 0, queueMs, receivedAtMs }),
      });
    } catch (err) {
      throw toApiError(err, frame.frameId);
    }
  }

  async function* streamDetections(
    requests: AsyncIterable<StreamDetectionsRequest>,
    ctx: HandlerContext,
  ): AsyncGenerator<StreamDetectionsResponse> {
    const input = requests[Symbol.asyncIterator]();
    const first = await input.next().catch((err: unknown) => {
      throw requestStreamError(err);
    });
    if (first.done) return;
    const start = first.value.message.case === "start" ? first.value.message.value : undefined;
    let session: LiveSession;
    const caller = ctx.values.get(callerKey);
    try {
      if (start?.clientId) {
        session = await deps.sessions.get(start.clientId, caller);
        checkWatcherRoom(session, deps.maxWatchersPerSession);
      } else {
        session = await deps.sessions.create(ctx.values.get(streamDoorKey), start?.config, caller);
      }
    } catch (err) {
      throw toApiError(err);
    }
    const ownsSession = !start?.clientId;
    // From here on this stream's log lines (its close included) name the session and its door.
    const log = ctx.values.get(requestLogKey);
    log?.bind({ clientId: session.clientId, door: Door[session.door] });
    log?.logger.info(ownsSession ? "stream started" : "stream joined a session");

    const out = new SubscriberQueue<StreamDetectionsResponse>(capacity, deps.watcherBufferBytes, (m) =>
      toBinary(StreamDetectionsResponseSchema, m).byteLength,
    );
    const pending = new PendingFrames();
    let inputDone = false;
    let ending = false;
    /** Why the request stream broke (a message over the size limit, or one that does not parse). */
    let readError: ConnectError | undefined;
    // Once the client has half-closed and every frame is answered: a session this stream owns ends
    // now, so its last hazard events and its end still reach the client; a resumed one stays.
    const finishIfDone = () => {
      if (!inputDone || pending.size > 0 || ending) return;
      ending = true;
      // A session that already ended (or was handed off at shutdown) is not this stream's to end.
      if (!ownsSession || session.ended) return out.close();
      deps.sessions.end(session.clientId, EndReason.STREAM_CLOSED).catch(() => out.close());
    };

    const sub = session.subscribe(capacity, deps.watcherBufferBytes);
    const forward = (async () => {
      for (;;) {
        const ev = await sub.next(ctx.signal);
        if (ev === undefined) break;
        const msg = toStreamResponse(ev);
        // The response wraps the event's payload: the event's measured size stands for it.
        if (msg) out.push(msg, eventBytes(ev));
        const done = terminalFrameId(ev);
        if (done !== undefined) pending.settle(done);
        if (ev.event.case === "ended") out.close();
        finishIfDone();
      }
      // The session ended or this subscriber was cut off: nothing more will come.
      out.close();
    })();

    let frameSeq = 0;
    const handle = async (req: StreamDetectionsRequest) => {
      const m = req.message;
      let frameId = "";
      try {
        if (m.case === "frame") {
          if (m.value.frameId === "") m.value.frameId = `${session.clientId.slice(0, 8)}-${++frameSeq}`;
          // An over-long id is refused below and not echoed, so no answer will carry it.
          frameId = echoableFrameId(m.value.frameId);
          // Counted as pending before submitting: its outcome may come back on the bus at once.
          if (frameId !== "") pending.add(frameId);
          try {
            checkFrame(m.value, deps.maxFrameBytes);
          } catch (err) {
            // Published to the session, so it is counted and every watcher sees it too.
            await deps.sessions.reject(session.clientId, frameErrorFromApi(toApiError(err, frameId), frameId, now()));
            return;
          }
          await deps.sessions.submit(session.clientId, m.value);
        } else if (m.case === "configUpdate") {
          await deps.sessions.updateConfig(session.clientId, m.value);
        } else if (m.case === "start") {
          throw apiError(ErrorCode.INVALID_MESSAGE, "start is only allowed as the first message", { field: "start" });
        } else {
          throw apiError(ErrorCode.INVALID_MESSAGE, "empty message: set frame or config_update", { field: "message" });
        }
      } catch (err) {
        if (frameId !== "") pending.settle(frameId);
        const value = frameErrorFromApi(toApiError(err, frameId), frameId, now());
        out.push(create(StreamDetectionsResponseSchema, { message: { case: "error", value } }));
      }
    };

    const reader = (async () => {
      try {
        if (!start) await handle(first.value);
        for (;;) {
          const next = await input.next();
          if (next.done) break;
          await handle(next.value);
        }
      } catch (err) {
        // The client went away mid-stream (the abort signal ends the writer side), or its request
        // stream broke. Nothing after the broken message can be read, and the stream must not end
        // as if the client had closed it: it fails with the reason. (connect-node aborts the call
        // once its request body fails, so frames still in flight may go unanswered.)
        if (!ctx.signal.aborted) readError = requestStreamError(err);
      } finally {
        inputDone = true;
        finishIfDone();
      }
    })();

    try {
      yield create(StreamDetectionsResponseSchema, { message: { case: "session", value: session.toProto() } });
      yield create(StreamDetectionsResponseSchema, {
        message: { case: "flowControl", value: session.flowControl("fps_limit") },
      });
      for (;;) {
        const msg = await out.next(ctx.signal);
        if (msg === undefined) break;
        yield msg;
      }
      if (readError) throw readError;
      if (session.handedOff) {
        // This instance shut down; the session did not end. An error, not a clean end, so the client
        // resumes it elsewhere (through a balancer) and resends what was left unanswered.
        throw apiError(ErrorCode.SERVICE_UNAVAILABLE, "server is shutting down; resume the session (same client_id) on another instance");
      }
      if (out.overflowed || sub.overflowed) {
        throw apiError(ErrorCode.RESOURCE_EXHAUSTED, "client is not reading results fast enough; stream closed");
      }
    } finally {
      session.unsubscribe(sub);
      out.close();
      await forward;
      if (ownsSession && !ending && !session.ended) {
        await deps.sessions.end(session.clientId, EndReason.STREAM_CLOSED).catch(() => undefined);
      }
      // The reader ends on its own when the request stream closes or the call is aborted.
      void reader;
    }
  }

  return { detect, streamDetections };
}

/** An API error as a per-frame (or per-message) error: the stream goes on. */
export function frameErrorFromApi(err: ConnectError, frameId: string, nowMs: number): FrameError {
  return create(FrameErrorSchema, {
    frameId,
    code: errorCodeOfConnectError(err),
    message: err.rawMessage,
    timestamp: nowMs / 1000,
    field: err.findDetails(ErrorDetailSchema)[0]?.field ?? "",
  });
}

/**
 * A request stream that failed to deliver its next message, as the error that ends the call. Errors
 * Connect raises while reading carry no ErrorDetail: a message over readMaxBytes is
 * MESSAGE_TOO_LARGE, one that does not decode (or an envelope that is cut short or compressed
 * with an unknown codec) INVALID_MESSAGE. Cancellation and deadlines stay as they are.
 */
function requestStreamError(err: unknown): ConnectError {
  const e = ConnectError.from(err);
  if (errorCodeOfConnectError(e) !== ErrorCode.UNSPECIFIED) return e;
  switch (e.code) {
    case Code.ResourceExhausted:
      return apiError(ErrorCode.MESSAGE_TOO_LARGE, e.rawMessage);
    case Code.InvalidArgument:
    case Code.Internal:
    case Code.Unknown:
      return apiError(ErrorCode.INVALID_MESSAGE, `malformed request message: ${e.rawMessage}`);
    default:
      return e;
  }
}

/** Session events as bidi responses; keepalives and session-end are stream-level, not forwarded. */
function toStreamResponse(ev: WatchSessionResponse): StreamDetectionsResponse | undefined {
  const e = ev.event;
  switch (e.case) {
    case "result":
    case "error":
    case "dropped":
    case "flowControl":
    case "hazard":
    case "configApplied":
      return create(StreamDetectionsResponseSchema, { message: e });
    default:
      return undefined;
  }
}
