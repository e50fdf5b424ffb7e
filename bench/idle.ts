import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { SessionService } from "../gen/hazard/stream/v1/session_service_pb.js";
import type { MemorySnapshot, ServerChild } from "./server-child.js";

export interface IdleResult {
  sessions: number;
  /** Memory after a forced GC, before and after creating the sessions. */
  before: MemorySnapshot;
  after: MemorySnapshot;
  /** RSS delta / N: the brief's figure. */
  rssBytesPerSession: number;
  /** (V8 heap + external/ArrayBuffer memory) delta / N: the same without allocator slack. */
  heapBytesPerSession: number;
  createMsEach: number;
}

const settle = () => new Promise((r) => setTimeout(r, 500));

/** Memory of sessions nobody streams to: N SessionService.CreateSession calls over gRPC. */
export async function benchIdle(server: ServerChild, n: number): Promise<IdleResult> {
  const client = createClient(SessionService, createGrpcTransport({ baseUrl: server.baseUrl }));
  // One session first, so the code paths and connection exist before the baseline.
  const first = await client.createSession({});
  await client.deleteSession({ clientId: first.session?.clientId ?? "" });
  await settle();
  const before = await server.memory();
  const ids: string[] = [];
  const t0 = performance.now();
  for (let i = 0; i < n; i += 16) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(16, n - i) }, () => client.createSession({}).then((r) => r.session?.clientId ?? "")),
    );
    ids.push(...batch);
  }
  const createMsEach = (performance.now() - t0) / n;
  await settle();
  const after = await server.memory();
  for (let i = 0; i < ids.length; i += 32) {
    await Promise.all(ids.slice(i, i + 32).map((clientId) => client.deleteSession({ clientId }).catch(() => undefined)));
  }
  const heap = (m: MemorySnapshot) => m.heapUsed + m.external;
  return {
    sessions: n,
    before,
    after,
    rssBytesPerSession: (after.rss - before.rss) / n,
    heapBytesPerSession: (heap(after) - heap(before)) / n,
    createMsEach,
  };
}
