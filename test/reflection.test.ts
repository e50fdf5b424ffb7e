import { clone, createFileRegistry, fromBinary, toBinary, type DescService } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { Code, createClient, createRouterTransport, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import * as v1 from "../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { DetectionService } from "../gen/hazard/stream/v1/detection_service_pb.js";
import { SessionService } from "../gen/hazard/stream/v1/session_service_pb.js";
import { HealthState } from "../src/rpc/health-state.js";
import { ReflectionIndex } from "../src/rpc/reflection-index.js";
import { createReflectionServices, type ReflectionQuery as Query } from "../src/rpc/reflection-service.js";
import { loadDocumentedDescriptors } from "../src/rpc/reflection-source-info.js";
import { opsRoutes, startOpsServer, type OpsServer } from "./support/ops-server.js";
import { hasPythonGrpc, PYTHON_SKIP, runPython } from "./support/python-grpc.js";

const SERVED = [
  "hazard.stream.v1.DetectionService",
  "hazard.stream.v1.SessionService",
  "grpc.health.v1.Health",
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
];
/** detection_service.proto first, then its imports breadth-first, as grpc-go sends them. */
const DETECTION_CLOSURE = [
  "hazard/stream/v1/detection_service.proto",
  "hazard/stream/v1/session.proto",
  "hazard/stream/v1/types.proto",
  "google/protobuf/timestamp.proto",
  "google/protobuf/struct.proto",
];

type Version = "v1" | "v1alpha";
type Answer = v1.ServerReflectionResponse;

/** Asks every query on ONE stream, as grpcurl does, and returns the answers in order (as v1). */
async function ask(transport: Transport, version: Version, queries: Query[], host = ""): Promise<Answer[]> {
  async function* requests() {
    for (const messageRequest of queries) yield { host, messageRequest };
  }
  const out: Answer[] = [];
  if (version === "v1") {
    for await (const res of createClient(v1.ServerReflection, transport).serverReflectionInfo(requests())) out.push(res);
  } else {
    for await (const res of createClient(v1alpha.ServerReflection, transport).serverReflectionInfo(requests())) {
      // The same messages under another package (same field numbers), so its bytes decode as v1.
      out.push(fromBinary(v1.ServerReflectionResponseSchema, toBinary(v1alpha.ServerReflectionResponseSchema, res)));
    }
  }
  return out;
}

function filesOf(answer: Answer | undefined): FileDescriptorProto[] {
  if (answer?.messageResponse.case !== "fileDescriptorResponse") {
    throw new Error(`expected files, got ${answer?.messageResponse.case}: ${JSON.stringify(answer?.messageResponse.value)}`);
  }
  return answer.messageResponse.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b));
}

function errorOf(answer: Answer | undefined): [number, string] | undefined {
  return answer?.messageResponse.case === "errorResponse"
    ? [answer.messageResponse.value.errorCode, answer.messageResponse.value.errorMessage]
    : undefined;
}

const symbol = (value: string): Query => ({ case: "fileContainingSymbol", value });

function leadingComment(file: FileDescriptorProto | undefined, path: number[]): string | undefined {
  return file?.sourceCodeInfo?.location.find((l) => l.path.join(".") === path.join("."))?.leadingComments;
}

/** The reflection contract, for either protocol version over any transport. */
function reflectionContract(version: Version, transport: () => Transport) {
  it(`${version}: lists every served service, Health and both reflection services included`, async () => {
    const [listed] = await ask(transport(), version, [{ case: "listServices", value: "" }]);
    expect(listed.messageResponse.case).toBe("listServicesResponse");
    const names = listed.messageResponse.case === "listServicesResponse" ? listed.messageResponse.value.service : [];
    expect(names.map((s) => s.name)).toEqual(SERVED);
  });

  it(`${version}: resolves DetectionService to its file and every import, usable as a descriptor set`, async () => {
    const [answer] = await ask(transport(), version, [symbol("hazard.stream.v1.DetectionService")]);
    const files = filesOf(answer);
    expect(files.map((f) => f.name)).toEqual(DETECTION_CLOSURE);
    // What grpcurl does next: build descriptors from the answer alone; this throws on any import
    // that was not sent.
    const byName = new Map(files.map((f) => [f.name, f]));
    const registry = createFileRegistry(files[0], (name) => byName.get(name));
    const service = registry.getService("hazard.stream.v1.DetectionService");
    expect(service?.methods.map((m) => [m.name, m.methodKind, m.input.typeName])).toEqual([
      ["StreamDetections", "bidi_streaming", "hazard.stream.v1.StreamDetectionsRequest"],
      ["Detect", "unary", "hazard.stream.v1.DetectRequest"],
    ]);
    expect(registry.getMessage("hazard.stream.v1.Frame")?.fields.map((f) => f.name)).toContain("image_data");
  });

  it(`${version}: finds the declaring file of methods, messages, enums, nested types, fields and enum values`, async () => {
    const cases: [string, string][] = [
      ["hazard.stream.v1.DetectionService.Detect", "hazard/stream/v1/detection_service.proto"],
      ["hazard.stream.v1.SessionService", "hazard/stream/v1/session_service.proto"],
      ["hazard.stream.v1.Frame", "hazard/stream/v1/types.proto"],
      ["hazard.stream.v1.Frame.image_data", "hazard/stream/v1/types.proto"],
      ["hazard.stream.v1.ErrorCode", "hazard/stream/v1/types.proto"],
      ["hazard.stream.v1.ERROR_CODE_INVALID_IMAGE", "hazard/stream/v1/types.proto"],
      ["hazard.stream.v1.Door", "hazard/stream/v1/session.proto"],
      ["grpc.health.v1.HealthCheckResponse.ServingStatus", "grpc/health/v1/health.proto"],
      ["grpc.health.v1.HealthCheckResponse.SERVING", "grpc/health/v1/health.proto"],
      [`grpc.reflection.${version}.ServerReflection.ServerReflectionInfo`, `grpc/reflection/${version}/reflection.proto`],
      ["google.protobuf.Timestamp", "google/protobuf/timestamp.proto"],
      [".hazard.stream.v1.DetectRequest", "hazard/stream/v1/detection_service.proto"],
    ];
    const answers = await ask(transport(), version, cases.map(([s]) => symbol(s)));
    expect(answers.map((a) => filesOf(a)[0]?.name)).toEqual(cases.map(([, file]) => file));
    for (const a of answers) {
      const names = filesOf(a).map((f) => f.name);
      expect(new Set(names).size).toBe(names.length);
    }
  });

  it(`${version}: descriptors carry the proto comments (source info), as grpcurl describe and Postman show them`, async () => {
    const [answer] = await ask(transport(), version, [symbol("hazard.stream.v1.DetectionService")]);
    const [file] = filesOf(answer);
    // Paths as in descriptor.proto: 6 = FileDescriptorProto.service, 2 = ServiceDescriptorProto.method.
    expect(leadingComment(file, [6, 0])).toMatch(/^ Road-hazard detection on video frames/);
    expect(leadingComment(file, [6, 0, 2, 1])).toMatch(/^ Detects hazards in one image\./);
    const [types] = filesOf((await ask(transport(), version, [symbol("hazard.stream.v1.Frame.image_data")]))[0]);
    expect(types.sourceCodeInfo?.location.length).toBeGreaterThan(0);
  });

  it(`${version}: file_by_filename answers the file with its imports`, async () => {
    const [answer] = await ask(transport(), version, [{ case: "fileByFilename", value: "hazard/stream/v1/types.proto" }]);
    expect(filesOf(answer).map((f) => f.name)).toEqual(["hazard/stream/v1/types.proto", "google/protobuf/struct.proto"]);
  });

  it(`${version}: failures are error_responses and the stream goes on; host and request are echoed`, async () => {
    const queries: Query[] = [
      symbol("hazard.stream.v1.NoSuchThing"),
      { case: "fileByFilename", value: "no/such.proto" },
      { case: "fileContainingExtension", value: { containingType: "hazard.stream.v1.Frame", extensionNumber: 100 } },
      { case: "allExtensionNumbersOfType", value: "hazard.stream.v1.NoSuchMessage" },
      { case: "allExtensionNumbersOfType", value: "hazard.stream.v1.Frame" },
      { case: undefined },
      symbol("hazard.stream.v1.DetectionService"),
    ];
    const answers = await ask(transport(), version, queries, "hazard.example:443");
    expect(answers.map(errorOf).map((e) => e?.[0])).toEqual([
      Code.NotFound,
      Code.NotFound,
      Code.NotFound,
      Code.NotFound,
      undefined,
      Code.Unimplemented,
      undefined,
    ]);
    expect(errorOf(answers[0])?.[1]).toBe('symbol "hazard.stream.v1.NoSuchThing" not found');
    expect(answers[4].messageResponse).toEqual({
      case: "allExtensionNumbersResponse",
      value: expect.objectContaining({ baseTypeName: "hazard.stream.v1.Frame", extensionNumber: [] }),
    });
    expect(filesOf(answers[6])[0]?.name).toBe("hazard/stream/v1/detection_service.proto");
    for (const [i, a] of answers.entries()) {
      expect(a.validHost).toBe("hazard.example:443");
      expect(a.originalRequest?.host).toBe("hazard.example:443");
      expect(a.originalRequest?.messageRequest.case).toBe(queries[i].case);
      expect(a.originalRequest?.messageRequest.value).toEqual(
        queries[i].case === "fileContainingExtension" ? expect.objectContaining(queries[i].value) : queries[i].value,
      );
    }
  });
}

describe("reflection, in memory (createRouterTransport)", () => {
  const transport = createRouterTransport(opsRoutes(new HealthState()));
  reflectionContract("v1", () => transport);
  reflectionContract("v1alpha", () => transport);

  it("reads the registry at the first request, so services registered after it are listed", async () => {
    const services: DescService[] = [];
    const reflection = createReflectionServices({ services });
    services.push(DetectionService, Health);
    const t = createRouterTransport((router) => router.service(v1.ServerReflection, reflection.v1));
    const [listed] = await ask(t, "v1", [{ case: "listServices", value: "" }]);
    const names = listed.messageResponse.case === "listServicesResponse" ? listed.messageResponse.value.service : [];
    expect(names.map((s) => s.name)).toEqual([
      "hazard.stream.v1.DetectionService",
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
    ]);
  });
});

describe("reflection's documented descriptors (gen/descriptors.binpb)", () => {
  const documented = loadDocumentedDescriptors();
  const detectionFile = (index: ReflectionIndex) =>
    fromBinary(FileDescriptorProtoSchema, index.encodeWithDependencies(DetectionService.file)[0]);

  it("cover every served file and describe exactly what gen/ serves (npm run generate keeps them in step)", () => {
    const index = new ReflectionIndex([DetectionService, SessionService, Health, v1.ServerReflection, v1alpha.ServerReflection], documented);
    for (const name of DETECTION_CLOSURE) {
      const file = index.fileByName(name);
      if (!file) throw new Error(`${name} is not indexed`);
      const served = fromBinary(FileDescriptorProtoSchema, index.encodeWithDependencies(file)[0]);
      expect(served.sourceCodeInfo?.location.length, name).toBeGreaterThan(0);
      served.sourceCodeInfo = undefined;
      expect(toBinary(FileDescriptorProtoSchema, served), name).toEqual(toBinary(FileDescriptorProtoSchema, file.proto));
    }
  });

  it("a stale descriptor set (the proto changed since) is ignored: the generated descriptor is served, without comments", () => {
    const stale = documented.map((f) => clone(FileDescriptorProtoSchema, f));
    const file = stale.find((f) => f.name === "hazard/stream/v1/detection_service.proto");
    if (!file) throw new Error("detection_service.proto is missing from gen/descriptors.binpb");
    file.service[0].method.pop();
    const served = detectionFile(new ReflectionIndex([DetectionService], stale));
    expect(served.service[0].method.map((m) => m.name)).toEqual(["StreamDetections", "Detect"]);
    expect(served.sourceCodeInfo).toBeUndefined();
    expect(detectionFile(new ReflectionIndex([DetectionService], documented)).sourceCodeInfo).toBeDefined();
  });
});

describe("reflection, real h2c server, connect-node gRPC client", () => {
  let server: OpsServer;
  let transport: Transport;
  beforeAll(async () => {
    server = await startOpsServer();
    transport = createGrpcTransport({ baseUrl: server.baseUrl });
  });
  afterAll(() => server.close());
  reflectionContract("v1", () => transport);
  reflectionContract("v1alpha", () => transport);
});

const pythonSuite = "reflection, real h2c server, python grpcio client";
describe.skipIf(!hasPythonGrpc)(hasPythonGrpc ? pythonSuite : `${pythonSuite} — ${PYTHON_SKIP}`, () => {
  let server: OpsServer;
  beforeAll(async () => {
    server = await startOpsServer();
  });
  afterAll(() => server.close());

  for (const version of ["v1", "v1alpha"] as const) {
    it(`${version}: lists services, resolves DetectionService with its imports, and calls it from the reflected descriptors`, async () => {
      const out = await runPython(["reflect", server.target, version]);
      expect(out).toEqual({
        services: SERVED,
        files: DETECTION_CLOSURE,
        methods: ["StreamDetections", "Detect"],
        detectInput: "hazard.stream.v1.DetectRequest",
        error: [5, 'symbol "hazard.stream.v1.NoSuchThing" not found'],
        echoes: true,
        // grpcio's descriptor_pb2 reads the comments from the reflected file's source_code_info.
        serviceComment: expect.stringMatching(/^ Road-hazard detection on video frames/),
        detectComment: expect.stringMatching(/^ Detects hazards in one image\./),
        // Built from reflection alone and sent; the test server registers no implementation.
        detectCallCode: "UNIMPLEMENTED",
      });
    });
  }
});
