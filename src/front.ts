import type { Server as HttpServer } from "node:http";
import type { Http2Server } from "node:http2";
import net from "node:net";
import tls from "node:tls";

/**
 * One listening port for every protocol. `http2.createServer({ allowHTTP1: true })` only serves
 * HTTP/1.1 over TLS, so for cleartext we peek at the first bytes: the HTTP/2 connection preface goes
 * to the h2c server (gRPC, bidi streaming), anything else to the HTTP/1.1 server (Connect/gRPC-Web
 * from browsers and curl, REST, SSE, WebSocket upgrades). With TLS, ALPN decides instead.
 */
const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

export interface FrontOptions {
  h2: Http2Server;
  h1: HttpServer;
  tls?: { cert: Buffer; key: Buffer };
  /** Connections open at once from one address (0 or absent: no limit); more go to `refuse`. */
  maxConnectionsPerIp?: number;
  /**
   * Servers that answer every request of a connection over the limit with RESOURCE_EXHAUSTED in
   * its own protocol (429 JSON, gRPC status, Connect error) and then close it: a polite refusal a
   * client can read, instead of a reset it would retry at once.
   */
  refuse?: { h2: Http2Server; h1: HttpServer };
  /** A cleartext connection that sends no bytes for this long is closed (before any server sees it). */
  firstBytesTimeoutMs?: number;
}

export interface Front {
  readonly server: net.Server;
  /** Destroys every socket that is still open (used after the graceful-shutdown deadline). */
  destroyAll(): void;
}

export function createFront({ h2, h1, tls: tlsOptions, maxConnectionsPerIp = 0, refuse, firstBytesTimeoutMs }: FrontOptions): Front {
  const sockets = new Set<net.Socket>();
  const perIp = new Map<string, number>();
  /** Counts the connection; true when it is over its address's limit. */
  const track = (socket: net.Socket): boolean => {
    sockets.add(socket);
    const ip = socket.remoteAddress ?? "";
    const open = (perIp.get(ip) ?? 0) + 1;
    perIp.set(ip, open);
    socket.once("close", () => {
      sockets.delete(socket);
      const left = (perIp.get(ip) ?? 1) - 1;
      if (left > 0) perIp.set(ip, left);
      else perIp.delete(ip);
    });
    // A reset from a vanished client must not become an unhandled 'error' event.
    socket.on("error", () => socket.destroy());
    return maxConnectionsPerIp > 0 && open > maxConnectionsPerIp && refuse !== undefined;
  };
  const dispatch = (socket: net.Socket, isH2: boolean, over: boolean) => {
    const to = over && refuse ? refuse : { h2, h1 };
    (isH2 ? to.h2 : to.h1).emit("connection", socket);
  };

  let server: net.Server;
  if (tlsOptions) {
    server = tls.createServer({ ...tlsOptions, ALPNProtocols: ["h2", "http/1.1"] }, (socket) => {
      const over = track(socket);
      dispatch(socket, socket.alpnProtocol === "h2", over);
    });
    server.on("tlsClientError", (_err, socket) => socket.destroy());
  } else {
    server = net.createServer((socket) => {
      const over = track(socket);
      // Until the servers take over (they have their own header and idle timeouts), a connection
      // that sends nothing would be held open for good.
      const silent = () => socket.destroy();
      if (firstBytesTimeoutMs) socket.setTimeout(firstBytesTimeoutMs, silent);
      sniff(socket, (isH2) => {
        socket.setTimeout(0);
        socket.off("timeout", silent);
        dispatch(socket, isH2, over);
      });
    });
  }
  return {
    server,
    destroyAll() {
      for (const s of sockets) s.destroy();
    },
  };
}

/** Reads until the first bytes tell HTTP/2 from HTTP/1.x, then puts them back for the real server. */
function sniff(socket: net.Socket, dispatch: (isH2: boolean) => void): void {
  let seen: Buffer = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
    const n = Math.min(seen.length, H2_PREFACE.length);
    const matches = seen.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
    if (matches && n < H2_PREFACE.length) return; // need more bytes to be sure
    socket.off("data", onData);
    socket.pause();
    socket.unshift(seen);
    dispatch(matches);
    // The server attached its own reader during dispatch; let the bytes flow to it.
    process.nextTick(() => socket.resume());
  };
  socket.on("data", onData);
}
