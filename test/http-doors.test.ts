import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Door } from "../gen/hazard/stream/v1/session_pb.js";
import { SessionService } from "../gen/hazard/stream/v1/session_service_pb.js";
import { ClassFilterSchema, ErrorCode, ErrorDetailSchema, FrameSchema, SessionConfigSchema } from "../gen/hazard/stream/v1/types_pb.js";
import { eventually, getJson, postJson, RawSse, WsClient, type Json } from "./support/http-clients.js";
import { sceneJpeg } from "./support/images.js";
import { startServer, type TestServer } from "./support/server.js";

/**
 * The REST, SSE and WebSocket routes are a translation layer over the Connect services: a session
 * is one session whichever door touches it, and the same bad input is refused the same way.
 */
describe("one implementation behind every door (real server)", () => {
  let server: TestServer;
  let grpc: Client<typeof SessionService>;
  let jpeg: Uint8Array;

  beforeAll(async () => {
    server = await startServer({ STREAMING_DEFAULT_FPS: "30" });
    grpc = createClient(SessionService, createGrpcTransport({ baseUrl: server.baseUrl }));
    jpeg = (await sceneJpeg(11)).bytes;
  });
  let closed = false;
  afterAll(() => (closed ? undefined : server.close()));

  const apiErr = (e: unknown) => {
    const err = ConnectError.from(e);
    const detail = err.findDetails(ErrorDetailSchema)[0];
    return { code: err.code, errorCode: detail ? ErrorCode[detail.code] : undefined, field: detail?.field, message: err.rawMessage };
  };

  it("a session created over REST is visible and configurable over gRPC, and a gRPC frame produces an SSE event", async () => {
    const created = await postJson(`${server.baseUrl}/stream/sessions`, { fps_limit: 20, confidence_threshold: 0.3 });
    expect(created.status).toBe(201);
    const clientId = String(created.json.client_id);

    const { session } = await grpc.getSession({ clientId });
    expect(session?.door).toBe(Door.SESSION_API);
    expect(session?.config?.fpsLimit).toBe(20);
    expect(session?.config?.confidenceThreshold).toBe(0.3);

    const sse = new RawSse(`${server.baseUrl}/stream/events/${clientId}`);
    await sse.headersReceived;
    const updated = await grpc.updateSessionConfig({
      clientId,
      config: create(SessionConfigSchema, { classFilter: create(ClassFilterSchema, { classNames: ["crack"] }) }),
    });
    expect(updated.session?.configVersion).toBe(2);
    expect(await sse.waitFor((m) => m.type === "config_applied")).toMatchObject({ config_version: 2, config: { classes: ["crack"], fps_limit: 20 } });
    expect((await getJson(`${server.baseUrl}/stream/sessions/${clientId}`)).json).toMatchObject({ config: { classes: ["crack"] } });

    const submitted = await grpc.submitFrame({ clientId, frame: create(FrameSchema, { frameId: "g1", imageData: jpeg }) });
    expect(submitted.accepted).toBe(true);
    const ev = await sse.waitFor((m) => m.type === "detection_result");
    const data = ev.data as Json;
    expect(data.frame_id).toBe("g1");
    expect(data.config_version).toBe(2);
    expect((data.detections as Json[]).length).toBeGreaterThan(0);
    expect((data.detections as Json[]).every((d) => d.class_name === "crack")).toBe(true);

    // One set of counters, whichever door reads them.
    await eventually(async () => {
      const rest = (await getJson(`${server.baseUrl}/stream/sessions/${clientId}/stats`)).json;
      const { stats } = await grpc.getSessionStats({ clientId });
      expect(rest).toMatchObject({ frames_received: 1, frames_processed: 1 });
      expect([Number(stats?.framesReceived), Number(stats?.framesProcessed)]).toEqual([1, 1]);
    });

    await grpc.deleteSession({ clientId });
    expect(await sse.waitFor((m) => m.type === "session_ended")).toMatchObject({ reason: "DELETED" });
    expect((await getJson(`${server.baseUrl}/stream/sessions/${clientId}`)).status).toBe(404);
  });

  it("refuses the same bad input with the same code, field and message on gRPC, Connect and REST", async () => {
    const connect = createClient(SessionService, createConnectTransport({ baseUrl: server.baseUrl, httpVersion: "1.1" }));
    for (const [config, json] of [
      [create(SessionConfigSchema, { fpsLimit: 100 }), { fps_limit: 100 }],
      [create(SessionConfigSchema, { confidenceThreshold: 1.5 }), { confidence_threshold: 1.5 }],
      [create(SessionConfigSchema, { classFilter: create(ClassFilterSchema, { classNames: ["giraffe"] }) }), { classes: ["giraffe"] }],
    ] as const) {
      const viaGrpc = await grpc.createSession({ config }).then(() => undefined, apiErr);
      const viaConnect = await connect.createSession({ config }).then(() => undefined, apiErr);
      const rest = await postJson(`${server.baseUrl}/stream/sessions`, json);
      expect(viaGrpc).toMatchObject({ code: Code.InvalidArgument, errorCode: "INVALID_CONFIG" });
      expect(viaConnect).toEqual(viaGrpc);
      expect(rest.status).toBe(400);
      expect(rest.json).toMatchObject({ type: "error", error_code: viaGrpc?.errorCode, field: viaGrpc?.field, error: viaGrpc?.message });
    }

    const notFound = await grpc.getSessionStats({ clientId: "nope" }).then(() => undefined, apiErr);
    const rest = await getJson(`${server.baseUrl}/stream/sessions/nope/stats`);
    expect(notFound).toMatchObject({ code: Code.NotFound, errorCode: "SESSION_NOT_FOUND" });
    expect([rest.status, rest.json.error_code, rest.json.error]).toEqual([404, "SESSION_NOT_FOUND", notFound?.message]);
  });

  it("lists a WebSocket's session over gRPC under the WEBSOCKET door, and counts it in /stream/stats", async () => {
    const ws = new WsClient(`ws://127.0.0.1:${server.address.port}/stream/detection?session_info=true`);
    await ws.opened;
    const clientId = String((await ws.next()).client_id);
    const { session } = await grpc.getSession({ clientId });
    expect(session?.door).toBe(Door.WEBSOCKET);
    const stats = (await getJson(`${server.baseUrl}/stream/stats`)).json;
    expect((stats.sessions_by_door as Json).WEBSOCKET).toBeGreaterThanOrEqual(1);

    // A frame submitted over gRPC into the WebSocket's session is answered on the WebSocket.
    await grpc.submitFrame({ clientId, frame: create(FrameSchema, { frameId: "from-grpc", imageData: jpeg }) });
    const msg = await ws.next();
    expect(msg).toMatchObject({ type: "detection_result", data: { frame_id: "from-grpc" } });
    ws.close();
  });

  // Last: it closes the server.
  it("on shutdown, SSE streams end with session_ended SHUTDOWN and WebSockets close with 1001", async () => {
    const created = await postJson(`${server.baseUrl}/stream/sessions`, {});
    const sse = new RawSse(`${server.baseUrl}/stream/events/${String(created.json.client_id)}`);
    await sse.headersReceived;
    const ws = new WsClient(`ws://127.0.0.1:${server.address.port}/stream/detection`);
    await ws.opened;
    closed = true;
    await server.close();
    expect(await ws.closedWith()).toEqual({ code: 1001, reason: "server shutting down" });
    await sse.done;
    expect(sse.json().at(-1)).toEqual({ type: "session_ended", reason: "SHUTDOWN" });
  });
});
