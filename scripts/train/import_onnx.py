"""Rebuilds a trainable checkpoint from one of our exported ONNX detectors (BatchNorm folded into the convs).

    /usr/bin/python3 scripts/train/import_onnx.py --onnx models/road-hazard-yolo-fp32.onnx \
        --config scripts/train/config-gpu.yaml --out scripts/train/runs/v2-from-onnx.pt

The export names every initializer after the module it came from (`model.s8.1.cv1.conv.weight`), so the
mapping is by name. Each fused conv's bias becomes its BatchNorm's shift. Batch statistics must still make
sense when the checkpoint is trained further, so the BN layers are calibrated: one eval pass over
`--calib` letterboxed training images records the mean m and variance v of every conv output (exact, as the
import reproduces the export layer by layer), then running_mean = m, running_var = v, weight = sqrt(v + eps),
bias = b + m, which computes exactly conv(x) + b in eval mode while normalising by statistics that match the
data. The rebuilt network is checked against ONNX Runtime (the Python `onnx` reference is too slow; the
repository's onnxruntime-node runs it) on a val image: the largest differences are printed, and the script
fails above --tol.
"""
from __future__ import annotations

import argparse
import copy
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--onnx", default="models/road-hazard-yolo-fp32.onnx")
    ap.add_argument("--config", default="scripts/train/config-gpu.yaml", help="the config the ONNX was trained with")
    ap.add_argument("--out", default="scripts/train/runs/v2-from-onnx.pt")
    ap.add_argument("--calib", type=int, default=64, help="training images for the BN statistics")
    ap.add_argument("--tol", type=float, default=1e-2, help="max abs difference allowed (boxes in px, scores)")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import cv2
    import onnx
    import torch
    import yaml
    from onnx import numpy_helper

    sys.path.insert(0, HERE)
    from data import letterbox, read_split
    from model import Conv, Detector, ExportWrapper

    torch.set_num_threads(1)
    cfg = yaml.safe_load(open(args.config))
    m = cfg["model"]
    names = cfg["data"]["names"]
    h, w = cfg["imgsz"]
    model = Detector(len(names), tuple(m["widths"]), tuple(m["depths"]), m["neck_depth"], m["head_width"],
                     m["head_convs"], m.get("stem", "conv")).eval()
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(args.onnx).graph.initializer}

    sd = model.state_dict()
    used = set()
    conv_bias = {}
    for name, t in sd.items():
        key = "model." + name
        if key in inits and not name.endswith((".bn.weight", ".bn.bias", ".bn.running_mean", ".bn.running_var")):
            arr = torch.from_numpy(inits[key].copy())
            if tuple(arr.shape) != tuple(t.shape):
                sys.exit(f"shape mismatch {name}: onnx {arr.shape} vs model {tuple(t.shape)}")
            sd[name] = arr
            used.add(key)
    for mod_name, mod in model.named_modules():
        if isinstance(mod, Conv):
            key = f"model.{mod_name}.conv.bias"
            if key not in inits:
                sys.exit(f"no folded bias {key} in the ONNX")
            conv_bias[mod_name] = torch.from_numpy(inits[key].copy())
            used.add(key)
    unused = [k for k in inits if k.startswith("model.") and k not in used]
    missing = [k for k in sd if not k.endswith(("num_batches_tracked",)) and ".bn." not in k
               and "model." + k not in used]
    if unused or missing:
        sys.exit(f"unmapped ONNX initializers {unused[:5]} / model tensors {missing[:5]}")
    model.load_state_dict(sd)

    # BN first as identity + folded bias, then calibrate statistics on real images.
    for mod_name, mod in model.named_modules():
        if isinstance(mod, Conv):
            bn = mod.bn
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0)
            bn.weight.data.fill_(float(np.sqrt(1.0 + bn.eps)))
            bn.bias.data.copy_(conv_bias[mod_name])
    stats = {}

    def hook(name):
        def f(mod, inp, out):
            x = out.detach().double()
            s = stats.setdefault(name, [0.0, 0.0, 0])
            s[0] = s[0] + x.sum((0, 2, 3))
            s[1] = s[1] + (x * x).sum((0, 2, 3))
            s[2] += x.numel() // x.shape[1]
        return f

    convs = {n: mod for n, mod in model.named_modules() if isinstance(mod, Conv)}
    handles = [mod.conv.register_forward_hook(hook(n)) for n, mod in convs.items()]
    pairs = read_split(cfg["data"]["root"], cfg["data"]["train"])
    rng = np.random.default_rng(0)
    with torch.no_grad():
        for i in rng.choice(len(pairs), min(args.calib, len(pairs)), replace=False):
            img = cv2.cvtColor(cv2.imread(pairs[i][0]), cv2.COLOR_BGR2RGB)
            lb, _, _, _ = letterbox(img, w, h)
            model(torch.from_numpy(lb).permute(2, 0, 1)[None].float().div(255))
    for hd in handles:
        hd.remove()
    for n, mod in convs.items():
        s1, s2, cnt = stats[n]
        mean = s1 / cnt
        var = (s2 / cnt - mean * mean).clamp(min=1e-6)
        bn = mod.bn
        bn.running_mean.copy_(mean.float())
        bn.running_var.copy_(var.float())
        bn.weight.data.copy_(torch.sqrt(var + bn.eps).float())
        bn.bias.data.copy_(conv_bias[n] + mean.float())

    # check against ONNX Runtime on the first val image, letterboxed like the service
    img_path, _ = read_split(cfg["data"]["root"], cfg["data"]["val"])[0]
    lb, _, _, _ = letterbox(cv2.cvtColor(cv2.imread(img_path), cv2.COLOR_BGR2RGB), w, h)
    x = torch.from_numpy(lb).permute(2, 0, 1)[None].float().div(255).contiguous()
    with torch.no_grad():
        y = ExportWrapper(copy.deepcopy(model)).eval()(x).numpy()
    with tempfile.TemporaryDirectory() as tmp:
        x.numpy().astype(np.float32).tofile(os.path.join(tmp, "in.bin"))
        y.astype(np.float32).tofile(os.path.join(tmp, "out.bin"))
        res = subprocess.run(["node", os.path.join(HERE, "ort_check.mjs"), args.onnx, os.path.join(tmp, "in.bin"),
                              os.path.join(tmp, "out.bin"), str(h), str(w)], capture_output=True, text=True)
    print(res.stdout, res.stderr)
    if res.returncode != 0:
        sys.exit("ORT comparison failed")

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    sd = model.state_dict()
    torch.save({"ema": sd, "model": sd, "epoch": -1, "config": cfg, "source_onnx": os.path.abspath(args.onnx)},
               args.out)
    print(f"wrote {args.out} ({len(sd)} tensors) from {args.onnx}, BN calibrated on {args.calib} images")


if __name__ == "__main__":
    main()
