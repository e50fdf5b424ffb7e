import type { ConnectRouter } from "@connectrpc/connect";
import { DetectionService } from "../gen/hazard/stream/v1/detection_service_pb.js";
import { SessionService } from "../gen/hazard/stream/v1/session_service_pb.js";
import { createDetectionService, type DetectionServiceDeps } from "./rpc/detection-service.js";
import { createSessionService, type SessionServiceDeps } from "./rpc/session-service.js";

export type ServiceDeps = DetectionServiceDeps & SessionServiceDeps;

/** Everything the server serves, in one place. */
export function routes(deps: ServiceDeps): (router: ConnectRouter) => void {
  return (router) => {
    router.service(DetectionService, createDetectionService(deps));
    router.service(SessionService, createSessionService(deps));
  };
}
