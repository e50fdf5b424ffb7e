import { HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";

/**
 * What the application may say about a service. UNKNOWN and SERVICE_UNKNOWN are protocol answers,
 * not states: a service nobody registered is unknown (see `clearStatus`).
 */
export type ServingStatus = HealthCheckResponse_ServingStatus.SERVING | HealthCheckResponse_ServingStatus.NOT_SERVING;

/** Called with the new status, or `undefined` when the service became unknown. */
export type HealthListener = (status: ServingStatus | undefined) => void;

/** The whole server's entry in the gRPC health protocol. */
export const OVERALL = "";

/**
 * Serving status per service name, with change notifications for Watch. Only the application
 * writes it; the health service only reads it.
 */
export class HealthState {
  readonly #statuses = new Map<string, ServingStatus>();
  readonly #listeners = new Map<string, Set<HealthListener>>();
  #shutDown = false;

  constructor() {
    // Not serving until the app says so: a probe must not route traffic to a server whose model is
    // still loading.
    this.#statuses.set(OVERALL, HealthCheckResponse_ServingStatus.NOT_SERVING);
  }

  /** The status of `service` ("" = the whole server), or `undefined` when it is unknown. */
  status(service: string): ServingStatus | undefined {
    return this.#statuses.get(service);
  }

  /** Every known service and its status; a copy. */
  snapshot(): Map<string, ServingStatus> {
    return new Map(this.#statuses);
  }

  /** Sets a status and tells the watchers when it changed. Ignored after `shutdown()`. */
  setStatus(service: string, status: ServingStatus): void {
    if (this.#shutDown) return;
    this.#update(service, status);
  }

  /** Forgets a service: Check answers NOT_FOUND and watchers see SERVICE_UNKNOWN. */
  clearStatus(service: string): void {
    if (this.#shutDown) return;
    this.#update(service, undefined);
  }

  /**
   * Marks every service NOT_SERVING and ignores later updates (as grpc-go's health server does), so
   * a late "SERVING" from a slow startup path cannot undo a shutdown that already began.
   */
  shutdown(): void {
    for (const service of [...this.#statuses.keys()]) {
      this.#update(service, HealthCheckResponse_ServingStatus.NOT_SERVING);
    }
    this.#shutDown = true;
  }

  /** Calls `listener` on every change of `service` from now on; returns the unsubscribe function. */
  watch(service: string, listener: HealthListener): () => void {
    let set = this.#listeners.get(service);
    if (!set) this.#listeners.set(service, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.#listeners.get(service) === set) this.#listeners.delete(service);
    };
  }

  #update(service: string, status: ServingStatus | undefined): void {
    if (this.#statuses.get(service) === status) return;
    if (status === undefined) this.#statuses.delete(service);
    else this.#statuses.set(service, status);
    // A copy: a listener that unsubscribes while being called must not disturb the iteration.
    for (const listener of [...(this.#listeners.get(service) ?? [])]) listener(status);
  }
}
