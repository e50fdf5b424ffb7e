import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorCode, ErrorDetailSchema, type ErrorDetail } from "../../gen/hazard/stream/v1/types_pb.js";
import { errorJson, type ErrorJson } from "./json-messages.js";

/**
 * Connect errors → the document's error JSON and an HTTP status. The service attaches an
 * ErrorDetail to every error it raises; errors without one (raised by Connect itself, e.g. a
 * message over readMaxBytes) get a code derived from the Connect code.
 */

/** The stable code decides the status where it is more precise than the Connect code. */
const STATUS_BY_ERROR_CODE: Partial<Record<ErrorCode, number>> = {
  [ErrorCode.MESSAGE_TOO_LARGE]: 413,
  [ErrorCode.RATE_LIMITED]: 429,
  [ErrorCode.RESOURCE_EXHAUSTED]: 429,
  [ErrorCode.SESSION_NOT_FOUND]: 404,
  [ErrorCode.SERVICE_UNAVAILABLE]: 503,
  [ErrorCode.UNAUTHENTICATED]: 401,
};

/** Connect's own HTTP mapping, except FailedPrecondition (409: the state conflicts, not the input). */
const STATUS_BY_CONNECT_CODE: Record<Code, number> = {
  [Code.Canceled]: 499,
  [Code.Unknown]: 500,
  [Code.InvalidArgument]: 400,
  [Code.DeadlineExceeded]: 504,
  [Code.NotFound]: 404,
  [Code.AlreadyExists]: 409,
  [Code.PermissionDenied]: 403,
  [Code.ResourceExhausted]: 429,
  [Code.FailedPrecondition]: 409,
  [Code.Aborted]: 409,
  [Code.OutOfRange]: 400,
  [Code.Unimplemented]: 501,
  [Code.Internal]: 500,
  [Code.Unavailable]: 503,
  [Code.DataLoss]: 500,
  [Code.Unauthenticated]: 401,
};

const ERROR_CODE_BY_CONNECT_CODE: Partial<Record<Code, ErrorCode>> = {
  [Code.InvalidArgument]: ErrorCode.INVALID_MESSAGE,
  [Code.OutOfRange]: ErrorCode.INVALID_MESSAGE,
  [Code.NotFound]: ErrorCode.SESSION_NOT_FOUND,
  // The service attaches a detail to every limit it enforces; Connect's own ResourceExhausted
  // without one is its readMaxBytes/writeMaxBytes message-size limit.
  [Code.ResourceExhausted]: ErrorCode.MESSAGE_TOO_LARGE,
  [Code.Unavailable]: ErrorCode.SERVICE_UNAVAILABLE,
  [Code.Unauthenticated]: ErrorCode.UNAUTHENTICATED,
};

export function errorDetailOf(err: ConnectError): ErrorDetail | undefined {
  return err.findDetails(ErrorDetailSchema)[0];
}

export function errorCodeOf(err: ConnectError): ErrorCode {
  const detail = errorDetailOf(err);
  if (detail && detail.code !== ErrorCode.UNSPECIFIED) return detail.code;
  return ERROR_CODE_BY_CONNECT_CODE[err.code] ?? ErrorCode.INTERNAL;
}

export function httpStatusOf(err: ConnectError): number {
  return STATUS_BY_ERROR_CODE[errorCodeOf(err)] ?? STATUS_BY_CONNECT_CODE[err.code] ?? 500;
}

/**
 * The error JSON for any thrown value. `frameId` is the frame the caller was handling, used when
 * the error itself does not name one. Unknown errors never show their message (it may hold
 * internals); the caller logs them.
 */
export function errorJsonOf(thrown: unknown, nowMs: number, frameId?: string): ErrorJson {
  const err = ConnectError.from(thrown);
  const detail = errorDetailOf(err);
  // A fault without a detail (not one the service raised on purpose, e.g. the in-process transport
  // failing to serialize) says nothing useful to the client and may name internals.
  const internal = !(thrown instanceof ConnectError) || (!detail && (err.code === Code.Internal || err.code === Code.Unknown));
  return errorJson({
    message: internal ? "internal error" : err.rawMessage,
    code: internal ? ErrorCode.INTERNAL : errorCodeOf(err),
    frameId: detail?.frameId || frameId,
    field: detail?.field,
    timestampSec: nowMs / 1000,
  });
}

export interface HttpError {
  status: number;
  body: ErrorJson;
}

export function httpErrorOf(thrown: unknown, nowMs: number, frameId?: string): HttpError {
  const status = thrown instanceof ConnectError ? httpStatusOf(thrown) : 500;
  return { status, body: errorJsonOf(thrown, nowMs, frameId) };
}
