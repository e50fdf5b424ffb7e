import type { OutgoingHttpHeaders } from "node:http";
import type { NodeRequest, NodeResponse } from "./node-types.js";

/** HTTP/1.x only: HTTP/2 forbids connection-specific headers (Node throws on them). */
export function isHttp1(req: NodeRequest): boolean {
  return req.httpVersionMajor < 2;
}

export function sendJson(res: NodeResponse, status: number, body: object, headers: OutgoingHttpHeaders = {}): void {
  if (res.headersSent) {
    // Too late for a status (an SSE stream already started): just end.
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, {
    // RFC 9110: a 401 names the scheme it wants (API keys as bearer tokens, RFC 6750).
    ...(status === 401 ? { "WWW-Authenticate": 'Bearer realm="hazard-stream"' } : {}),
    ...headers,
    "Content-Type": "application/json; charset=utf-8",
    "Content-Length": Buffer.byteLength(text),
    "Cache-Control": "no-store",
  });
  res.end(text);
}

/**
 * Answers without reading the rest of the request body (it was too large, or unusable), and on
 * HTTP/1.1 closes the connection afterwards: otherwise Node would read and discard whatever the
 * client still sends, which is what the limit is there to prevent.
 */
export function sendJsonAndClose(req: NodeRequest, res: NodeResponse, status: number, body: object): void {
  sendJson(res, status, body, isHttp1(req) ? { Connection: "close" } : {});
}
