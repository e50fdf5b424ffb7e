import type { Server as HttpServer } from "node:http";
import type { Socket } from "node:net";

/**
 * Keep-alive bookkeeping for the HTTP/1.1 server. `http.Server.closeIdleConnections()` only knows
 * connections of a server that called listen() itself; ours are handed over by the front (one port,
 * protocol sniffing), so it sees none and idle keep-alive sockets would hold a shutdown up until its
 * deadline. This tracks requests per socket instead: at shutdown idle sockets close at once, busy
 * ones right after their response (with `Connection: close`), upgraded ones (WebSocket) are left
 * to their own close handshake.
 */
export interface Http1Connections {
  /** Open HTTP/1.1 connections, WebSocket ones included. */
  readonly open: number;
  /** Closes idle connections now and every other one once its response is done. */
  closeIdle(): void;
}

export function trackHttp1Connections(server: HttpServer, onChange?: (delta: 1 | -1) => void): Http1Connections {
  // Requests in progress per socket; absent = not (or no longer) plain HTTP.
  const active = new Map<Socket, number>();
  const seen = new WeakSet<Socket>();
  let open = 0;
  let closing = false;

  server.on("connection", (socket: Socket) => {
    // A socket can be handed over twice (an Upgrade request served as plain HTTP is re-emitted).
    if (!active.has(socket)) active.set(socket, 0);
    if (seen.has(socket)) return;
    seen.add(socket);
    open++;
    onChange?.(1);
    socket.once("close", () => {
      active.delete(socket);
      open--;
      onChange?.(-1);
    });
  });
  server.on("request", (req, res) => {
    const socket = req.socket;
    active.set(socket, (active.get(socket) ?? 0) + 1);
    if (closing && !res.headersSent) res.setHeader("Connection", "close");
    res.once("close", () => {
      const n = (active.get(socket) ?? 1) - 1;
      if (!active.has(socket)) return;
      active.set(socket, n);
      if (closing && n === 0) socket.end();
    });
  });
  server.on("upgrade", (req) => active.delete(req.socket));

  return {
    get open() {
      return open;
    },
    closeIdle() {
      closing = true;
      for (const [socket, n] of active) if (n === 0) socket.end();
    },
  };
}
