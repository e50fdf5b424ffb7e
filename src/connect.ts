import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { ServerReflection as ServerReflectionV1 } from "../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionV1alpha } from "../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { DetectionService } from "../gen/hazard/stream/v1/detection_service_pb.js";
import { SessionService } from "../gen/hazard/stream/v1/session_service_pb.js";
import { ErrorCode } from "../gen/hazard/stream/v1/types_pb.js";
import { createDetectionService, type DetectionServiceDeps } from "./rpc/detection-service.js";
import { createHealthService } from "./rpc/health-service.js";
import type { HealthState } from "./rpc/health-state.js";
import { createReflectionServices } from "./rpc/reflection-service.js";
import { apiError } from "./rpc/errors.js";
import { createSessionService, type SessionServiceDeps } from "./rpc/session-service.js";

export type ServiceDeps = DetectionServiceDeps & SessionServiceDeps & { health: HealthState };

/** Everything the server serves, in one place. */
export function routes(deps: ServiceDeps): (router: ConnectRouter) => void {
  return (router) => {
    router.service(DetectionService, createDetectionService(deps));
    router.service(SessionService, createSessionService(deps));
    operationalServices(router, deps.health);
  };
}

/**
 * What the server serves while the model is not loaded: the API's descriptors with no
 * implementation (`refuseUntilReady` answers them) beside the working operational services.
 */
export function unavailableRoutes(health: HealthState): (router: ConnectRouter) => void {
  return (router) => {
    router.service(DetectionService, {});
    router.service(SessionService, {});
    operationalServices(router, health);
  };
}

/** Answers every API call with UNAVAILABLE and the reason; health and reflection pass. */
export function refuseUntilReady(reason: () => string): Interceptor {
  const api = new Set<string>([DetectionService.typeName, SessionService.typeName]);
  return (next) => async (req) => {
    if (api.has(req.service.typeName)) throw apiError(ErrorCode.SERVICE_UNAVAILABLE, reason());
    return next(req);
  };
}

/** Kubernetes probes, grpcurl, grpcui and Postman. */
function operationalServices(router: ConnectRouter, health: HealthState): void {
  router.service(Health, createHealthService(health));
  // Reflection describes whatever the router serves, so a service added above is listed without
  // touching this line (read at the first reflection request, when the router is complete).
  const reflection = createReflectionServices({ get services() { return router.handlers.map((h) => h.service); } });
  router.service(ServerReflectionV1, reflection.v1);
  router.service(ServerReflectionV1alpha, reflection.v1alpha);
}
