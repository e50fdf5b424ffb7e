"""Counts the operators of ONNX models (e.g. ORT's optimized graphs from compare-speed.ts --save-optimized),
to check which int8 kernels ONNX Runtime actually runs: QLinearConv and friends, not DequantizeLinear + Conv.

    python scripts/quantize/ops.py .cache/quantize/opt/*.opt.onnx
"""

import collections
import sys

import onnx

for path in sys.argv[1:]:
    m = onnx.load(path)
    ops = collections.Counter(f"{n.domain + '.' if n.domain not in ('', 'ai.onnx') else ''}{n.op_type}" for n in m.graph.node)
    print(f"{path}: {sum(ops.values())} nodes")
    for op, n in ops.most_common():
        print(f"  {n:4d} {op}")
