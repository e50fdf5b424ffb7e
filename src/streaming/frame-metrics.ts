import type { Door } from "../../gen/hazard/stream/v1/session_pb.js";
import type { DetectionResult, DropReason, ErrorCode } from "../../gen/hazard/stream/v1/types_pb.js";

/**
 * Where the session layer reports each frame's arrival and outcome (the Prometheus metrics in
 * src/metrics/ implement it). Optional for SessionManager, so tests and tools need none.
 */
export interface FrameMetrics {
  frameReceived(door: Door): void;
  /** `endToEndMs`: from the frame's arrival on this instance to its result. */
  frameProcessed(door: Door, result: DetectionResult, endToEndMs: number): void;
  frameFailed(door: Door, code: ErrorCode): void;
  frameDropped(door: Door, reason: DropReason): void;
}
