import { seqOf, type OutcomeSink } from "./types.js";

/** The JSON messages of the WebSocket and SSE doors, as a client reads them. */
type JsonRecord = Record<string, unknown>;

const isRecord = (v: unknown): v is JsonRecord => typeof v === "object" && v !== null && !Array.isArray(v);
const str = (o: JsonRecord, k: string): string | undefined => (typeof o[k] === "string" ? o[k] : undefined);
const num = (o: JsonRecord, k: string): number | undefined => (typeof o[k] === "number" ? o[k] : undefined);

/** Routes one message to the sink; unknown types (hazard, config_applied, pong) are ignored. */
export function dispatchJson(text: string, sink: OutcomeSink): void {
  let msg: unknown;
  try {
    msg = JSON.parse(text);
  } catch {
    sink.failed(undefined, `not JSON: ${text.slice(0, 80)}`);
    return;
  }
  if (!isRecord(msg)) return;
  const seqIn = (o: JsonRecord) => {
    const id = str(o, "frame_id");
    return id === undefined ? undefined : seqOf(id);
  };
  switch (msg.type) {
    case "detection_result": {
      const data = isRecord(msg.data) ? msg.data : {};
      const seq = seqIn(data);
      if (seq !== undefined) sink.result(seq, { processingMs: num(data, "processing_time_ms") ?? 0 });
      break;
    }
    case "frame_dropped": {
      const seq = seqIn(msg);
      if (seq !== undefined) sink.dropped(seq, str(msg, "reason") ?? "?");
      break;
    }
    case "flow_control": {
      const fps = num(msg, "allowed_fps");
      if (fps !== undefined) sink.allowedFps(fps);
      break;
    }
    case "error":
      sink.failed(seqIn(msg), str(msg, "error") ?? "error");
      break;
    default:
      break;
  }
}

/** A frame as the document's JSON (`image_data` base64), built by concatenation: no second copy of the base64. */
export function frameJson(base64: string, frameId: string, wsType: boolean): string {
  const head = wsType ? `{"type":"frame",` : "{";
  return `${head}"frame_id":"${frameId}","timestamp":${Date.now() / 1000},"image_data":"${base64}"}`;
}
