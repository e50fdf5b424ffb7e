import { createHash, timingSafeEqual } from "node:crypto";
import { createContextKey, type Interceptor } from "@connectrpc/connect";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { ErrorCode } from "../../gen/hazard/stream/v1/types_pb.js";
import { apiError } from "./errors.js";

/**
 * API keys (STREAMING_API_KEYS), checked by one interceptor on every router: the network one
 * (gRPC, gRPC-Web, Connect) and the in-process one the REST, SSE and WebSocket routes call through
 * (they forward the caller's key as a header, see http/credentials.ts). So there is one place that
 * decides, whatever the door.
 */

/**
 * Who owns a session: a hash of the API key that created it ("" when keys are off). Sessions
 * store this, never the key, so a dump of Redis does not hand out credentials. 128 bits of SHA-256
 * is plenty to tell a handful of operator-issued keys apart.
 */
export type OwnerId = string;

/** The caller's owner id, set by the auth interceptor ("" when keys are off, or for health checks). */
export const callerKey = createContextKey<OwnerId>("", { description: "owner id (API key hash) of the caller" });

/** Headers that carry a key; the HTTP adapter forwards a query-string key as X_API_KEY. */
export const AUTHORIZATION = "authorization";
export const X_API_KEY = "x-api-key";

/** Services answered without a key: load balancers and Kubernetes probes carry none. */
const OPEN_SERVICES = new Set<string>([Health.typeName]);

const digest = (key: string): Buffer => createHash("sha256").update(key, "utf8").digest();

export function ownerIdOf(key: string): OwnerId {
  return digest(key).subarray(0, 16).toString("base64url");
}

/** The key a request presents: `Authorization: Bearer K`, else `x-api-key: K`. */
export function presentedKey(header: Headers): string | undefined {
  const auth = header.get(AUTHORIZATION);
  const bearer = auth === null ? undefined : /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(auth)?.[1];
  if (bearer !== undefined) return bearer;
  const key = header.get(X_API_KEY)?.trim();
  return key === undefined || key === "" ? undefined : key;
}

/** The configured keys, compared in constant time. */
export class ApiKeys {
  private readonly digests: Buffer[];

  constructor(keys: readonly string[]) {
    this.digests = keys.map(digest);
  }

  get enabled(): boolean {
    return this.digests.length > 0;
  }

  /**
   * Whether `key` is one of the configured keys. Both sides are hashed first, so the comparison
   * sees equal lengths whatever was sent, and every configured key is compared (no early exit):
   * the time taken says nothing about how close a guess was, or which key it resembled.
   */
  matches(key: string): boolean {
    const presented = digest(key);
    let hit = false;
    for (const d of this.digests) hit = timingSafeEqual(d, presented) || hit;
    return hit;
  }
}

/**
 * Refuses calls without a configured key (UNAUTHENTICATED) and tells the services who calls
 * (`callerKey`), so sessions can be bound to the key that created them. With no keys configured it
 * lets everything through as owner "". Health stays open; reflection needs a key like the API
 * (grpcurl sends `-H` headers with its reflection calls too).
 */
export function authInterceptor(keys: ApiKeys): Interceptor {
  return (next) => async (req) => {
    if (!keys.enabled || OPEN_SERVICES.has(req.service.typeName)) return next(req);
    const key = presentedKey(req.header);
    if (key === undefined) {
      throw apiError(ErrorCode.UNAUTHENTICATED, "an API key is required: send Authorization: Bearer <key> or x-api-key: <key>");
    }
    if (!keys.matches(key)) throw apiError(ErrorCode.UNAUTHENTICATED, "the API key is not valid");
    req.contextValues.set(callerKey, ownerIdOf(key));
    return next(req);
  };
}

/** Loopback addresses, where an open server is only reachable from this machine. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h === "::1" || /^127(?:\.\d{1,3}){3}$/.test(h) || h === "::ffff:127.0.0.1";
}
