import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { DetectionService } from "../gen/hazard/stream/v1/detection_service_pb.js";
import type { FrameSet } from "./frames.js";
import type { ServerChild } from "./server-child.js";

/**
 * A fresh server answers its first frames several times slower (V8 compiles the hot paths, ORT
 * allocates its arenas): run some through Detect before the first measured point, 3 at a time.
 */
export async function warmServer(server: ServerChild, frames: FrameSet, count: number): Promise<void> {
  const client = createClient(DetectionService, createGrpcTransport({ baseUrl: server.baseUrl }));
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const f = frames.frames[next++ % frames.frames.length];
      if (f) await client.detect({ frame: { imageData: f.bytes } });
    }
  };
  await Promise.all([worker(), worker(), worker()]);
}
