import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { createCorsPolicy, withCors } from "../src/http/cors.js";
import { parseCorsOrigins } from "../src/http/http-config.js";
import { RawSse } from "./support/http-clients.js";
import { startServer, type TestServer } from "./support/server.js";

const APP = "https://app.example.com";
const EVIL = "https://evil.example";

const preflight = (url: string, origin: string, method = "POST", headers = "content-type") =>
  fetch(url, {
    method: "OPTIONS",
    headers: { Origin: origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers },
  });

/** Whether a WebSocket from `origin` is accepted (undefined: no Origin header, like non-browser clients). */
function wsAccepted(url: string, origin?: string): Promise<boolean | number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, origin ? { origin } : {});
    ws.once("open", () => {
      ws.close();
      resolve(true);
    });
    ws.once("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
    ws.once("error", () => resolve(false));
  });
}

describe("CORS policy (unit: the wrapper around any handler)", () => {
  let server: http.Server;
  let url: string;
  let policy = createCorsPolicy([]);

  beforeAll(async () => {
    server = http.createServer(
      withCors((_req, res) => {
        res.writeHead(200, { "Content-Type": "text/plain" });
        res.end("ok");
      }, { allowOrigin: (o) => policy.allowOrigin(o), allowsWebSocket: (o, h) => policy.allowsWebSocket(o, h) }),
    );
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/x`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it("parses CORS_ORIGINS as a comma list", () => {
    expect(parseCorsOrigins(" https://a.example/ , http://localhost:3000,, ")).toEqual(["https://a.example", "http://localhost:3000"]);
    expect(parseCorsOrigins(undefined)).toEqual([]);
  });

  it("by default allows no other origin: no CORS headers, preflight refused", async () => {
    policy = createCorsPolicy([]);
    const res = await fetch(url, { headers: { Origin: APP } });
    expect(res.status).toBe(200); // served; the browser withholds it without the header
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
    expect((await preflight(url, APP)).status).toBe(403);
    expect(policy.allowsWebSocket(APP, "127.0.0.1:8080")).toBe(false);
    expect(policy.allowsWebSocket("http://127.0.0.1:8080", "127.0.0.1:8080")).toBe(true); // same origin
    expect(policy.allowsWebSocket(undefined, "127.0.0.1:8080")).toBe(true); // not a browser
  });

  it("allows any origin only when CORS_ORIGINS is *", async () => {
    policy = createCorsPolicy(["*"]);
    const res = await fetch(url, { headers: { Origin: EVIL } });
    expect(res.headers.get("access-control-allow-origin")).toBe("*");
    const pre = await preflight(url, EVIL);
    expect(pre.status).toBe(204);
    expect(pre.headers.get("access-control-allow-origin")).toBe("*");
    expect(policy.allowsWebSocket(EVIL, "127.0.0.1:8080")).toBe(true);
  });

  it("answers requests without Origin (curl, servers) with no CORS headers", async () => {
    policy = createCorsPolicy([APP]);
    const res = await fetch(url);
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
  });
});

describe("CORS on the live server (CORS_ORIGINS set): Connect, REST, SSE and WebSocket", () => {
  let server: TestServer;
  let base: string;

  beforeAll(async () => {
    server = await startServer({ CORS_ORIGINS: `${APP},http://localhost:3000` });
    base = server.baseUrl;
  });
  afterAll(() => server.close());

  it.each([
    ["a REST route", "/stream/sessions", "POST", "content-type"],
    ["a REST route with PATCH", "/stream/sessions/abc/config", "PATCH", "content-type"],
    ["the SSE route on resume", "/stream/events/abc", "GET", "last-event-id"],
    ["a Connect RPC", "/hazard.stream.v1.DetectionService/Detect", "POST", "content-type,connect-protocol-version,connect-timeout-ms"],
    ["a gRPC-Web RPC", "/hazard.stream.v1.SessionService/GetSession", "POST", "content-type,x-grpc-web,x-user-agent,grpc-timeout"],
  ])("answers the preflight of %s", async (_name, path, method, headers) => {
    const res = await preflight(base + path, APP, method, headers);
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe(APP);
    expect(res.headers.get("vary")).toContain("Origin");
    const allowedMethods = (res.headers.get("access-control-allow-methods") ?? "").split(", ");
    expect(allowedMethods).toContain(method);
    const allowedHeaders = (res.headers.get("access-control-allow-headers") ?? "").toLowerCase().split(", ");
    for (const h of headers.split(",")) expect(allowedHeaders).toContain(h);
    expect(Number(res.headers.get("access-control-max-age"))).toBeGreaterThan(0);
  });

  it("refuses the preflight of an origin that is not listed", async () => {
    const res = await preflight(`${base}/stream/sessions`, EVIL);
    expect(res.status).toBe(403);
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("adds the CORS headers to REST, Connect and SSE responses for a listed origin only", async () => {
    const rest = await fetch(`${base}/stream/sessions`, {
      method: "POST",
      headers: { Origin: APP, "Content-Type": "application/json" },
      body: "{}",
    });
    expect(rest.status).toBe(201);
    expect(rest.headers.get("access-control-allow-origin")).toBe(APP);
    expect(rest.headers.get("access-control-expose-headers")).toContain("Location");
    const id = String(((await rest.json()) as { client_id: string }).client_id);

    const connect = await fetch(`${base}/hazard.stream.v1.SessionService/GetSession`, {
      method: "POST",
      headers: { Origin: APP, "Content-Type": "application/json", "Connect-Protocol-Version": "1" },
      body: JSON.stringify({ clientId: id }),
    });
    expect(connect.status).toBe(200);
    expect(connect.headers.get("access-control-allow-origin")).toBe(APP);
    expect(connect.headers.get("access-control-expose-headers")).toContain("Grpc-Status");

    const sse = new RawSse(`${base}/stream/events/${id}`, { Origin: "http://localhost:3000" });
    await sse.headersReceived;
    expect(sse.status).toBe(200);
    sse.close();

    const other = await fetch(`${base}/stream/sessions/${id}`, { headers: { Origin: EVIL } });
    expect(other.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("lets WebSockets in from listed origins, the server's own origin and non-browsers only", async () => {
    const url = `ws://127.0.0.1:${server.address.port}/stream/detection`;
    expect(await wsAccepted(url, APP)).toBe(true);
    expect(await wsAccepted(url, `http://127.0.0.1:${server.address.port}`)).toBe(true);
    expect(await wsAccepted(url)).toBe(true);
    expect(await wsAccepted(url, EVIL)).toBe(403);
  });
});
