import { HazardStreamClient } from "../../client/index.js";
import { messageOf } from "./elements.js";
import { watchEvent } from "./events.js";

const LOG_LINES = 12;

/**
 * A second look at a running session: WatchSession over gRPC-Web server streaming, opened apart
 * from whatever door feeds the session, like every other client (a dashboard, a second tab) would.
 * Counts events by kind and keeps the last few in a log. The summary's data-events and
 * data-results are for automation.
 */
export class WatchPanel {
  constructor(
    private readonly summary: HTMLElement,
    private readonly log: HTMLOListElement,
  ) {}

  reset(enabled: boolean): void {
    this.summary.dataset.events = "0";
    this.summary.dataset.results = "0";
    this.summary.textContent = enabled ? "waiting for events…" : "off";
    this.log.replaceChildren();
  }

  async watch(baseUrl: string, apiKey: string | undefined, clientId: string, signal: AbortSignal): Promise<void> {
    const client = new HazardStreamClient({ baseUrl, apiKey, protocol: "grpc-web" });
    const counts = new Map<string, number>();
    let events = 0;
    try {
      for await (const ev of client.watchSession(clientId, { signal })) {
        const kind = ev.event.case ?? "unknown";
        events++;
        counts.set(kind, (counts.get(kind) ?? 0) + 1);
        this.summary.dataset.events = String(events);
        this.summary.dataset.results = String(counts.get("result") ?? 0);
        this.summary.textContent = [...counts].map(([k, n]) => `${k} ${n}`).join(" · ");
        const e = watchEvent(ev);
        const detail = e?.kind === "result" ? ` ${e.frameId}: ${e.boxes.map((b) => b.className).join(", ") || "nothing"}` : "";
        const li = document.createElement("li");
        li.textContent = `#${ev.eventId} ${kind}${detail}`;
        this.log.prepend(li);
        while (this.log.childElementCount > LOG_LINES) this.log.lastElementChild?.remove();
      }
      if (!signal.aborted) this.summary.textContent += " · ended";
    } catch (err) {
      if (!signal.aborted) this.summary.textContent = `watch failed: ${messageOf(err)}`;
    }
  }
}
