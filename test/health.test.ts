import { Code, ConnectError, createClient, createRouterTransport, type Client, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { Health, HealthCheckResponse_ServingStatus as S } from "../gen/grpc/health/v1/health_pb.js";
import { createHealthService } from "../src/rpc/health-service.js";
import { HealthState, OVERALL, type ServingStatus } from "../src/rpc/health-state.js";
import { StreamReader } from "./support/async-queue.js";
import { startOpsServer, type OpsServer } from "./support/ops-server.js";
import { hasPythonGrpc, PYTHON_SKIP, PythonClient, runPython } from "./support/python-grpc.js";

const API = "hazard.stream.v1.DetectionService";

/** Counts the state's live Watch subscriptions, to prove a stream lets go when its client leaves. */
function countWatchers(state: HealthState): () => number {
  let active = 0;
  const watch = state.watch.bind(state);
  state.watch = (service, listener) => {
    active++;
    const unsubscribe = watch(service, listener);
    return () => {
      active--;
      unsubscribe();
    };
  };
  return () => active;
}

async function codeOf(call: Promise<unknown>): Promise<Code | undefined> {
  try {
    await call;
    return undefined;
  } catch (err) {
    return ConnectError.from(err).code;
  }
}

describe("HealthState", () => {
  it("knows only the whole server at first, and as NOT_SERVING", () => {
    const state = new HealthState();
    expect(state.status(OVERALL)).toBe(S.NOT_SERVING);
    expect(state.status(API)).toBeUndefined();
    expect([...state.snapshot()]).toEqual([[OVERALL, S.NOT_SERVING]]);
  });

  it("tells watchers about changes only, until they unsubscribe", () => {
    const state = new HealthState();
    const seen: (ServingStatus | undefined)[] = [];
    const unsubscribe = state.watch(API, (s) => seen.push(s));
    state.setStatus(API, S.SERVING);
    state.setStatus(API, S.SERVING); // no change, no call
    state.setStatus(OVERALL, S.SERVING); // another service
    state.clearStatus(API);
    unsubscribe();
    state.setStatus(API, S.NOT_SERVING);
    expect(seen).toEqual([S.SERVING, undefined]);
  });

  it("shutdown marks every service NOT_SERVING and ignores later updates", () => {
    const state = new HealthState();
    state.setStatus(OVERALL, S.SERVING);
    state.setStatus(API, S.SERVING);
    state.shutdown();
    state.setStatus(OVERALL, S.SERVING);
    state.clearStatus(API);
    expect([...state.snapshot()]).toEqual([
      [OVERALL, S.NOT_SERVING],
      [API, S.NOT_SERVING],
    ]);
  });
});

/** The same checks over any transport: in memory, and a real gRPC client over HTTP/2. */
function healthContract(name: string, setup: () => Promise<{ state: HealthState; transport: Transport; close(): Promise<void> }>) {
  describe(name, () => {
    let state: HealthState;
    let client: Client<typeof Health>;
    let watchers: () => number;
    let close: () => Promise<void>;

    beforeAll(async () => {
      const s = await setup();
      state = s.state;
      close = s.close;
      watchers = countWatchers(state);
      client = createClient(Health, s.transport);
    });
    afterAll(() => close());
    afterEach(() => {
      state.clearStatus(API);
      state.setStatus(OVERALL, S.NOT_SERVING);
    });

    it("Check: NOT_SERVING before the app marks the server, SERVING after", async () => {
      expect((await client.check({ service: "" })).status).toBe(S.NOT_SERVING);
      state.setStatus(OVERALL, S.SERVING);
      expect((await client.check({ service: "" })).status).toBe(S.SERVING);
    });

    it("Check: an unknown service is NOT_FOUND, a registered one has its own status", async () => {
      expect(await codeOf(client.check({ service: API }))).toBe(Code.NotFound);
      state.setStatus(API, S.SERVING);
      expect((await client.check({ service: API })).status).toBe(S.SERVING);
    });

    it("List: a snapshot of every known service", async () => {
      state.setStatus(API, S.SERVING);
      const { statuses } = await client.list({});
      expect(Object.fromEntries(Object.entries(statuses).map(([k, v]) => [k, v.status]))).toEqual({
        [OVERALL]: S.NOT_SERVING,
        [API]: S.SERVING,
      });
    });

    it("Watch: the current status at once, then each change; lets go when the client leaves", async () => {
      const abort = new AbortController();
      const reader = new StreamReader(client.watch({ service: "" }, { signal: abort.signal }));
      expect((await reader.next())?.status).toBe(S.NOT_SERVING);
      state.setStatus(OVERALL, S.SERVING);
      expect((await reader.next())?.status).toBe(S.SERVING);
      state.setStatus(OVERALL, S.NOT_SERVING);
      expect((await reader.next())?.status).toBe(S.NOT_SERVING);
      expect(watchers()).toBe(1);
      abort.abort();
      await vi.waitFor(() => expect(watchers()).toBe(0));
    });

    it("Watch: an unknown service is SERVICE_UNKNOWN and the call stays open until it is known", async () => {
      const abort = new AbortController();
      const reader = new StreamReader(client.watch({ service: API }, { signal: abort.signal }));
      expect((await reader.next())?.status).toBe(S.SERVICE_UNKNOWN);
      state.setStatus(API, S.SERVING);
      expect((await reader.next())?.status).toBe(S.SERVING);
      state.clearStatus(API);
      expect((await reader.next())?.status).toBe(S.SERVICE_UNKNOWN);
      abort.abort();
      await vi.waitFor(() => expect(watchers()).toBe(0));
    });
  });
}

healthContract("Health service, in memory (createRouterTransport)", async () => {
  const state = new HealthState();
  const transport = createRouterTransport((router) => router.service(Health, createHealthService(state)));
  return { state, transport, close: async () => {} };
});

healthContract("Health service, real h2c server, connect-node gRPC client", async () => {
  const server = await startOpsServer();
  const transport = createGrpcTransport({ baseUrl: server.baseUrl });
  return { state: server.health, transport, close: () => server.close() };
});

describe("Health service, real h2c server, shutdown", () => {
  it("a watcher sees NOT_SERVING when the app starts shutting down", async () => {
    const server = await startOpsServer();
    try {
      server.health.setStatus(OVERALL, S.SERVING);
      const client = createClient(Health, createGrpcTransport({ baseUrl: server.baseUrl }));
      const abort = new AbortController();
      const reader = new StreamReader(client.watch({ service: "" }, { signal: abort.signal }));
      expect((await reader.next())?.status).toBe(S.SERVING);
      server.health.shutdown();
      expect((await reader.next())?.status).toBe(S.NOT_SERVING);
      abort.abort();
    } finally {
      await server.close();
    }
  });
});

const pythonSuite = "Health service, real h2c server, python grpcio client";
describe.skipIf(!hasPythonGrpc)(hasPythonGrpc ? pythonSuite : `${pythonSuite} — ${PYTHON_SKIP}`, () => {
  let server: OpsServer;
  let watchers: () => number;
  beforeAll(async () => {
    server = await startOpsServer();
    watchers = countWatchers(server.health);
  });
  afterAll(() => server.close());

  it("Check: NOT_SERVING before marking, SERVING after, NOT_FOUND for an unknown service", async () => {
    expect(await runPython(["check", server.target, ""])).toEqual({ status: "NOT_SERVING" });
    server.health.setStatus(OVERALL, S.SERVING);
    expect(await runPython(["check", server.target, ""])).toEqual({ status: "SERVING" });
    expect(await runPython(["check", server.target, "no.such.Service"])).toEqual({ code: "NOT_FOUND" });
  });

  it("Watch: sees a change, and the server lets go when the client cancels", async () => {
    server.health.setStatus(API, S.NOT_SERVING);
    const client = new PythonClient(["watch", server.target, API, "2"]);
    expect(await client.next()).toEqual({ status: "NOT_SERVING" });
    server.health.setStatus(API, S.SERVING);
    expect(await client.next()).toEqual({ status: "SERVING" });
    expect(await client.exited).toBe(0);
    await vi.waitFor(() => expect(watchers()).toBe(0));
  });
});
