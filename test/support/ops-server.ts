import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { ServerReflection as ServerReflectionV1 } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionV1alpha } from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { DetectionService } from "../../gen/hazard/stream/v1/detection_service_pb.js";
import { SessionService } from "../../gen/hazard/stream/v1/session_service_pb.js";
import { createHealthService } from "../../src/rpc/health-service.js";
import { HealthState } from "../../src/rpc/health-state.js";
import { createReflectionServices } from "../../src/rpc/reflection-service.js";

/**
 * The operational services wired as src/connect.ts wires them, beside the real API descriptors
 * with empty implementations (their methods answer UNIMPLEMENTED; reflection only needs the
 * descriptors), so these tests run without a model or the rest of the app.
 */
export function opsRoutes(health: HealthState): (router: ConnectRouter) => void {
  return (router) => {
    router.service(DetectionService, {});
    router.service(SessionService, {});
    router.service(Health, createHealthService(health));
    const reflection = createReflectionServices({
      get services() {
        return router.handlers.map((h) => h.service);
      },
    });
    router.service(ServerReflectionV1, reflection.v1);
    router.service(ServerReflectionV1alpha, reflection.v1alpha);
  };
}

export interface OpsServer {
  health: HealthState;
  baseUrl: string;
  /** host:port, as gRPC clients outside Node name a target. */
  target: string;
  close(): Promise<void>;
}

/** A plaintext HTTP/2 (h2c) server on 127.0.0.1 and an ephemeral port, as gRPC clients expect. */
export async function startOpsServer(health = new HealthState()): Promise<OpsServer> {
  const shutdown = new AbortController();
  const server = http2.createServer(connectNodeAdapter({ routes: opsRoutes(health), shutdownSignal: shutdown.signal }));
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s) => {
    sessions.add(s);
    s.once("close", () => sessions.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    health,
    baseUrl: `http://127.0.0.1:${port}`,
    target: `127.0.0.1:${port}`,
    async close() {
      // Ends open Watch streams, whose clients would otherwise keep their sessions open.
      shutdown.abort();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sessions) s.close();
      await closed;
    },
  };
}
