"""Evaluates a checkpoint's EMA weights on a split (default: val) with the quick Python eval.

    /usr/bin/python3 scripts/train/evaluate.py --weights scripts/train/runs/road-hazard-yolo/weights/best.pt

Prints per-class P/R/TP/FP/FN at --conf and AP50 (all-point interpolation) as JSON. Also times the
PyTorch forward pass (fused BN, 1 thread) at the trained size.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default="scripts/train/runs/road-hazard-yolo/weights/best.pt")
    ap.add_argument("--split", default=None, help="split file inside the data root (default: config's val)")
    ap.add_argument("--conf", type=float, default=0.25)
    ap.add_argument("--iou", type=float, default=0.7, help="NMS IoU")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import torch

    sys.path.insert(0, HERE)
    from data import Dataset
    from metrics import run_val
    from model import Detector, ExportWrapper, fuse_conv_bn

    torch.set_num_threads(1)
    ck = torch.load(args.weights, map_location="cpu")
    cfg = ck["config"]
    m = cfg["model"]
    names = cfg["data"]["names"]
    h, w = cfg["imgsz"]
    model = Detector(len(names), tuple(m["widths"]), tuple(m["depths"]), m["neck_depth"], m["head_width"],
                     m["head_convs"], m.get("stem", "conv"))
    model.load_state_dict(ck["ema"])
    net = ExportWrapper(fuse_conv_bn(model.eval())).eval()
    ds = Dataset(cfg["data"]["root"], args.split or cfg["data"]["val"], (h, w), cache_scale=1.0)
    res = run_val(net, ds, 16, cfg["val"]["conf"], args.iou, cfg["val"]["max_det"], args.conf, names)
    x = torch.rand(1, 3, h, w)
    with torch.no_grad():
        for _ in range(5):
            net(x)
        t = []
        for _ in range(30):
            t0 = time.perf_counter()
            net(x)
            t.append((time.perf_counter() - t0) * 1000)
    res["torch_ms_median_1thread"] = round(sorted(t)[len(t) // 2], 2)
    res["epoch"] = ck.get("epoch")
    res["images"] = len(ds)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
