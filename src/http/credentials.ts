import { AUTHORIZATION, X_API_KEY } from "../rpc/auth.js";
import type { NodeRequest } from "./node-types.js";

/** The query parameter that carries an API key where a browser cannot set headers (WebSocket, EventSource). */
export const API_KEY_PARAM = "api_key";

/**
 * The caller's credentials as headers for the in-process call, so the services' auth interceptor
 * decides for the REST, SSE and WebSocket routes exactly as for gRPC. The adapter does not judge
 * the key itself. Headers win over `?api_key=`, which browsers need for WebSocket and EventSource
 * (and which every route accepts, for symmetry); a key in a URL ends up in proxy logs and browser
 * history, so clients that can send a header should.
 */
export function credentialHeaders(req: NodeRequest, query: URLSearchParams): Record<string, string> {
  const out: Record<string, string> = {};
  const auth = req.headers[AUTHORIZATION];
  if (typeof auth === "string") out[AUTHORIZATION] = headerSafe(auth);
  const header = req.headers[X_API_KEY];
  const key = (Array.isArray(header) ? header[0] : header) ?? query.get(API_KEY_PARAM) ?? undefined;
  if (key !== undefined) out[X_API_KEY] = headerSafe(key);
  return out;
}

/**
 * A query string can carry what no header may (CR, LF, NUL), and a Headers object throws on it.
 * Configured keys are visible ASCII, so such a value is wrong anyway: it is passed on encoded, to
 * fail the check as UNAUTHENTICATED like any other wrong key.
 */
function headerSafe(value: string): string {
  return /^[\x20-\x7e]*$/.test(value) ? value : Buffer.from(value, "utf8").toString("base64url");
}
