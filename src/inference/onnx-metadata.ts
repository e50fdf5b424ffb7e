import { open } from "node:fs/promises";

/** The file is not a readable ONNX model; the message is safe to show (it names no internals). */
export class OnnxFormatError extends Error {
  override name = "OnnxFormatError";
}

// ModelProto field numbers (onnx.proto): metadata_props is repeated StringStringEntryProto.
const MODEL_METADATA_PROPS = 14;
const ENTRY_KEY = 1;
const ENTRY_VALUE = 2;
const MAX_ENTRY_BYTES = 16 << 20;

/**
 * Reads ModelProto.metadata_props from an ONNX file. onnxruntime-node exposes input/output shapes but
 * not the custom metadata map (microsoft/onnxruntime#16547), so this walks the top-level protobuf
 * fields itself: a few small positional reads per field, skipping the graph and its initializers by
 * their length prefix without reading them — cheap even for a model of hundreds of megabytes.
 */
export async function readOnnxMetadataProps(path: string): Promise<Map<string, string>> {
  const props = new Map<string, string>();
  const file = await open(path, "r");
  try {
    const size = (await file.stat()).size;
    const head = Buffer.alloc(24);
    let pos = 0;
    while (pos < size) {
      const { bytesRead } = await file.read(head, 0, Math.min(head.length, size - pos), pos);
      const reader = new ProtoReader(head.subarray(0, bytesRead));
      const { field, wire } = reader.tag();
      if (wire === 2) {
        const len = reader.varint();
        const start = pos + reader.pos;
        if (start + len > size) throw new OnnxFormatError("the model file is truncated or not an ONNX model");
        if (field === MODEL_METADATA_PROPS) {
          if (len > MAX_ENTRY_BYTES) throw new OnnxFormatError("an ONNX metadata entry is implausibly large");
          const entry = Buffer.alloc(len);
          await file.read(entry, 0, len, start);
          const [key, value] = readEntry(entry);
          props.set(key, value);
        }
        pos = start + len;
      } else {
        reader.skip(wire);
        pos += reader.pos;
      }
    }
  } finally {
    await file.close();
  }
  return props;
}

function readEntry(buf: Uint8Array): [string, string] {
  const reader = new ProtoReader(buf);
  let key = "";
  let value = "";
  while (reader.pos < buf.length) {
    const { field, wire } = reader.tag();
    if (wire !== 2) {
      reader.skip(wire);
      continue;
    }
    const text = reader.bytes(reader.varint()).toString("utf8");
    if (field === ENTRY_KEY) key = text;
    else if (field === ENTRY_VALUE) value = text;
  }
  return [key, value];
}

class ProtoReader {
  pos = 0;
  constructor(private readonly buf: Uint8Array) {}

  tag(): { field: number; wire: number } {
    const tag = this.varint();
    const field = Math.floor(tag / 8);
    if (field === 0) throw new OnnxFormatError("not an ONNX model (bad protobuf field)");
    return { field, wire: tag % 8 };
  }

  varint(): number {
    // Multiplication, not bit shifts: lengths of multi-GB models exceed 32 bits.
    let value = 0;
    for (let shift = 1; ; shift *= 128) {
      if (this.pos >= this.buf.length || shift > 2 ** 49) {
        throw new OnnxFormatError("the model file is truncated or not an ONNX model");
      }
      const b = this.buf[this.pos++] ?? 0;
      value += (b & 0x7f) * shift;
      if (b < 0x80) return value;
    }
  }

  bytes(len: number): Buffer {
    if (this.pos + len > this.buf.length) throw new OnnxFormatError("an ONNX metadata entry is truncated");
    const out = Buffer.from(this.buf.buffer, this.buf.byteOffset + this.pos, len);
    this.pos += len;
    return out;
  }

  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 5) this.pos += 4;
    else if (wire === 2) this.pos += this.varint();
    else throw new OnnxFormatError("not an ONNX model (unsupported protobuf wire type)");
  }
}
