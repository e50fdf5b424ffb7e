import { clone, toBinary } from "@bufbuild/protobuf";
import type { DescFile, DescMessage, DescService } from "@bufbuild/protobuf";
import { nestedTypes } from "@bufbuild/protobuf/reflect";
import { FileDescriptorProtoSchema, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";

/**
 * The descriptors behind a set of served services: their files, the files those import
 * (transitively), and every fully-qualified name declared in them. Built once; read-only.
 */
export class ReflectionIndex {
  /** Fully-qualified names of the services, de-duplicated, in the order given. */
  readonly serviceNames: readonly string[];
  readonly #files = new Map<string, DescFile>();
  readonly #symbols = new Map<string, DescFile>();
  readonly #messages = new Map<string, DescMessage>();
  /** Extendee type name → extension field number → declaring file. */
  readonly #extensions = new Map<string, Map<number, DescFile>>();
  readonly #encoded = new Map<DescFile, Uint8Array>();
  /** File name → the same file with source info (comments), from `buf build`. */
  readonly #documented = new Map<string, FileDescriptorProto>();

  /**
   * `documented`: the same files with source info, served in place of the generated ones (which
   * carry no comments) where they describe exactly the same thing.
   */
  constructor(services: Iterable<DescService>, documented: Iterable<FileDescriptorProto> = []) {
    for (const file of documented) this.#documented.set(file.name, file);
    const names = new Set<string>();
    for (const service of services) {
      names.add(service.typeName);
      this.#addFile(service.file);
    }
    this.serviceNames = [...names];
  }

  /** The file declaring `symbol` (a package-qualified name without a leading dot). */
  fileContainingSymbol(symbol: string): DescFile | undefined {
    return this.#symbols.get(symbol);
  }

  /** A file by its path as imported, e.g. "hazard/stream/v1/types.proto". */
  fileByName(name: string): DescFile | undefined {
    return this.#files.get(name);
  }

  /** The message type `typeName`, when it is declared in an indexed file. */
  message(typeName: string): DescMessage | undefined {
    return this.#messages.get(typeName);
  }

  /** The file declaring extension `number` of `typeName`. */
  fileContainingExtension(typeName: string, number: number): DescFile | undefined {
    return this.#extensions.get(typeName)?.get(number);
  }

  /** Field numbers of all known extensions of `typeName`. */
  extensionNumbers(typeName: string): number[] {
    return [...(this.#extensions.get(typeName)?.keys() ?? [])];
  }

  /**
   * `file` serialised, then each file it imports, transitively, breadth-first and de-duplicated
   * (the order grpc-go sends). Clients like grpcurl build a descriptor pool from one answer and
   * fail on a missing import, so every answer carries the whole closure rather than relying on
   * what this stream already sent.
   */
  encodeWithDependencies(file: DescFile): Uint8Array[] {
    const seen = new Set<DescFile>([file]);
    const queue = [file];
    for (let i = 0; i < queue.length; i++) {
      for (const dep of queue[i].dependencies) {
        if (!seen.has(dep)) {
          seen.add(dep);
          queue.push(dep);
        }
      }
    }
    return queue.map((f) => this.#encode(f));
  }

  #encode(file: DescFile): Uint8Array {
    let bytes = this.#encoded.get(file);
    if (!bytes) {
      const generated = toBinary(FileDescriptorProtoSchema, file.proto);
      const documented = this.#documented.get(file.proto.name);
      // A stale descriptor set (proto/ edited, `npm run generate` not run) must not describe an
      // API other than the one served: its comments are used only if all else is identical.
      bytes = documented && sameBytes(withoutSourceInfo(documented), generated) ? toBinary(FileDescriptorProtoSchema, documented) : generated;
      this.#encoded.set(file, bytes);
    }
    return bytes;
  }

  #addFile(file: DescFile): void {
    const name = file.proto.name;
    if (this.#files.has(name)) return;
    this.#files.set(name, file);
    for (const dep of file.dependencies) this.#addFile(dep);
    this.#indexSymbols(file);
  }

  /** Every name protobuf's own registries resolve (protoregistry.Files.FindDescriptorByName). */
  #indexSymbols(file: DescFile): void {
    const add = (symbol: string) => {
      if (!this.#symbols.has(symbol)) this.#symbols.set(symbol, file);
    };
    const pkg = file.proto.package;
    if (pkg) add(pkg);
    for (const desc of nestedTypes(file)) {
      add(desc.typeName);
      switch (desc.kind) {
        case "message":
          this.#messages.set(desc.typeName, desc);
          for (const field of desc.fields) add(`${desc.typeName}.${field.name}`);
          for (const oneof of desc.oneofs) add(`${desc.typeName}.${oneof.name}`);
          break;
        case "enum": {
          // Enum values are scoped like C++ enumerators: siblings of the enum, not children.
          const scope = desc.parent?.typeName ?? pkg;
          for (const value of desc.values) add(scope ? `${scope}.${value.name}` : value.name);
          break;
        }
        case "service":
          for (const method of desc.methods) add(`${desc.typeName}.${method.name}`);
          break;
        case "extension": {
          let byNumber = this.#extensions.get(desc.extendee.typeName);
          if (!byNumber) this.#extensions.set(desc.extendee.typeName, (byNumber = new Map()));
          byNumber.set(desc.number, file);
          break;
        }
      }
    }
  }
}

function withoutSourceInfo(file: FileDescriptorProto): Uint8Array {
  const copy = clone(FileDescriptorProtoSchema, file);
  copy.sourceCodeInfo = undefined;
  return toBinary(FileDescriptorProtoSchema, copy);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}
