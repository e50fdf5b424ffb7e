import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { DetectionService } from "../../gen/hazard/stream/v1/detection_service_pb.js";
import { frameIdOf, messageOf, type OpenDoor } from "./types.js";

/**
 * Connect unary Detect over HTTP/1.1 with the binary codec (what a script or backend without
 * HTTP/2 would use). There is no session: a "session" here is one client's loop of calls.
 */
export const openUnary: OpenDoor = async ({ baseUrl, sink }) => {
  const client = createClient(DetectionService, createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: true }));
  const calls = new Set<Promise<void>>();
  return {
    send(frame, seq) {
      const call = client
        .detect({ frame: { imageData: frame.bytes, frameId: frameIdOf(seq), timestamp: Date.now() / 1000 } })
        .then(
          (r) => sink.result(seq, { queueMs: r.result?.timings?.queueMs ?? 0, processingMs: r.result?.processingTimeMs ?? 0 }),
          (e: unknown) => sink.failed(seq, messageOf(e)),
        )
        .finally(() => calls.delete(call));
      calls.add(call);
    },
    async close() {
      await Promise.all(calls);
    },
  };
};
