"""A third-party gRPC client for test/health.test.ts and test/reflection.test.ts.

Runs on Debian's python3-grpcio (C-core HTTP/2 stack) and python3-protobuf. Debian ships neither
grpcio-reflection nor grpcio-health-checking, so the message classes are built at run time from the
vendored .proto files, compiled by python3-grpc-tools' protoc, and the RPCs are called through
grpc's generic stubs, exactly as those packages do on the wire.

Usage (prints JSON on stdout, one object per line):
  grpc_ops_client.py PROTO_ROOT reflect TARGET VERSION      VERSION: v1 | v1alpha
  grpc_ops_client.py PROTO_ROOT check TARGET SERVICE
  grpc_ops_client.py PROTO_ROOT watch TARGET SERVICE COUNT
"""
import json
import os
import sys
import tempfile

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_tools import protoc

TIMEOUT_S = 10
VENDORED = [
    "grpc/health/v1/health.proto",
    "grpc/reflection/v1/reflection.proto",
    "grpc/reflection/v1alpha/reflection.proto",
]


def emit(obj):
    print(json.dumps(obj), flush=True)


def build_pool(files):
    """Adds FileDescriptorProtos to a fresh pool in dependency order; fails on a missing import."""
    pool = descriptor_pool.DescriptorPool()
    pending = {f.name: f for f in files}
    added = set()
    while pending:
        ready = [f for f in pending.values() if all(d in added for d in f.dependency)]
        if not ready:
            raise SystemExit(f"unresolvable imports: {sorted(pending)} need files nobody sent")
        for f in ready:
            pool.Add(f)
            added.add(f.name)
            del pending[f.name]
    return pool


def vendored_pool(proto_root):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "set.pb")
        args = ["protoc", f"-I{proto_root}", f"--descriptor_set_out={out}", "--include_imports", *VENDORED]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed on the vendored protos")
        with open(out, "rb") as fh:
            fds = descriptor_pb2.FileDescriptorSet.FromString(fh.read())
    return build_pool(fds.file)


def message_class(pool, name):
    return message_factory.MessageFactory(pool).GetPrototype(pool.FindMessageTypeByName(name))


def reflect(pool, channel, version):
    pkg = f"grpc.reflection.{version}"
    Request = message_class(pool, f"{pkg}.ServerReflectionRequest")
    Response = message_class(pool, f"{pkg}.ServerReflectionResponse")
    call = channel.stream_stream(
        f"/{pkg}.ServerReflection/ServerReflectionInfo",
        request_serializer=Request.SerializeToString,
        response_deserializer=Response.FromString,
    )
    requests = [
        Request(host="python-client", list_services=""),
        Request(host="python-client", file_containing_symbol="hazard.stream.v1.DetectionService"),
        Request(host="python-client", file_containing_symbol="hazard.stream.v1.NoSuchThing"),
        Request(host="python-client", file_by_filename="hazard/stream/v1/session_service.proto"),
    ]
    responses = list(call(iter(requests), timeout=TIMEOUT_S))
    listed, files_for_symbol, error, files_by_name = responses
    echoes = all(r.valid_host == "python-client" and r.original_request == q for q, r in zip(requests, responses))

    # What grpcurl does with the answer: load the files into a pool and resolve the service.
    fdps = [descriptor_pb2.FileDescriptorProto.FromString(b) for b in files_for_symbol.file_descriptor_response.file_descriptor_proto]
    fdps += [descriptor_pb2.FileDescriptorProto.FromString(b) for b in files_by_name.file_descriptor_response.file_descriptor_proto]
    reflected = build_pool({f.name: f for f in fdps}.values())
    service = reflected.FindServiceByName("hazard.stream.v1.DetectionService")
    detect = service.FindMethodByName("Detect")

    # A dynamic call built only from the reflected descriptors (the test server leaves it unimplemented).
    DetectRequest = message_factory.MessageFactory(reflected).GetPrototype(detect.input_type)
    DetectResponse = message_factory.MessageFactory(reflected).GetPrototype(detect.output_type)
    request = DetectRequest()
    request.frame.frame_id = "python"
    request.frame.image_data = b"\xff\xd8"
    try:
        channel.unary_unary(
            f"/{service.full_name}/{detect.name}",
            request_serializer=DetectRequest.SerializeToString,
            response_deserializer=DetectResponse.FromString,
        )(request, timeout=TIMEOUT_S)
        detect_code = "OK"
    except grpc.RpcError as err:
        detect_code = err.code().name

    # What grpcurl describe prints above a service and a method: source_code_info's leading comments.
    comments = {tuple(loc.path): loc.leading_comments for loc in fdps[0].source_code_info.location}
    service_index = [s.name for s in fdps[0].service].index(service.name)
    detect_path = (6, service_index, 2, [m.name for m in fdps[0].service[service_index].method].index("Detect"))

    emit({
        "services": [s.name for s in listed.list_services_response.service],
        "files": [f.name for f in fdps[: len(files_for_symbol.file_descriptor_response.file_descriptor_proto)]],
        "methods": [m.name for m in service.methods],
        "detectInput": detect.input_type.full_name,
        "error": [error.error_response.error_code, error.error_response.error_message],
        "echoes": echoes,
        "serviceComment": comments.get((6, service_index)),
        "detectComment": comments.get(detect_path),
        "detectCallCode": detect_code,
    })


def health_stubs(pool, channel):
    Request = message_class(pool, "grpc.health.v1.HealthCheckRequest")
    Response = message_class(pool, "grpc.health.v1.HealthCheckResponse")
    status_name = Response.DESCRIPTOR.enum_types_by_name["ServingStatus"].values_by_number
    kw = {"request_serializer": Request.SerializeToString, "response_deserializer": Response.FromString}
    check = channel.unary_unary("/grpc.health.v1.Health/Check", **kw)
    watch = channel.unary_stream("/grpc.health.v1.Health/Watch", **kw)
    return Request, (lambda r: status_name[r.status].name), check, watch


def main(argv):
    proto_root, command, target, *rest = argv[1:]
    pool = vendored_pool(proto_root)
    with grpc.insecure_channel(target) as channel:
        if command == "reflect":
            reflect(pool, channel, rest[0])
        elif command == "check":
            Request, name, check, _ = health_stubs(pool, channel)
            try:
                emit({"status": name(check(Request(service=rest[0]), timeout=TIMEOUT_S))})
            except grpc.RpcError as err:
                emit({"code": err.code().name})
        elif command == "watch":
            Request, name, _, watch = health_stubs(pool, channel)
            count = int(rest[1])
            stream = watch(Request(service=rest[0]), timeout=TIMEOUT_S)
            for i, response in enumerate(stream):
                emit({"status": name(response)})
                if i + 1 == count:
                    stream.cancel()
                    break
        else:
            raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main(sys.argv)
