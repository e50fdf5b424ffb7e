import { WebSocket, type ClientOptions } from "ws";

/** Parsed JSON as the tests read it: the adapter's messages are plain JSON objects. */
export type Json = Record<string, unknown>;

/** A WebSocket whose messages can be awaited one at a time (each test reads exactly what it expects). */
export class WsClient {
  readonly ws: WebSocket;
  private readonly queue: Array<{ text: string }> = [];
  private waiter: (() => void) | undefined;
  closed: { code: number; reason: string } | undefined;
  readonly opened: Promise<void>;

  constructor(url: string, options?: ClientOptions) {
    this.ws = new WebSocket(url, options);
    this.ws.on("message", (data: Buffer) => {
      this.queue.push({ text: data.toString("utf8") });
      this.wake();
    });
    this.ws.on("close", (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      this.wake();
    });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once("open", () => resolve());
      this.ws.once("error", reject);
    });
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  sendJson(msg: unknown): void {
    this.ws.send(JSON.stringify(msg));
  }

  /** The next message as JSON; throws on timeout or when the connection closed first. */
  async next(timeoutMs = 20_000): Promise<Json> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.queue.shift();
      if (m) return JSON.parse(m.text) as Json;
      if (this.closed) throw new Error(`closed (${this.closed.code} ${this.closed.reason}) before the next message`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no message within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }

  /** Reads until a message matches, returning it. */
  async until(pred: (m: Json) => boolean, timeoutMs = 20_000): Promise<Json> {
    for (;;) {
      const m = await this.next(timeoutMs);
      if (pred(m)) return m;
    }
  }

  /** Nothing arrives within `ms` (the protocol sends nothing unprompted). */
  async expectSilence(ms: number): Promise<void> {
    await new Promise((r) => setTimeout(r, ms));
    if (this.queue.length > 0) throw new Error(`unexpected message: ${this.queue[0]?.text}`);
  }

  /** Resolves with the close code once the server closes. */
  async closedWith(timeoutMs = 20_000): Promise<{ code: number; reason: string }> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error("not closed in time");
      await new Promise((r) => setTimeout(r, 20));
    }
    return this.closed;
  }

  close(): void {
    this.ws.close();
  }
}

export interface SseEvent {
  id?: string;
  event?: string;
  data: string;
}

/**
 * A raw SSE reader over fetch, for what EventSource hides (ids, comments, retry, status codes).
 * `events` collects parsed events; `comments` the comment lines.
 */
export class RawSse {
  readonly events: SseEvent[] = [];
  readonly comments: string[] = [];
  retry: number | undefined;
  status = 0;
  contentType = "";
  /** The response's headers, once it came. */
  responseHeaders: Headers | undefined;
  bytes = 0;
  ended = false;
  private readonly abort = new AbortController();
  readonly done: Promise<void>;
  private ready!: () => void;
  readonly headersReceived: Promise<void> = new Promise((r) => (this.ready = r));

  /** `onEvent` sees each event as it is parsed (for readers that act on events rather than poll). */
  constructor(
    url: string,
    headers: Record<string, string> = {},
    private readonly onEvent?: (ev: SseEvent) => void,
  ) {
    this.done = this.run(url, headers).finally(() => {
      this.ended = true;
      this.ready();
    });
  }

  private async run(url: string, headers: Record<string, string>): Promise<void> {
    let res: Response;
    try {
      res = await fetch(url, { headers: { Accept: "text/event-stream", ...headers }, signal: this.abort.signal });
    } catch {
      return;
    }
    this.status = res.status;
    this.contentType = res.headers.get("content-type") ?? "";
    this.responseHeaders = res.headers;
    this.ready();
    if (!res.body) return;
    const decoder = new TextDecoder();
    let buf = "";
    try {
      for await (const chunk of res.body) {
        this.bytes += chunk.byteLength;
        buf += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = buf.indexOf("\n\n")) >= 0) {
          this.parseBlock(buf.slice(0, end));
          buf = buf.slice(end + 2);
        }
      }
    } catch {
      // aborted by close()
    }
  }

  private parseBlock(block: string): void {
    const ev: SseEvent = { data: "" };
    const data: string[] = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) this.comments.push(line.slice(1).trim());
      else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      else if (line.startsWith("id:")) ev.id = line.slice(3).trim();
      else if (line.startsWith("event:")) ev.event = line.slice(6).trim();
      else if (line.startsWith("retry:")) this.retry = Number(line.slice(6));
    }
    if (data.length > 0) {
      ev.data = data.join("\n");
      this.events.push(ev);
      this.onEvent?.(ev);
    }
  }

  json(): Json[] {
    return this.events.map((e) => JSON.parse(e.data) as Json);
  }

  async waitFor(pred: (m: Json) => boolean, timeoutMs = 20_000): Promise<Json> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.json().find(pred);
      if (hit) return hit;
      if (this.ended) throw new Error(`SSE stream ended without the expected event; got ${JSON.stringify(this.json())}`);
      if (Date.now() > deadline) throw new Error(`no matching SSE event within ${timeoutMs} ms; got ${JSON.stringify(this.json())}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  close(): void {
    this.abort.abort();
  }
}

export async function postJson(url: string, body: unknown, method = "POST"): Promise<{ status: number; json: Json; headers: Headers }> {
  const res = await fetch(url, { method, headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as Json, headers: res.headers };
}

export async function getJson(url: string, init?: RequestInit): Promise<{ status: number; json: Json; headers: Headers }> {
  const res = await fetch(url, init);
  return { status: res.status, json: (await res.json()) as Json, headers: res.headers };
}

/** Waits until `check` passes (for effects that settle asynchronously, like freeing a watcher). */
export async function eventually(check: () => void | Promise<void>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
