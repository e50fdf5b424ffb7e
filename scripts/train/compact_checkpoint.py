"""Writes a small continuation checkpoint from a run's last.pt/best.pt: the EMA weights only, floating-point
tensors as fp16 (a 2.2 M-parameter model is ~4.5 MB), plus the config, epoch and metrics. `train.py --init`
and `export_onnx.py --weights` both read it (fp16 is cast back to fp32 on load).

    /usr/bin/python3 scripts/train/compact_checkpoint.py scripts/train/runs/<name>/weights/last.pt \
        scripts/train/checkpoints/<name>-ema-fp16.pt
"""
from __future__ import annotations

import os
import sys

import torch


def main():
    src, dst = sys.argv[1:3]
    ck = torch.load(src, map_location="cpu")
    ema = {k: (v.half() if v.dtype.is_floating_point else v) for k, v in ck["ema"].items()}
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    torch.save({"ema": ema, "epoch": ck.get("epoch"), "config": ck["config"], "metrics": ck.get("metrics", {}),
                "from": os.path.basename(src)}, dst)
    print(f"wrote {dst} ({os.path.getsize(dst) / 1e6:.1f} MB, epoch {ck.get('epoch')})")


if __name__ == "__main__":
    main()
