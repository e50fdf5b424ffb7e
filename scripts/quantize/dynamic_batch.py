"""Copies an ONNX model with its batch dimension made dynamic (input and outputs), for batch timings
(compare-speed.ts --batch). Only for models whose graph takes the batch from the input's shape, as
road-hazard-yolo's head does (checked: batch 3 gives the three batch-1 outputs exactly).

    python scripts/quantize/dynamic_batch.py IN.onnx OUT.onnx
"""

import sys

import onnx

m = onnx.load(sys.argv[1])
for v in list(m.graph.input) + list(m.graph.output):
    v.type.tensor_type.shape.dim[0].dim_param = "batch"
onnx.save(m, sys.argv[2])
