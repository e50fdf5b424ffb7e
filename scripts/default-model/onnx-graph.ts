/**
 * A small ONNX graph writer on top of the vendored onnx.proto schema: just what the default model
 * needs (float tensors, int64 shape/axes constants, attributes of the usual kinds). Node and tensor
 * names come from a counter, so the same build steps always serialise to the same bytes.
 */
import { create, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import {
  AttributeProto_AttributeType as AttrType,
  AttributeProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  TensorProto_DataType as DataType,
  TensorProtoSchema,
  ValueInfoProtoSchema,
  type AttributeProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from "../../gen/onnx/onnx_pb.js";

/** Attribute values by their natural TS type; number[] becomes INTS unless floats: true. */
export type AttrValue = number | string | readonly number[] | { readonly floats: readonly number[] } | { readonly float: number };
export type Attrs = Readonly<Record<string, AttrValue>>;
/** A dimension: fixed size or a symbolic name. */
export type Dim = number | string;

export interface ModelSpec {
  readonly opset: number;
  readonly producer: string;
  readonly producerVersion: string;
  readonly docString: string;
  /** Key/value metadata_props, written in this order. */
  readonly metadata: readonly (readonly [string, string])[];
}

export class GraphBuilder {
  private readonly nodes: NodeProto[] = [];
  private readonly initializers: TensorProto[] = [];
  private readonly inputs: ValueInfoProto[] = [];
  private readonly outputs: ValueInfoProto[] = [];
  private readonly constants = new Map<string, string>();
  private counter = 0;

  constructor(readonly name: string) {}

  input(name: string, dims: readonly Dim[]): string {
    this.inputs.push(valueInfo(name, dims));
    return name;
  }

  /** Declares `value` as a graph output named `name` (via Identity, so any value can be exposed). */
  output(value: string, name: string, dims: readonly Dim[]): void {
    this.nodes.push(create(NodeProtoSchema, { opType: "Identity", input: [value], output: [name], name: name }));
    this.outputs.push(valueInfo(name, dims));
  }

  /** A float32 initializer; identical constants are shared. */
  floats(values: ArrayLike<number>, dims: readonly number[] = [values.length]): string {
    const data = Float32Array.from(values);
    return this.initializer(DataType.FLOAT, new Uint8Array(data.buffer), dims);
  }

  scalar(value: number): string {
    return this.floats([value], []);
  }

  /** An int64 initializer (shapes, axes, pads, slice bounds). */
  ints(values: readonly number[], dims: readonly number[] = [values.length]): string {
    const data = BigInt64Array.from(values.map((v) => BigInt(v)));
    return this.initializer(DataType.INT64, new Uint8Array(data.buffer), dims);
  }

  op(opType: string, inputs: readonly string[], attrs: Attrs = {}): string {
    return this.opN(opType, inputs, 1, attrs)[0]!;
  }

  opN(opType: string, inputs: readonly string[], outputs: number, attrs: Attrs = {}): string[] {
    const id = this.counter++;
    const names = Array.from({ length: outputs }, (_, i) => `${opType.toLowerCase()}_${id}${outputs > 1 ? `_${i}` : ""}`);
    this.nodes.push(
      create(NodeProtoSchema, {
        opType,
        name: `${opType}_${id}`,
        input: [...inputs],
        output: names,
        attribute: Object.entries(attrs).map(([key, value]) => attribute(key, value)),
      }),
    );
    return names;
  }

  get nodeCount(): number {
    return this.nodes.length;
  }

  serialize(spec: ModelSpec): Uint8Array {
    const model = create(ModelProtoSchema, {
      // IR version 8 pairs with opset 13–17 (ONNX 1.10–1.12), which every runtime we target reads.
      irVersion: 8n,
      opsetImport: [{ domain: "", version: BigInt(spec.opset) }],
      producerName: spec.producer,
      producerVersion: spec.producerVersion,
      docString: spec.docString,
      graph: {
        name: this.name,
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs,
      },
      metadataProps: spec.metadata.map(([key, value]) => ({ key, value })),
    });
    return toBinary(ModelProtoSchema, model);
  }

  private initializer(dataType: DataType, raw: Uint8Array, dims: readonly number[]): string {
    const key = `${dataType}:${dims.join("x")}:${Buffer.from(raw).toString("base64")}`;
    const known = this.constants.get(key);
    if (known) return known;
    const name = `const_${this.constants.size}`;
    this.constants.set(key, name);
    this.initializers.push(
      create(TensorProtoSchema, { name, dataType, dims: dims.map((d) => BigInt(d)), rawData: raw }),
    );
    return name;
  }
}

function valueInfo(name: string, dims: readonly Dim[]): ValueInfoProto {
  const init: MessageInitShape<typeof ValueInfoProtoSchema> = {
    name,
    type: {
      value: {
        case: "tensorType",
        value: {
          elemType: DataType.FLOAT,
          shape: {
            dim: dims.map((d) =>
              typeof d === "number"
                ? { value: { case: "dimValue" as const, value: BigInt(d) } }
                : { value: { case: "dimParam" as const, value: d } },
            ),
          },
        },
      },
    },
  };
  return create(ValueInfoProtoSchema, init);
}

function attribute(name: string, value: AttrValue): AttributeProto {
  if (typeof value === "number") {
    if (!Number.isInteger(value)) throw new Error(`attribute ${name}: use { float } for non-integers`);
    return create(AttributeProtoSchema, { name, type: AttrType.INT, i: BigInt(value) });
  }
  if (typeof value === "string") {
    return create(AttributeProtoSchema, { name, type: AttrType.STRING, s: new TextEncoder().encode(value) });
  }
  if ("floats" in value) return create(AttributeProtoSchema, { name, type: AttrType.FLOATS, floats: [...value.floats] });
  if ("float" in value) return create(AttributeProtoSchema, { name, type: AttrType.FLOAT, f: value.float });
  return create(AttributeProtoSchema, { name, type: AttrType.INTS, ints: value.map((v) => BigInt(v)) });
}
