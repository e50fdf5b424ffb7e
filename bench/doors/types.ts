import type { BenchFrame } from "../frames.js";

/** Server-side breakdown of one frame, where the door carries it. */
export interface ServerTimings {
  queueMs?: number;
  processingMs: number;
}

/** What a door reports back about the frames a session sent (keyed by the session's sequence number). */
export interface OutcomeSink {
  result(seq: number, server: ServerTimings): void;
  dropped(seq: number, reason: string): void;
  failed(seq: number | undefined, message: string): void;
  /** The server's sending allowance (flow control). */
  allowedFps(fps: number): void;
}

export interface DoorSession {
  /** Sends frame number `seq` (1, 2, 3, ... in order); its outcome arrives on the sink. */
  send(frame: BenchFrame, seq: number): void;
  close(): Promise<void>;
}

export interface DoorContext {
  baseUrl: string;
  /** Frames per second the session offers; the session's fps_limit is set to it. */
  fps: number;
  sink: OutcomeSink;
  /** WebSocket only: negotiate permessage-deflate, as browsers and the ws package do by default. */
  wsDeflate: boolean;
}

export type OpenDoor = (ctx: DoorContext) => Promise<DoorSession>;

export const frameIdOf = (seq: number): string => `f-${seq}`;

/**
 * The sequence number in a frame id: ours are `f-<seq>`; ids the server assigns to frames sent
 * without one (WebSocket binary) are `<client prefix>-<n>`, n counting from 1 in send order.
 */
export function seqOf(frameId: string): number | undefined {
  const n = Number(frameId.slice(frameId.lastIndexOf("-") + 1));
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

/** fps_limit is an integer 1..30: the smallest one that lets `fps` through. */
export const fpsLimitFor = (fps: number): number => Math.min(30, Math.max(1, Math.ceil(fps)));

export const messageOf = (e: unknown): string => (e instanceof Error ? e.message : String(e));
