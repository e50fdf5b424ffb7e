import {
  parseServerMessage,
  type ConfigPatch,
  type ErrorJson,
  type ServerMessage,
  type SessionJson,
  type SessionStatsJson,
  type SubmitFrameJson,
} from "./json-api.js";

/**
 * The REST + Server-Sent Events door of the seed document: create a session with a POST, upload
 * frames one request each, read results from an EventSource. Plain HTTP/1.1 that passes any proxy;
 * costs a request per frame. Any browser (or Node with fetch and the `eventsource` package).
 */

/** What the helper uses of a WHATWG EventSource. */
export interface EventSourceLike {
  readonly readyState: number;
  close(): void;
  addEventListener(type: "message" | "error" | "open", listener: (ev: { readonly type: string; data?: unknown }) => void): void;
}

export type EventSourceFactory = (url: string) => EventSourceLike;

export const globalEventSource: EventSourceFactory = (url) => {
  const Ctor = (globalThis as unknown as { EventSource?: new (url: string) => EventSourceLike }).EventSource;
  if (!Ctor) throw new Error("this runtime has no EventSource: pass `eventSource` (e.g. from the eventsource package)");
  return new Ctor(url);
};

/** A refused request, with the API's error JSON. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    /** `error_code`, e.g. "INVALID_CONFIG", "SESSION_NOT_FOUND". */
    readonly code: string,
    message: string,
    /** The offending field, for INVALID_CONFIG and INVALID_MESSAGE. */
    readonly field?: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export interface RestSseOptions {
  baseUrl: string;
  /**
   * For a server run with STREAMING_API_KEYS: an `x-api-key` header on requests, `?api_key=` on the
   * event stream (EventSource cannot send headers).
   */
  apiKey?: string;
  fetch?: typeof globalThis.fetch;
  eventSource?: EventSourceFactory;
}

const CLOSED = 2;

export class RestSseSession {
  private constructor(
    private readonly opts: RestSseOptions,
    /** The session as created: client_id, effective config, endpoints. */
    readonly session: SessionJson,
  ) {}

  static async create(opts: RestSseOptions & { config?: ConfigPatch }): Promise<RestSseSession> {
    const session = await request<SessionJson>(opts, "POST", "/stream/sessions", { json: opts.config ?? {} });
    return new RestSseSession(opts, session);
  }

  get clientId(): string {
    return this.session.client_id;
  }

  /**
   * Uploads a raw JPEG/PNG/WebP frame. Resolves with whether the server queued it (a frame the
   * FPS limit or an overload drops is answered here at once, not on the event stream).
   */
  submitImage(image: Uint8Array, frame: { frameId?: string; timestamp?: number; contentType?: string } = {}): Promise<SubmitFrameJson> {
    const q = new URLSearchParams();
    if (frame.frameId) q.set("frame_id", frame.frameId);
    if (frame.timestamp !== undefined) q.set("timestamp", String(frame.timestamp));
    const query = q.toString();
    const path = `${this.session.upload_endpoint}${query ? `?${query}` : ""}`;
    return request<SubmitFrameJson>(this.opts, "POST", path, { body: image, contentType: frame.contentType ?? "image/jpeg" });
  }

  updateConfig(config: ConfigPatch): Promise<SessionJson> {
    return request<SessionJson>(this.opts, "PATCH", `/stream/sessions/${encodeURIComponent(this.clientId)}/config`, { json: config });
  }

  stats(): Promise<SessionStatsJson> {
    return request<SessionStatsJson>(this.opts, "GET", `/stream/sessions/${encodeURIComponent(this.clientId)}/stats`, {});
  }

  async delete(): Promise<void> {
    await request<unknown>(this.opts, "DELETE", `/stream/sessions/${encodeURIComponent(this.clientId)}`, {});
  }

  /**
   * Opens the session's event stream and resolves, with a function that closes it, once the stream
   * is live: results of frames submitted from then on cannot pass unseen. Rejects when the server
   * refuses the stream (unknown session, wrong key). The EventSource reconnects by itself after a
   * network failure (resuming with Last-Event-ID); it is closed here once the session ends.
   */
  listen(onMessage: (m: ServerMessage) => void, onError?: () => void): Promise<() => void> {
    const url = new URL(this.session.sse_endpoint, this.opts.baseUrl);
    if (this.opts.apiKey) url.searchParams.set("api_key", this.opts.apiKey);
    const es = (this.opts.eventSource ?? globalEventSource)(url.toString());
    const close = () => es.close();
    return new Promise((resolve, reject) => {
      let opened = false;
      es.addEventListener("open", () => {
        opened = true;
        resolve(close);
      });
      es.addEventListener("message", (ev) => {
        const msg = typeof ev.data === "string" ? parseServerMessage(ev.data) : undefined;
        if (!msg) return;
        if (msg.type === "session_ended") es.close();
        onMessage(msg);
      });
      es.addEventListener("error", () => {
        if (es.readyState !== CLOSED) return;
        if (opened) onError?.();
        else reject(new ApiError(0, "EVENT_STREAM_REFUSED", `the event stream of session ${this.clientId} was refused`));
      });
    });
  }
}

async function request<T>(
  opts: RestSseOptions,
  method: string,
  path: string,
  body: { json?: object; body?: Uint8Array; contentType?: string },
): Promise<T> {
  const headers: Record<string, string> = {};
  if (opts.apiKey) headers["x-api-key"] = opts.apiKey;
  let payload: string | Uint8Array<ArrayBuffer> | undefined;
  if (body.json !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body.json);
  } else if (body.body !== undefined) {
    headers["Content-Type"] = body.contentType ?? "application/octet-stream";
    // fetch's BodyInit takes only views of a plain ArrayBuffer; a Node Buffer may sit on a shared one.
    payload = new Uint8Array(body.body);
  }
  const res = await (opts.fetch ?? globalThis.fetch)(new URL(path, opts.baseUrl), { method, headers, body: payload });
  const text = await res.text();
  let json: unknown;
  try {
    json = text === "" ? undefined : JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    const e = (json ?? {}) as Partial<ErrorJson>;
    throw new ApiError(res.status, e.error_code ?? `HTTP_${res.status}`, e.error ?? `${method} ${path}: HTTP ${res.status}`, e.field);
  }
  return json as T;
}
