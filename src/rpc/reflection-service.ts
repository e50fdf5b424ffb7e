import { create } from "@bufbuild/protobuf";
import type { DescFile, DescService } from "@bufbuild/protobuf";
import { Code, type ServiceImpl } from "@connectrpc/connect";
import * as v1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { ReflectionIndex } from "./reflection-index.js";
import { loadDocumentedDescriptors } from "./reflection-source-info.js";

/** What both protocol versions ask; their generated request types both fit it. */
export type ReflectionQuery =
  | { case: "fileByFilename"; value: string }
  | { case: "fileContainingSymbol"; value: string }
  | { case: "fileContainingExtension"; value: { containingType: string; extensionNumber: number } }
  | { case: "allExtensionNumbersOfType"; value: string }
  | { case: "listServices"; value: string }
  | { case: undefined; value?: undefined };

/** What both protocol versions answer, as the init shape of `message_response`. */
export type ReflectionAnswer =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | { case: "allExtensionNumbersResponse"; value: { baseTypeName: string; extensionNumber: number[] } }
  | { case: "listServicesResponse"; value: { service: { name: string }[] } }
  | { case: "errorResponse"; value: { errorCode: Code; errorMessage: string } };

export interface ReflectionServices {
  v1: ServiceImpl<typeof v1.ServerReflection>;
  v1alpha: ServiceImpl<typeof v1alpha.ServerReflection>;
}

/**
 * gRPC server reflection (grpc.reflection.v1 and the deprecated v1alpha, which older grpcurl,
 * grpcui and Postman still call) for the services in `registry`, plus both reflection services,
 * with the comments of gen/descriptors.binpb.
 * `registry.services` is read once, at the first request, so it may be a getter over a router that
 * is still being filled.
 */
export function createReflectionServices(registry: { readonly services: readonly DescService[] }): ReflectionServices {
  let index: ReflectionIndex | undefined;
  const answer = (query: ReflectionQuery): ReflectionAnswer => {
    index ??= new ReflectionIndex(
      [...registry.services, v1.ServerReflection, v1alpha.ServerReflection],
      loadDocumentedDescriptors(),
    );
    return answerQuery(index, query);
  };
  return {
    v1: {
      async *serverReflectionInfo(requests) {
        for await (const req of requests) {
          yield create(v1.ServerReflectionResponseSchema, {
            validHost: req.host,
            originalRequest: req,
            messageResponse: answer(req.messageRequest),
          });
        }
      },
    },
    v1alpha: {
      async *serverReflectionInfo(requests) {
        for await (const req of requests) {
          yield create(v1alpha.ServerReflectionResponseSchema, {
            validHost: req.host,
            originalRequest: req,
            messageResponse: answer(req.messageRequest),
          });
        }
      },
    },
  };
}

/**
 * One request's answer. Failures are `error_response`s, not stream errors: a client asks many
 * questions on one stream, and one unknown symbol must not end the others.
 */
export function answerQuery(index: ReflectionIndex, query: ReflectionQuery): ReflectionAnswer {
  const notFound = (what: string): ReflectionAnswer => ({
    case: "errorResponse",
    value: { errorCode: Code.NotFound, errorMessage: `${what} not found` },
  });
  const files = (file: DescFile): ReflectionAnswer => ({
    case: "fileDescriptorResponse",
    value: { fileDescriptorProto: index.encodeWithDependencies(file) },
  });
  switch (query.case) {
    case "listServices":
      return { case: "listServicesResponse", value: { service: index.serviceNames.map((name) => ({ name })) } };
    case "fileByFilename": {
      const file = index.fileByName(query.value);
      return file ? files(file) : notFound(`file "${query.value}"`);
    }
    case "fileContainingSymbol": {
      // Some clients send a leading dot, as names appear inside descriptors.
      const symbol = query.value.replace(/^\./, "");
      const file = index.fileContainingSymbol(symbol);
      return file ? files(file) : notFound(`symbol "${symbol}"`);
    }
    case "fileContainingExtension": {
      const { containingType, extensionNumber } = query.value;
      const file = index.fileContainingExtension(containingType, extensionNumber);
      return file ? files(file) : notFound(`extension ${extensionNumber} of "${containingType}"`);
    }
    case "allExtensionNumbersOfType": {
      const typeName = query.value;
      if (!index.message(typeName)) return notFound(`message type "${typeName}"`);
      return {
        case: "allExtensionNumbersResponse",
        value: { baseTypeName: typeName, extensionNumber: index.extensionNumbers(typeName) },
      };
    }
    default:
      // As grpc-java answers a request kind it does not know (e.g. one added to the protocol later).
      return { case: "errorResponse", value: { errorCode: Code.Unimplemented, errorMessage: "unsupported request" } };
  }
}
