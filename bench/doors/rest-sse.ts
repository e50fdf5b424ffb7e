import { dispatchJson, frameJson } from "./json-events.js";
import { fpsLimitFor, frameIdOf, messageOf, type OpenDoor, type OutcomeSink } from "./types.js";

/**
 * The document's browser flow: POST /stream/sessions, an SSE stream for results, JSON frames
 * POSTed to the upload endpoint (202 says whether the frame was accepted). A small fetch-based SSE
 * reader instead of EventSource: it only needs `data:` lines.
 */
interface SessionJson {
  client_id: string;
  sse_endpoint: string;
  upload_endpoint: string;
}

function isSessionJson(v: unknown): v is SessionJson {
  return typeof v === "object" && v !== null && "client_id" in v && "sse_endpoint" in v && "upload_endpoint" in v;
}

async function readSse(body: ReadableStream<Uint8Array>, sink: OutcomeSink): Promise<void> {
  const decoder = new TextDecoder();
  let buf = "";
  for await (const chunk of body) {
    buf += decoder.decode(chunk, { stream: true });
    let end: number;
    while ((end = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      const data = block
        .split("\n")
        .filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(5).trimStart())
        .join("\n");
      if (data !== "") dispatchJson(data, sink);
    }
  }
}

export const openRestSse: OpenDoor = async ({ baseUrl, fps, sink }) => {
  const created = await fetch(`${baseUrl}/stream/sessions`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ fps_limit: fpsLimitFor(fps) }),
  });
  const session: unknown = await created.json();
  if (created.status !== 201 || !isSessionJson(session)) throw new Error(`POST /stream/sessions answered ${created.status}`);
  const abort = new AbortController();
  const events = await fetch(`${baseUrl}${session.sse_endpoint}`, { headers: { Accept: "text/event-stream" }, signal: abort.signal });
  if (events.status !== 200 || !events.body) throw new Error(`SSE answered ${events.status}`);
  const reading = readSse(events.body, sink).catch((e: unknown) => {
    if (!abort.signal.aborted) sink.failed(undefined, `sse: ${messageOf(e)}`);
  });
  const uploads = new Set<Promise<void>>();
  return {
    send(frame, seq) {
      const upload = fetch(`${baseUrl}${session.upload_endpoint}`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: frameJson(frame.base64, frameIdOf(seq), false),
      })
        .then(async (res) => {
          const json: unknown = await res.json();
          const r = typeof json === "object" && json !== null ? (json as Record<string, unknown>) : {};
          if (res.status !== 202) return sink.failed(seq, `upload answered ${res.status}: ${String(r.error ?? "")}`);
          if (typeof r.allowed_fps === "number") sink.allowedFps(r.allowed_fps);
          if (r.accepted === false) sink.dropped(seq, String(r.drop_reason ?? "?"));
        })
        .catch((e: unknown) => sink.failed(seq, `upload: ${messageOf(e)}`))
        .finally(() => uploads.delete(upload));
      uploads.add(upload);
    },
    async close() {
      await Promise.all(uploads);
      // DELETE ends the session; its SSE stream gets session_ended and closes.
      await fetch(`${baseUrl}/stream/sessions/${encodeURIComponent(session.client_id)}`, { method: "DELETE" }).catch(() => undefined);
      const timer = setTimeout(() => abort.abort(), 10_000);
      await reading;
      clearTimeout(timer);
    },
  };
};
