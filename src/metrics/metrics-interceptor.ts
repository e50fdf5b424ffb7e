import { isMessage } from "@bufbuild/protobuf";
import { ConnectError, type Interceptor } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { DetectionService, DetectResponseSchema } from "../../gen/hazard/stream/v1/detection_service_pb.js";
import { ErrorCode } from "../../gen/hazard/stream/v1/types_pb.js";
import { errorCodeOfConnectError } from "../rpc/errors.js";
import { onStreamEnd } from "../rpc/stream-end.js";
import type { HazardMetrics } from "./metrics.js";

/**
 * Counts RPCs by method and status code, tracks open streams, and counts the unary Detect call's
 * frames (door `detect`): those never pass through a session, where the other doors' frames are
 * counted. Only methods the router serves reach an interceptor, so `method` has a fixed set of values.
 */
export function metricsInterceptor(metrics: HazardMetrics): Interceptor {
  return (next) => async (req) => {
    const method = `${req.service.typeName}/${req.method.name}`;
    const isDetect = req.service.typeName === DetectionService.typeName && req.method.name === DetectionService.method.detect.name;
    const t0 = performance.now();
    if (isDetect) metrics.framesReceived.inc({ door: "detect" });
    const handled = (err: unknown) => {
      // Connect's own spelling (invalid_argument, the `code` of its JSON errors), "ok" for success.
      const code = err === undefined ? "ok" : codeToString(ConnectError.from(err).code);
      metrics.rpcHandled.inc({ method, code });
    };
    try {
      const res = await next(req);
      if (!res.stream) {
        handled(undefined);
        if (isDetect && isMessage(res.message, DetectResponseSchema) && res.message.result) {
          metrics.frameProcessed("detect", res.message.result, performance.now() - t0);
        }
        return res;
      }
      metrics.rpcStreamsActive.inc({ method });
      return {
        ...res,
        message: onStreamEnd(
          res.message,
          (err) => {
            metrics.rpcStreamsActive.dec({ method });
            handled(err);
          },
          req.signal,
        ),
      };
    } catch (err) {
      handled(err);
      if (isDetect) {
        const code = errorCodeOfConnectError(ConnectError.from(err));
        metrics.frameFailed("detect", code === ErrorCode.UNSPECIFIED ? ErrorCode.INTERNAL : code);
      }
      throw err;
    }
  };
}
