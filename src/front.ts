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
}

export interface Front {
  readonly server: net.Server;
  /** Destroys every socket that is still open (used after the graceful-shutdown deadline). */
  destroyAll(): void;
}

export function createFront({ h2, h1, tls: tlsOptions }: FrontOptions): Front {
  const sockets = new Set<net.Socket>();
  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    // A reset from a vanished client must not become an unhandled 'error' event.
    socket.on("error", () => socket.destroy());
  };

  let server: net.Server;
  if (tlsOptions) {
    server = tls.createServer({ ...tlsOptions, ALPNProtocols: ["h2", "http/1.1"] }, (socket) => {
      track(socket);
      (socket.alpnProtocol === "h2" ? h2 : h1).emit("connection", socket);
    });
    server.on("tlsClientError", (_err, socket) => socket.destroy());
  } else {
    server = net.createServer((socket) => {
      track(socket);
      sniff(socket, (isH2) => (isH2 ? h2 : h1).emit("connection", socket));
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
