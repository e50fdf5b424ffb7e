import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { DetectionService } from "../../gen/hazard/stream/v1/detection_service_pb.js";
import { FrameSchema, SessionConfigSchema } from "../../gen/hazard/stream/v1/types_pb.js";
import type { ImageDetections } from "./evaluate.js";

export interface DetectSettings {
  confidence: number;
  /** NMS IoU. */
  iou: number;
  maxDetections: number;
}

/**
 * Sends images to a running server over gRPC `Detect`, as a client would: the detector under test
 * is the whole service pipeline (decode, letterbox, engine, NMS), not the model alone.
 */
export function serviceDetector(baseUrl: string, s: DetectSettings): (image: Buffer, name: string) => Promise<ImageDetections> {
  const client = createClient(DetectionService, createGrpcTransport({ baseUrl }));
  const config = create(SessionConfigSchema, { confidenceThreshold: s.confidence, iouThreshold: s.iou, maxDetections: s.maxDetections });
  return async (image, name) => {
    const { result } = await client.detect({ frame: create(FrameSchema, { frameId: name.slice(-256), imageData: image }), config });
    return {
      width: result?.imageWidth ?? 0,
      height: result?.imageHeight ?? 0,
      detections: (result?.detections ?? []).map((d) => ({
        x1: d.bbox?.x1 ?? 0, y1: d.bbox?.y1 ?? 0, x2: d.bbox?.x2 ?? 0, y2: d.bbox?.y2 ?? 0,
        confidence: d.confidence, className: d.className,
      })),
    };
  };
}
