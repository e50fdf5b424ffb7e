import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import {
  HealthCheckResponse_ServingStatus,
  HealthCheckResponseSchema,
  HealthListResponseSchema,
  type Health,
  type HealthCheckRequest,
  type HealthCheckResponse,
  type HealthListResponse,
} from "../../gen/grpc/health/v1/health_pb.js";
import type { HealthState, ServingStatus } from "./health-state.js";

/** health.proto: "The maximum number of services to return is 100". */
const LIST_LIMIT = 100;

const response = (status: HealthCheckResponse_ServingStatus): HealthCheckResponse =>
  create(HealthCheckResponseSchema, { status });

/** grpc.health.v1.Health over a HealthState, as doc/health-checking.md in grpc/grpc specifies it. */
export function createHealthService(state: HealthState): ServiceImpl<typeof Health> {
  return {
    check(req: HealthCheckRequest): HealthCheckResponse {
      const status = state.status(req.service);
      if (status === undefined) throw new ConnectError(`unknown service "${req.service}"`, Code.NotFound);
      return response(status);
    },

    list(): HealthListResponse {
      const statuses = state.snapshot();
      if (statuses.size > LIST_LIMIT) {
        throw new ConnectError(`${statuses.size} services exceed the limit of ${LIST_LIMIT}`, Code.ResourceExhausted);
      }
      return create(HealthListResponseSchema, {
        statuses: Object.fromEntries([...statuses].map(([name, status]) => [name, response(status)])),
      });
    },

    watch,
  };

  /**
   * Sends the current status at once, then each change, until the client goes away or the server
   * shuts down (both abort ctx.signal). Latest wins: a client that reads slowly skips statuses that
   * were already superseded, as grpc-go's one-slot channel does, so nothing queues up per watcher.
   */
  async function* watch(req: HealthCheckRequest, ctx: HandlerContext): AsyncGenerator<HealthCheckResponse> {
    const signal = ctx.signal;
    // `null` = nothing new to send; `undefined` = the service is unknown (SERVICE_UNKNOWN).
    let pending: ServingStatus | undefined | null = state.status(req.service);
    let wake: (() => void) | undefined;
    const unsubscribe = state.watch(req.service, (status) => {
      pending = status;
      wake?.();
    });
    // Released on abort, not only in `finally`: a consumer that stops pulling (an in-process router
    // transport whose caller went away) never resumes a generator parked at `yield`.
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      signal.removeEventListener("abort", release);
      unsubscribe();
      wake?.();
    };
    signal.addEventListener("abort", release);
    try {
      let sent: HealthCheckResponse_ServingStatus | undefined;
      while (!signal.aborted) {
        if (pending === null) {
          await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
          continue;
        }
        const status = pending ?? HealthCheckResponse_ServingStatus.SERVICE_UNKNOWN;
        pending = null;
        // A change and its reversal while the client was not reading are no change to it.
        if (status === sent) continue;
        sent = status;
        yield response(status);
      }
    } finally {
      release();
    }
  }
}
