#!/usr/bin/env bash
# One command from an fp32 detector to the int8 model the service ships (see README.md beside this file):
#
#   scripts/quantize/quantize.sh models/road-hazard-yolo-fp32.onnx models/road-hazard-yolo.onnx
#
# Extra arguments go to quantize.py (e.g. --method entropy, --keep-float decode). PYTHON names a Python
# with onnxruntime, onnx and numpy (default: .cache/quantize/venv/bin/python when it exists, else python3).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ $# -lt 2 ]; then
  echo "usage: scripts/quantize/quantize.sh FP32.onnx OUT.onnx [quantize.py options]" >&2
  exit 2
fi
in=$1 out=$2
shift 2
py=${PYTHON:-$([ -x .cache/quantize/venv/bin/python ] && echo .cache/quantize/venv/bin/python || echo python3)}
data=../shared/testdata/train
calib=.cache/quantize/calib

# 64 training images from each source (seed 0), letterboxed by the service's own code.
npx tsx scripts/quantize/calibration-images.ts --model "$in" --out "$calib" --per-source 64 --seed 0 \
  "$data/road-damage-br" "$data/rdd2022-china-motorbike" "$data/chitholian-potholes"

# Entropy ranges: the lowest output error on held-out training images of the methods tried (README.md).
# The decode after the last convs, the stem and the stride-4 stage stay in float: on held-out training
# images the stem and stride-4 activations were the ones their own quantization hurt most (25-30 dB
# SQNR, sensitivity.py layers), and keeping them in float costs little CPU.
"$py" scripts/quantize/quantize.py --input "$in" --output "$out" --calib "$calib" \
  --method entropy --keep-float decode,stem --exclude-nodes '/model/s4/*' "$@"
