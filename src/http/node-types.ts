import type { ConnectNodeAdapterOptions } from "@connectrpc/connect-node";

/**
 * The request and response types of connect-node's handler (HTTP/1.1 or HTTP/2 compat API). The
 * REST and SSE routes serve both: with TLS, browsers reach them over HTTP/2 (ALPN).
 */
export type NodeHandler = NonNullable<ConnectNodeAdapterOptions["fallback"]>;
export type NodeRequest = Parameters<NodeHandler>[0];
export type NodeResponse = Parameters<NodeHandler>[1];
