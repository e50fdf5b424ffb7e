import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorCode, ErrorDetailSchema } from "../../gen/hazard/stream/v1/types_pb.js";
import { PipelineError } from "../pipeline/types.js";
import { errorCodeOf, fieldOf } from "../streaming/detection-result.js";
import { ConfigValidationError } from "../streaming/session-config.js";
import { SessionLimitError, SessionNotFoundError, ShuttingDownError } from "../streaming/session-manager.js";
import { ServerBusyError } from "../streaming/unary-queue.js";
import { StoreUnavailableError } from "../store/session-store.js";

const CONNECT_CODE: Record<ErrorCode, Code> = {
  [ErrorCode.UNSPECIFIED]: Code.Unknown,
  [ErrorCode.INVALID_IMAGE]: Code.InvalidArgument,
  [ErrorCode.INFERENCE_ERROR]: Code.Internal,
  [ErrorCode.INVALID_CONFIG]: Code.InvalidArgument,
  [ErrorCode.SESSION_NOT_FOUND]: Code.NotFound,
  [ErrorCode.RATE_LIMITED]: Code.ResourceExhausted,
  [ErrorCode.INVALID_MESSAGE]: Code.InvalidArgument,
  [ErrorCode.MESSAGE_TOO_LARGE]: Code.ResourceExhausted,
  [ErrorCode.SERVICE_UNAVAILABLE]: Code.Unavailable,
  [ErrorCode.RESOURCE_EXHAUSTED]: Code.ResourceExhausted,
  [ErrorCode.UNAUTHENTICATED]: Code.Unauthenticated,
  [ErrorCode.INTERNAL]: Code.Internal,
};

/** A ConnectError carrying the stable ErrorCode as a detail, so every door can report it. */
export function apiError(code: ErrorCode, message: string, extra: { field?: string; frameId?: string } = {}): ConnectError {
  return new ConnectError(message, CONNECT_CODE[code], undefined, [
    { desc: ErrorDetailSchema, value: create(ErrorDetailSchema, { code, field: extra.field ?? "", frameId: extra.frameId ?? "" }) },
  ]);
}

/**
 * RESOURCE_EXHAUSTED with when to retry: in the message, as `retry-after` (seconds, as HTTP has it)
 * and as `grpc-retry-pushback-ms`, which gRPC clients with a retry policy honour.
 */
export function busyError(retryAfterMs: number): ConnectError {
  const err = apiError(ErrorCode.RESOURCE_EXHAUSTED, `the server is busy; retry in ${(retryAfterMs / 1000).toFixed(1)} s`);
  err.metadata.set("retry-after", String(Math.max(1, Math.ceil(retryAfterMs / 1000))));
  err.metadata.set("grpc-retry-pushback-ms", String(Math.round(retryAfterMs)));
  return err;
}

/** Maps domain errors to API errors; unknown errors become INTERNAL without leaking their message. */
export function toApiError(err: unknown, frameId?: string): ConnectError {
  if (err instanceof ConnectError) return err;
  if (err instanceof ConfigValidationError) return apiError(ErrorCode.INVALID_CONFIG, err.message, { field: err.field });
  if (err instanceof SessionNotFoundError) return apiError(ErrorCode.SESSION_NOT_FOUND, err.message);
  if (err instanceof SessionLimitError) return apiError(ErrorCode.RESOURCE_EXHAUSTED, err.message);
  if (err instanceof StoreUnavailableError) return apiError(ErrorCode.SERVICE_UNAVAILABLE, err.message);
  if (err instanceof ShuttingDownError) return apiError(ErrorCode.SERVICE_UNAVAILABLE, err.message, { frameId });
  if (err instanceof ServerBusyError) return busyError(err.retryAfterMs);
  if (err instanceof PipelineError) {
    const code = errorCodeOf(err);
    return apiError(code, err.message, { frameId, field: fieldOf(code) || undefined });
  }
  return apiError(ErrorCode.INTERNAL, "internal error", { frameId });
}

/** The ErrorDetail of an error, if it carries one. */
export function errorCodeOfConnectError(err: ConnectError): ErrorCode {
  const [detail] = err.findDetails(ErrorDetailSchema);
  return detail?.code ?? ErrorCode.UNSPECIFIED;
}
