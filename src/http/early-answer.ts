import type { IncomingMessage, ServerResponse } from "node:http";

/**
 * HTTP/1.1: an answer written before the request body has arrived says `Connection: close`.
 *
 * connect-node answers an RPC whose message is over readMaxBytes as soon as it knows, then stops
 * reading and destroys the request, which resets the socket. Its answer said keep-alive, so a
 * client that sends its next request on the same connection gets ECONNRESET instead of an answer
 * (seen with gRPC-Web and Connect-JSON clients after a MESSAGE_TOO_LARGE). The REST routes' 413
 * closes the same way (reply.ts, sendJsonAndClose).
 */
export function closeAfterEarlyAnswer(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const writeHead = res.writeHead.bind(res) as (...args: unknown[]) => ServerResponse;
    res.writeHead = ((...args: unknown[]) => {
      if (!req.complete) res.shouldKeepAlive = false;
      return writeHead(...args);
    }) as typeof res.writeHead;
    handler(req, res);
  };
}
