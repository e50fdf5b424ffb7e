import type { ConnectRouter } from "@connectrpc/connect";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { ServerReflection as ServerReflectionV1 } from "../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionV1alpha } from "../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { DetectionService } from "../gen/hazard/stream/v1/detection_service_pb.js";
import { SessionService } from "../gen/hazard/stream/v1/session_service_pb.js";
import { createDetectionService, type DetectionServiceDeps } from "./rpc/detection-service.js";
import { createHealthService } from "./rpc/health-service.js";
import type { HealthState } from "./rpc/health-state.js";
import { createReflectionServices } from "./rpc/reflection-service.js";
import { createSessionService, type SessionServiceDeps } from "./rpc/session-service.js";

export type ServiceDeps = DetectionServiceDeps & SessionServiceDeps & { health: HealthState };

/** Everything the server serves, in one place. */
export function routes(deps: ServiceDeps): (router: ConnectRouter) => void {
  return (router) => {
    router.service(DetectionService, createDetectionService(deps));
    router.service(SessionService, createSessionService(deps));
    // Operational services: Kubernetes probes, grpcurl, grpcui and Postman.
    router.service(Health, createHealthService(deps.health));
    // Reflection describes whatever the router serves, so a service added above is listed without
    // touching this line (read at the first reflection request, when the router is complete).
    const reflection = createReflectionServices({ get services() { return router.handlers.map((h) => h.service); } });
    router.service(ServerReflectionV1, reflection.v1);
    router.service(ServerReflectionV1alpha, reflection.v1alpha);
  };
}
