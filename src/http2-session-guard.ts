import http2 from "node:http2";

/**
 * What Node's HTTP/2 server does not do for a connection by itself: close it when it is idle, when
 * its client resets streams abusively (CVE-2023-44487, "rapid reset"), and when nghttp2 has given
 * up on it without telling Node.
 *
 * Why the last two: nghttp2 (1.57+, in Node 20) has its own stream-reset rate limit, 1000 resets at
 * once and 33 more a second. Past it, it sends GOAWAY(INTERNAL_ERROR) and stops reading and writing,
 * and nothing reaches JavaScript: no 'goaway', 'error' or 'close' event. Node then never reads the
 * client's FIN either, so the socket sat in CLOSE-WAIT, counted against its address's
 * MAX_CONNECTIONS_PER_IP slots, until the idle timeout (measured: 120 s each).
 *
 * So the resets the server can see are budgeted here more tightly than nghttp2 does it (fewer at
 * once, fewer a second, so this bucket always runs dry first), and an abusive session is destroyed:
 * GOAWAY(ENHANCE_YOUR_CALM), socket closed, slot free. nghttp2 also counts resets of streams that are
 * already closed, which Node does not surface; a session it ends that way is found by the idle
 * check: with no stream open it is closed, with streams open it must answer a PING or be destroyed.
 */

/** Stream resets a session may have at once, and refilled per second: below nghttp2's 1000 and 33. */
export const RESET_BURST = 500;
export const RESETS_PER_SECOND = 20;
/** A live client answers a PING in well under this, however loaded. */
const PING_TIMEOUT_MS = 20_000;

export interface Http2GuardOptions {
  /** A session with no open stream and no traffic for this long gets GOAWAY. */
  idleTimeoutMs: number;
}

export function guardHttp2Session(session: http2.ServerHttp2Session, opts: Http2GuardOptions): void {
  let open = 0;
  let tokens = RESET_BURST;
  let refilledAt = performance.now();
  const spendReset = (): boolean => {
    const now = performance.now();
    tokens = Math.min(RESET_BURST, tokens + ((now - refilledAt) / 1000) * RESETS_PER_SECOND);
    refilledAt = now;
    tokens -= 1;
    return tokens >= 0;
  };

  session.on("stream", (stream) => {
    open++;
    stream.once("close", () => {
      open--;
      // Resets by either side count: the server's own come from the client's bad requests.
      if (stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR && !spendReset() && !session.destroyed) {
        // With an error, or Node's default parameter turns `undefined` into NO_ERROR as the GOAWAY code.
        session.destroy(new Error("too many stream resets"), http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
      }
    });
  });

  // Node's session timeout counts bytes, not streams: it fires after idleTimeoutMs without traffic.
  session.setTimeout(opts.idleTimeoutMs, () => {
    if (session.closed || session.destroyed) return;
    // Only a connection with nothing open is idle: a quiet bidi stream (a camera pausing) or a
    // watch between keepalives is not. GOAWAY, not a reset: clients reconnect on their next call.
    if (open === 0) {
      session.close();
      return;
    }
    const deadline = setTimeout(() => session.destroy(), PING_TIMEOUT_MS);
    deadline.unref();
    const sent = session.ping((err) => {
      if (!err) clearTimeout(deadline);
    });
    if (!sent) clearTimeout(deadline);
  });
}
