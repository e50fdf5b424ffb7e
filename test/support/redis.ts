import { Redis } from "ioredis";

export const TEST_REDIS_URL = "redis://127.0.0.1:6379";

/** Whether a Redis answers at `url` (tests that need one skip with a message when not). */
export async function redisAnswers(url: string = TEST_REDIS_URL): Promise<boolean> {
  const r = new Redis(url, { lazyConnect: true, enableOfflineQueue: false, retryStrategy: () => null });
  r.on("error", () => undefined);
  try {
    await r.connect();
    return (await r.ping()) === "PONG";
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}

/** Deletes every key under a test's private prefix (its sessions, buses and counters). */
export async function clearRedisPrefix(prefix: string, url: string = TEST_REDIS_URL): Promise<void> {
  const r = new Redis(url);
  try {
    const keys = await r.keys(`${prefix}*`);
    if (keys.length > 0) await r.del(...keys);
  } finally {
    r.disconnect();
  }
}
