import { randomBytes } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SessionService, type WatchSessionResponse } from "../gen/hazard/stream/v1/session_service_pb.js";
import { FrameSchema, SessionConfigSchema, type DetectionResult } from "../gen/hazard/stream/v1/types_pb.js";
import { TRACK_ID_BLOCK } from "../src/store/session-store.js";
import { StreamReader } from "./support/async-queue.js";
import { sceneJpeg } from "./support/images.js";
import { startServer, type TestServer } from "./support/server.js";
import { clearRedisPrefix, redisAnswers } from "./support/redis.js";

const REDIS_URL = "redis://127.0.0.1:6379";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


const sessionClient = (s: TestServer): Client<typeof SessionService> =>
  createClient(SessionService, createGrpcTransport({ baseUrl: s.baseUrl }));

const T0 = 1_700_000_000;

/** Submits frames of one still scene through `via`, waiting for each result on `watch`. */
async function feed(via: TestServer, watch: StreamReader<WatchSessionResponse>, clientId: string, jpeg: Uint8Array, from: number, count: number) {
  const results: DetectionResult[] = [];
  for (let i = from; i < from + count; i++) {
    const frameId = `f${i}`;
    await sessionClient(via).submitFrame({ clientId, frame: create(FrameSchema, { frameId, imageData: jpeg, timestamp: T0 + i / 10 }) });
    const got = (await watch.until((m) => m.event.case === "result" && m.event.value.frameId === frameId)).at(-1);
    if (got?.event.case === "result") results.push(got.event.value);
  }
  return results;
}

const confirmedIds = (results: DetectionResult[]) =>
  new Set(results.flatMap((r) => r.detections.filter((d) => d.trackConfirmed).map((d) => d.trackId ?? 0)));
const total = (counts: { count: bigint }[] | undefined) => (counts ?? []).reduce((n, c) => n + Number(c.count), 0);

describe.skipIf(!(await redisAnswers(REDIS_URL)))("tracking with two instances sharing one Redis", () => {
  const prefix = `hs-track:${randomBytes(4).toString("hex")}:`;
  const env = { REDIS_URL, REDIS_KEY_PREFIX: prefix, STREAMING_MAX_FPS: "60", STREAMING_DEFAULT_FPS: "60" };
  let a: TestServer;
  let b: TestServer;
  let jpeg: Uint8Array;

  beforeAll(async () => {
    [a, b] = await Promise.all([startServer(env), startServer(env)]);
    jpeg = (await sceneJpeg(61)).bytes;
  });
  afterAll(async () => {
    await Promise.all([a?.close(), b?.close()]);
    await clearRedisPrefix(prefix);
  });

  it("frames moving from A to B: each instance tracks what it processes, ids never collide, stats sum both trackers", async () => {
    const clientId = (await sessionClient(a).createSession({ config: create(SessionConfigSchema, { enableTracking: true, fpsLimit: 60 }) }))
      .session?.clientId ?? "";
    const watch = new StreamReader<WatchSessionResponse>(sessionClient(a).watchSession({ clientId }));
    await sleep(100);

    const onA = await feed(a, watch, clientId, jpeg, 0, 4);
    const idsA = confirmedIds(onA);
    expect(idsA.size).toBeGreaterThan(0);
    expect([...idsA].every((id) => id >= 1 && id <= TRACK_ID_BLOCK)).toBe(true);

    // B has its own tracker: the same hazards start over as tentative tracks there, with ids from
    // the session's next block.
    const onB = await feed(b, watch, clientId, jpeg, 4, 4);
    const first = onB[0]?.detections.filter((d) => d.trackId !== undefined) ?? [];
    expect(first.length).toBeGreaterThan(0);
    expect(first.every((d) => !d.trackConfirmed)).toBe(true);
    const idsB = confirmedIds(onB);
    expect(idsB.size).toBe(idsA.size);
    expect([...idsB].every((id) => id > TRACK_ID_BLOCK && id <= 2 * TRACK_ID_BLOCK)).toBe(true);

    // Counts come from the store, so both instances answer the same: every confirmed track, which
    // counts a hazard in view while its frames moved once per instance.
    const [statsA, statsB] = await Promise.all([
      sessionClient(a).getSessionStats({ clientId }),
      sessionClient(b).getSessionStats({ clientId }),
    ]);
    expect(total(statsA.stats?.uniqueHazards)).toBe(idsA.size + idsB.size);
    expect(statsB.stats?.uniqueHazards).toEqual(statsA.stats?.uniqueHazards);
    await sessionClient(b).deleteSession({ clientId });
  });

  it("an instance that stops hands its sessions off with one hazard event per open track; the next instance's ids are new", async () => {
    const c = await startServer(env);
    let closed = false;
    try {
      const clientId = (await sessionClient(c).createSession({ config: create(SessionConfigSchema, { enableTracking: true, fpsLimit: 60 }) }))
        .session?.clientId ?? "";
      const watch = new StreamReader<WatchSessionResponse>(sessionClient(b).watchSession({ clientId }));
      await sleep(100);
      const onC = await feed(c, watch, clientId, jpeg, 0, 4);
      const idsC = confirmedIds(onC);
      expect(idsC.size).toBeGreaterThan(0);

      await c.close();
      closed = true;
      const hazards: number[] = [];
      while (hazards.length < idsC.size) {
        const m = await watch.next(5000);
        if (m?.event.case === "hazard") {
          hazards.push(m.event.value.trackId);
          expect(m.event.value.framesSeen).toBe(4);
        }
      }
      expect(new Set(hazards)).toEqual(idsC);

      const onB = await feed(b, watch, clientId, jpeg, 4, 3);
      const idsB = confirmedIds(onB);
      expect(idsB.size).toBe(idsC.size);
      for (const id of idsB) expect(idsC.has(id)).toBe(false);
      await sessionClient(b).deleteSession({ clientId });
    } finally {
      if (!closed) await c.close();
    }
  });
});
