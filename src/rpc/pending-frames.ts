import type { WatchSessionResponse } from "../../gen/hazard/stream/v1/session_service_pb.js";

/**
 * Frames a stream has submitted and not yet seen answered. A stream whose client has half-closed
 * ends once every frame it sent got its result, error or drop notice — nothing is silently lost.
 * Counted per id because clients may reuse frame ids.
 */
export class PendingFrames {
  private readonly counts = new Map<string, number>();
  private total = 0;

  get size(): number {
    return this.total;
  }

  add(frameId: string): void {
    this.counts.set(frameId, (this.counts.get(frameId) ?? 0) + 1);
    this.total++;
  }

  settle(frameId: string): void {
    const n = this.counts.get(frameId);
    if (n === undefined) return;
    if (n <= 1) this.counts.delete(frameId);
    else this.counts.set(frameId, n - 1);
    this.total--;
  }
}

/** The frame an event finally answers, if it is a per-frame outcome. */
export function terminalFrameId(ev: WatchSessionResponse): string | undefined {
  const e = ev.event;
  if (e.case === "result" || e.case === "error" || e.case === "dropped") return e.value.frameId;
  return undefined;
}
