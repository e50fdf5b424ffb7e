import { WebSocket } from "ws";
import { dispatchJson, frameJson } from "./json-events.js";
import { fpsLimitFor, frameIdOf, messageOf, type DoorContext, type DoorSession, type OpenDoor } from "./types.js";

/**
 * `/stream/detection` with `notify=true`, so drops and flow control are announced (without it the
 * server stays silent about dropped frames, as the document's Python client expects).
 */
async function openWs(ctx: DoorContext, binary: boolean): Promise<DoorSession> {
  const url = `${ctx.baseUrl.replace(/^http/, "ws")}/stream/detection?fps_limit=${fpsLimitFor(ctx.fps)}&notify=true`;
  const ws = new WebSocket(url, { perMessageDeflate: ctx.wsDeflate });
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  let closing = false;
  ws.on("message", (data, isBinary) => {
    if (!isBinary) dispatchJson(data.toString(), ctx.sink);
  });
  ws.on("error", (e) => ctx.sink.failed(undefined, `websocket: ${messageOf(e)}`));
  const closed = new Promise<void>((resolve) =>
    ws.once("close", (code) => {
      if (!closing) ctx.sink.failed(undefined, `websocket closed by the server (${code})`);
      resolve();
    }),
  );
  return {
    send(frame, seq) {
      if (ws.readyState !== WebSocket.OPEN) return;
      // Binary frames carry no id: the server numbers them 1, 2, 3... in arrival order, like seq.
      ws.send(binary ? frame.bytes : frameJson(frame.base64, frameIdOf(seq), true));
    },
    async close() {
      closing = true;
      ws.close(1000);
      const timer = setTimeout(() => ws.terminate(), 10_000);
      await closed;
      clearTimeout(timer);
    },
  };
}

export const openWsJson: OpenDoor = (ctx) => openWs(ctx, false);
export const openWsBinary: OpenDoor = (ctx) => openWs(ctx, true);
