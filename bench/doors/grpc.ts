import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  DetectionService,
  StreamDetectionsRequestSchema,
  type StreamDetectionsRequest,
} from "../../gen/hazard/stream/v1/detection_service_pb.js";
import { DropReason } from "../../gen/hazard/stream/v1/types_pb.js";
import { RequestStream } from "../../src/http/request-stream.js";
import { fpsLimitFor, frameIdOf, messageOf, seqOf, type OpenDoor } from "./types.js";

/**
 * gRPC bidi StreamDetections over h2c, frames as raw bytes in protobuf. One transport (one HTTP/2
 * connection) per session, as separate cameras would have.
 */
export const openGrpc: OpenDoor = async ({ baseUrl, fps, sink }) => {
  const client = createClient(DetectionService, createGrpcTransport({ baseUrl }));
  const requests = new RequestStream<StreamDetectionsRequest>();
  const abort = new AbortController();
  requests.push(create(StreamDetectionsRequestSchema, { message: { case: "start", value: { config: { fpsLimit: fpsLimitFor(fps) } } } }));
  let started!: () => void;
  const ready = new Promise<void>((r) => (started = r));
  const reading = (async () => {
    try {
      for await (const res of client.streamDetections(requests, { signal: abort.signal })) {
        const m = res.message;
        if (m.case === "session") started();
        else if (m.case === "result") {
          const seq = seqOf(m.value.frameId);
          if (seq !== undefined) sink.result(seq, { queueMs: m.value.timings?.queueMs ?? 0, processingMs: m.value.processingTimeMs });
        } else if (m.case === "dropped") {
          const seq = seqOf(m.value.frameId);
          if (seq !== undefined) sink.dropped(seq, DropReason[m.value.reason] ?? String(m.value.reason));
        } else if (m.case === "error") sink.failed(seqOf(m.value.frameId), m.value.message);
        else if (m.case === "flowControl") sink.allowedFps(m.value.allowedFps);
      }
    } catch (e) {
      if (!abort.signal.aborted) sink.failed(undefined, `stream: ${messageOf(e)}`);
    } finally {
      started();
    }
  })();
  await ready;
  return {
    send(frame, seq) {
      requests.push(
        create(StreamDetectionsRequestSchema, {
          message: { case: "frame", value: { imageData: frame.bytes, frameId: frameIdOf(seq), timestamp: Date.now() / 1000 } },
        }),
      );
    },
    async close() {
      // Half-close: the server answers what is in flight, ends the session and closes the stream.
      requests.end();
      const timer = setTimeout(() => abort.abort(), 10_000);
      await reading;
      clearTimeout(timer);
    },
  };
};
