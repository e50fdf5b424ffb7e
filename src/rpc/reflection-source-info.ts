import { readFileSync } from "node:fs";
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";

/**
 * `buf build` of proto/ with source info, written by `npm run generate` (CI checks it is fresh).
 * The descriptors protoc-gen-es embeds in gen/ have their comments stripped, like every protobuf
 * runtime's; reflection serves these instead, so grpcurl, grpcui and Postman show the API's docs.
 */
export const DOCUMENTED_DESCRIPTORS_URL = new URL("../../gen/descriptors.binpb", import.meta.url);

/**
 * The files of the descriptor set at `url`; none when it cannot be read, in which case reflection
 * serves the generated descriptors, complete but without comments.
 */
export function loadDocumentedDescriptors(url: URL = DOCUMENTED_DESCRIPTORS_URL): FileDescriptorProto[] {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(url);
  } catch {
    return [];
  }
  return fromBinary(FileDescriptorSetSchema, bytes).file;
}
