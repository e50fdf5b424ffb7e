"""Static int8 quantization (QDQ) of a YOLO detect model with ONNX Runtime's own tool.

    python scripts/quantize/quantize.py --input models/road-hazard-yolo-fp32.onnx \
        --output models/road-hazard-yolo.onnx --calib .cache/quantize/calib

Weights int8 symmetric per output channel, activations uint8 per tensor (U8S8, what ORT's x86 kernels
take; no reduce_range on VNNI CPUs), ranges calibrated on the letterboxed training images that
calibration-images.ts wrote, with histogram percentiles (or entropy / min-max, --method). The layers
listed by --keep-float stay in float (see README.md). metadata_props are copied from the input, plus a
`quantization` entry that says how the file was made.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

METHODS = {
    "percentile": CalibrationMethod.Percentile,
    "entropy": CalibrationMethod.Entropy,
    "minmax": CalibrationMethod.MinMax,
}


class LetterboxedImages(CalibrationDataReader):
    """The calibration images as the engine feeds them: planar float RGB / 255, batch 1."""

    def __init__(self, prefix: str, input_name: str):
        meta = json.loads(Path(prefix + ".json").read_text())
        self.w, self.h, self.n = meta["width"], meta["height"], meta["count"]
        self.rgb = np.fromfile(prefix + ".rgb", dtype=np.uint8).reshape(self.n, self.h, self.w, 3)
        self.input_name = input_name
        self.set_range(0, self.n)

    def __len__(self):
        return self.n

    def set_range(self, start_index: int, end_index: int):
        self.pos, self.end = start_index, min(end_index, self.n)

    def get_next(self):
        if self.pos >= self.end:
            return None
        x = self.rgb[self.pos].transpose(2, 0, 1)[None].astype(np.float32) / np.float32(255)
        self.pos += 1
        return {self.input_name: x}


def consumers(graph):
    out = {}
    for node in graph.node:
        for name in node.input:
            out.setdefault(name, []).append(node)
    return out


def head_output_convs(graph):
    """Convs with no Conv after them: the detection head's last layers (raw box distances, class logits)."""
    cons = consumers(graph)
    result = []
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        stack, seen, conv_after = list(node.output), set(), False
        while stack and not conv_after:
            t = stack.pop()
            for c in cons.get(t, []):
                if c.name in seen:
                    continue
                seen.add(c.name)
                conv_after = conv_after or c.op_type == "Conv"
                stack.extend(c.output)
        if not conv_after:
            result.append(node)
    return result


def descendants(graph, nodes):
    cons = consumers(graph)
    names, stack = set(), [t for n in nodes for t in n.output]
    while stack:
        t = stack.pop()
        for c in cons.get(t, []):
            if c.name not in names:
                names.add(c.name)
                stack.extend(c.output)
    return names


def float_nodes(graph, keep):
    """Node names to leave in float for each --keep-float group."""
    names = set()
    last = head_output_convs(graph)
    if "decode" in keep:
        # Everything after the last convs: reshapes, the concat of the three scales, softplus × stride,
        # box arithmetic and the score sigmoid. Per-tensor uint8 cannot hold pixel coordinates (0..640)
        # and 0..1 scores at once, and these ops are a tiny share of the compute.
        names |= descendants(graph, last)
    if "head-out" in keep:
        names |= {n.name for n in last}
    if "stem" in keep:
        # The first conv and its activation (SiLU = Sigmoid + Mul on the conv output): excluding the conv
        # alone would still quantize its output for the int8 Sigmoid that follows.
        stem = next(n for n in graph.node if n.op_type == "Conv")
        cons = consumers(graph)
        act = [c for c in cons.get(stem.output[0], []) if c.op_type in ("Sigmoid", "Mul", "Relu", "Clip", "LeakyRelu", "HardSwish")]
        names |= {stem.name} | {c.name for c in act}
        names |= {m.name for a in act for m in cons.get(a.output[0], []) if m.op_type == "Mul" and stem.output[0] in m.input}
    return names


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", required=True, help="fp32 ONNX model")
    ap.add_argument("--output", required=True, help="int8 QDQ model to write")
    ap.add_argument("--calib", required=True, help="prefix of calibration-images.ts output (PREFIX.rgb, PREFIX.json)")
    ap.add_argument("--method", choices=sorted(METHODS), default="percentile")
    ap.add_argument("--percentile", type=float, default=99.999, help="for --method percentile")
    ap.add_argument(
        "--keep-float",
        default="decode",
        help="comma-separated groups left in float: decode (after the last convs), head-out (the last convs), "
        "stem (the first conv and its activation); '' quantizes everything",
    )
    ap.add_argument("--exclude-nodes", default="", help="extra node names left in float, comma-separated; NAME* is a prefix (e.g. '/model/s4/*')")
    ap.add_argument("--op-types", default="", help="only quantize these op types (comma-separated; default: all ORT can)")
    ap.add_argument("--cache", help="calibration cache JSON (ranges are reused when it exists)")
    args = ap.parse_args()

    keep = {k for k in args.keep_float.split(",") if k}
    unknown = keep - {"decode", "head-out", "stem"}
    if unknown:
        ap.error(f"unknown --keep-float group(s): {', '.join(sorted(unknown))}")

    src = onnx.load(args.input)
    with tempfile.TemporaryDirectory(prefix="quantize.") as tmp:
        pre = str(Path(tmp) / "pre.onnx")
        # ONNX shape inference and ORT's basic graph optimizations first, as ORT's quantization guide asks.
        # Symbolic shape inference is skipped: it cannot follow the dynamic H/W through the head's Shape ops.
        quant_pre_process(args.input, pre, skip_symbolic_shape=True)
        pre_model = onnx.load(pre)
        patterns = [n for n in args.exclude_nodes.split(",") if n]
        named = {
            n.name
            for n in pre_model.graph.node
            for p in patterns
            if (n.name.startswith(p[:-1]) if p.endswith("*") else n.name == p)
        }
        for p in patterns:
            if not any(n.name.startswith(p[:-1]) if p.endswith("*") else n.name == p for n in pre_model.graph.node):
                print(f"warning: --exclude-nodes {p} matches no node of {args.input}", file=sys.stderr)
        exclude = sorted(float_nodes(pre_model.graph, keep) | named)
        reader = LetterboxedImages(args.calib, pre_model.graph.input[0].name)
        # Histograms are built 8 images at a time so the intermediate tensors of the whole set never
        # sit in memory together (CalibStridedMinMax; the stride must divide the image count).
        stride = next(s for s in (8, 6, 4, 3, 2, 1) if len(reader) % s == 0)
        extra = {
            "CalibStridedMinMax": stride,
            "CalibPercentile": args.percentile,
            "ActivationSymmetric": False,
            "WeightSymmetric": True,
        }
        quantize_static(
            pre,
            args.output,
            reader,
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=False,
            calibrate_method=METHODS[args.method],
            op_types_to_quantize=[t for t in args.op_types.split(",") if t] or None,
            nodes_to_exclude=exclude,
            extra_options=extra,
            calibration_cache_path=args.cache,
        )

    out = onnx.load(args.output)
    calib = json.loads(Path(args.calib + ".json").read_text())
    method = f"percentile {args.percentile}" if args.method == "percentile" else args.method
    note = (
        f"int8 static QDQ by scripts/quantize/quantize.py (onnxruntime.quantization.quantize_static): weights int8 "
        f"symmetric per channel, activations uint8 per tensor, {method} ranges from {calib['count']} training images "
        f"(seed {calib['seed']}); kept in float: {args.keep_float or 'nothing'}"
        + (f", nodes {args.exclude_nodes}" if args.exclude_nodes else "")
        + (f"; op types {args.op_types}" if args.op_types else "")
    )
    del out.metadata_props[:]
    for p in src.metadata_props:
        out.metadata_props.add(key=p.key, value=p.value)
    out.metadata_props.add(key="quantization", value=note)
    onnx.save(out, args.output)
    print(f"{args.output}: {len(exclude)} nodes kept in float; {note}")


if __name__ == "__main__":
    main()
