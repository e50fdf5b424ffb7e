import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { HealthCheckResponse_ServingStatus, type Health } from "../../gen/grpc/health/v1/health_pb.js";
import type { SessionService } from "../../gen/hazard/stream/v1/session_service_pb.js";
import { ErrorCode, type Frame } from "../../gen/hazard/stream/v1/types_pb.js";
import { apiError } from "../rpc/errors.js";
import { echoableFrameId } from "../rpc/frame-limits.js";
import { mediaTypeOf, readBody } from "./body.js";
import { httpErrorOf } from "./http-errors.js";
import { configFromJson, frameFromBytes, frameFromJson, isJsonObject, parseJson } from "./json-input.js";
import { errorJson, sessionJson } from "./json-messages.js";
import { healthJson, serviceStatsJson, sessionStatsJson, submitFrameJson } from "./json-resources.js";
import type { NodeRequest, NodeResponse } from "./node-types.js";
import { sendJson } from "./reply.js";

/**
 * The REST routes of the document, each one call to SessionService through the in-process client.
 * They translate JSON to messages and back; every decision (validation, limits, errors) is the
 * service's.
 */

export interface RestRouteContext {
  req: NodeRequest;
  res: NodeResponse;
  /** The `{client_id}` path segment, decoded ("" for routes without one). */
  clientId: string;
  query: URLSearchParams;
  /** For the in-process call: the caller's API key, forwarded so the services' interceptor decides. */
  call: { headers: Record<string, string> };
}

export type RestRoute = (ctx: RestRouteContext) => Promise<void>;

export interface RestRoutesOptions {
  sessions: Client<typeof SessionService>;
  health: Client<typeof Health>;
  maxRequestBytes: number;
  now: () => number;
}

/**
 * JSON bodies must say so: application/json or a `+json` type. text/plain, forms and unlabelled
 * bodies are what a page of any origin may send without a CORS preflight, so accepting them would
 * let every web site post to this API from its visitors' browsers.
 */
function isJsonType(type: string): boolean {
  return type === "application/json" || type.endsWith("+json");
}

function unsupportedType(res: NodeResponse, type: string, expected: string, nowMs: number): void {
  sendJson(
    res,
    415,
    errorJson({
      message: type ? `Content-Type ${type} is not supported; send ${expected}` : `a request body needs a Content-Type; send ${expected}`,
      code: ErrorCode.INVALID_MESSAGE,
      field: "content-type",
      timestampSec: nowMs / 1000,
    }),
  );
}

const isUnauthenticated = (err: unknown) => ConnectError.from(err).code === Code.Unauthenticated;

export function createRestRoutes(opts: RestRoutesOptions) {
  const { sessions, health: healthClient, maxRequestBytes, now } = opts;

  const bodyText = async (req: NodeRequest) => (await readBody(req, maxRequestBytes)).toString("utf8");

  /** A JSON object; `undefined` for an empty body when `optional`. */
  function jsonObject(text: string, optional: boolean) {
    if (text.trim() === "" && optional) return undefined;
    const json = parseJson(text);
    if (!isJsonObject(json)) throw apiError(ErrorCode.INVALID_MESSAGE, "the request body must be a JSON object", { field: "body" });
    return json;
  }
  const jsonBody = async (req: NodeRequest, optional: boolean) => jsonObject(await bodyText(req), optional);

  const createSession: RestRoute = async ({ req, res, call }) => {
    const type = mediaTypeOf(req);
    if (type !== "" && !isJsonType(type)) return unsupportedType(res, type, "application/json", now());
    const text = await bodyText(req);
    // All defaults need no body, and `curl -X POST` sends no type with none.
    if (type === "" && text.trim() !== "") return unsupportedType(res, type, "application/json", now());
    const config = configFromJson(jsonObject(text, true));
    const { session } = await sessions.createSession({ config }, call);
    if (!session) throw apiError(ErrorCode.INTERNAL, "internal error");
    sendJson(res, 201, sessionJson(session), { Location: `/stream/sessions/${encodeURIComponent(session.clientId)}` });
  };

  const getSession: RestRoute = async ({ res, clientId, call }) => {
    const { session } = await sessions.getSession({ clientId }, call);
    if (!session) throw apiError(ErrorCode.INTERNAL, "internal error");
    sendJson(res, 200, sessionJson(session));
  };

  const updateConfig: RestRoute = async ({ req, res, clientId, call }) => {
    const type = mediaTypeOf(req);
    if (!isJsonType(type)) return unsupportedType(res, type, "application/json", now());
    const config = configFromJson(await jsonBody(req, false));
    const { session } = await sessions.updateSessionConfig({ clientId, config }, call);
    if (!session) throw apiError(ErrorCode.INTERNAL, "internal error");
    sendJson(res, 200, sessionJson(session));
  };

  const deleteSession: RestRoute = async ({ res, clientId, call }) => {
    await sessions.deleteSession({ clientId }, call);
    sendJson(res, 200, { client_id: clientId, deleted: true });
  };

  const submitFrame: RestRoute = async ({ req, res, clientId, query, call }) => {
    // The key first: a caller without a valid one must not make the server read and decode megabytes
    // (the body is then left unread and the connection closed). Any other refusal (an unknown
    // session) comes from the submit itself, once the frame is read, so that it names the frame.
    await sessions.getSession({ clientId }, call).catch((err: unknown) => {
      if (isUnauthenticated(err)) throw err;
    });
    const type = mediaTypeOf(req);
    let frame: Frame;
    if (type.startsWith("image/") || type === "application/octet-stream") {
      frame = frameFromBytes(await readBody(req, maxRequestBytes), query);
    } else if (isJsonType(type)) {
      frame = frameFromJson((await jsonBody(req, false)) ?? {});
    } else {
      return unsupportedType(res, type, "application/json (the document's frame JSON) or image/*", now());
    }
    try {
      sendJson(res, 202, submitFrameJson(await sessions.submitFrame({ clientId, frame }, call)));
    } catch (err) {
      // The frame is known now, so the error names it even where the service had no reason to.
      const { status, body } = httpErrorOf(err, now(), echoableFrameId(frame.frameId));
      sendJson(res, status, body);
    }
  };

  const sessionStats: RestRoute = async ({ res, clientId, call }) => {
    const { stats } = await sessions.getSessionStats({ clientId }, call);
    if (!stats) throw apiError(ErrorCode.INTERNAL, "internal error");
    sendJson(res, 200, sessionStatsJson(stats));
  };

  const serviceStats: RestRoute = async ({ res, call }) => {
    const { stats } = await sessions.getServiceStats({}, call);
    if (!stats) throw apiError(ErrorCode.INTERNAL, "internal error");
    sendJson(res, 200, serviceStatsJson(stats));
  };

  /**
   * grpc.health.v1 decides (the same answer Kubernetes probes get); service stats add the details.
   * Health needs no API key (load balancers carry none); the details are for callers with one.
   */
  const health: RestRoute = async ({ res, call }) => {
    try {
      const { status } = await healthClient.check({ service: "" });
      if (status !== HealthCheckResponse_ServingStatus.SERVING) {
        // The API's own refusal says why (model loading or failed to load, shutting down).
        const why = await sessions.getServiceStats({}, call).then(
          () => undefined,
          (err: unknown) => (isUnauthenticated(err) ? undefined : httpErrorOf(err, now()).body),
        );
        const reason = why ? { error: why.error, error_code: why.error_code } : {};
        sendJson(res, 503, { status: "unhealthy", serving_status: HealthCheckResponse_ServingStatus[status], ...reason });
        return;
      }
      const stats = await sessions.getServiceStats({}, call).then(
        (r) => r.stats,
        (err: unknown) => {
          if (isUnauthenticated(err)) return undefined;
          throw err;
        },
      );
      sendJson(res, 200, stats ? healthJson(stats) : { status: "healthy" });
    } catch (err) {
      const { body } = httpErrorOf(err, now());
      sendJson(res, 503, { status: "unhealthy", error: body.error, error_code: body.error_code });
    }
  };

  return { createSession, getSession, updateConfig, deleteSession, submitFrame, sessionStats, serviceStats, health };
}
