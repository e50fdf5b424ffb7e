"""Exports trained EMA weights to the Ultralytics detect layout the service reads, then checks it.

    /usr/bin/python3 scripts/train/export_onnx.py --weights scripts/train/runs/road-hazard-yolo/weights/best.pt \
        --out models/road-hazard-yolo-fp32.onnx

Graph: input `images` [1,3,H,W] float RGB 0..1 (H, W dynamic, multiples of 32), output `output0`
[1, 4+nc, N]: cx, cy, w, h in input pixels, then per-class sigmoid scores; no NMS. BatchNorm is folded
into the convs. Afterwards onnxruntime-node (scripts/train/ort_check.mjs) runs the file on a letterboxed
val image, the result is compared with PyTorch, and ORT latency is timed at 1 and 2 threads.
"""
from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


# Attribution of every training source a multi-source config may name (by the root's folder name); the
# texts follow each source's SOURCE.txt. The weights take the strictest terms: CC BY-SA 4.0 (RDD2022).
ATTRIBUTION = {
    "road-damage-br": ("'Cracks and Potholes in Road Images', Passos et al. 2020, Mendeley Data V4, "
                       "doi:10.17632/t576ydh9v8.4, MIT License (c) 2020 Bianka Passos; images by DNIT (Brazil)"),
    "rdd2022-china-motorbike": ("RDD2022 China_MotorBike: Arya, Maeda, Ghosh, Toshniwal, Sekimoto (2022), RDD2022: A "
                                "multi-national image dataset for automatic Road Damage Detection, arXiv:2209.08538, "
                                "doi:10.6084/m9.figshare.21431547.v1, CC BY-SA 4.0"),
    "chitholian-potholes": ("Contains information from 'Annotated Potholes Image Dataset' (Atikur Rahman Chitholian, "
                            "Kaggle 2020, doi:10.34740/kaggle/dsv/973710), which is made available under the Open "
                            "Database License (ODbL) v1.0; these weights are a Produced Work of that database. Its "
                            "photos were collected from the web and may carry third-party rights"),
}


def multi_source_meta(cfg, metrics, epoch, n_params, w, h, canvas_note, base):
    srcs = cfg["data"]["sources"]
    keys = [os.path.basename(os.path.normpath(s["root"])) for s in srcs]
    missing = [k for k in keys if k not in ATTRIBUTION]
    if missing:
        raise SystemExit(f"no attribution text for source(s) {missing}: add it to ATTRIBUTION first")
    origin = f"fine-tuned from v{base}" if base else "trained"
    return {
        "description": (f"hazard-stream road-hazard detector ({n_params} params, anchor-free, {origin} for {w}x{h} "
                        f"input{canvas_note} on {len(srcs)} camera sources); classes crack, pothole"),
        "license": ("CC BY-SA 4.0 (share-alike, the strictest of its training sources' terms), hazard-stream. "
                    "Attribution: " + " | ".join(ATTRIBUTION[k] for k in keys)),
        "data": ("; ".join(f"{s['name']}: {k} {s.get('train', 'train.txt')} (share {s.get('share', 1.0)}"
                           f"{', no ' + '/'.join(s['unlabelled_classes']) + ' loss' if s.get('unlabelled_classes') else ''})"
                           for s, k in zip(srcs, keys))
                 + f"; epoch {epoch}; validation: npm run eval per source (models/README.md)"),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default="scripts/train/runs/road-hazard-yolo/weights/best.pt")
    ap.add_argument("--out", default="models/road-hazard-yolo-fp32.onnx")
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--version", default="1.0.0")
    ap.add_argument("--skip-check", action="store_true")
    ap.add_argument("--base", help="the model these weights were fine-tuned from (e.g. 2.0.0), for the description")
    args = ap.parse_args()

    import cv2
    import onnx
    import torch

    sys.path.insert(0, HERE)
    from data import letterbox, read_split
    from model import Detector, ExportWrapper, count_params, fuse_conv_bn

    torch.set_num_threads(1)
    ck = torch.load(args.weights, map_location="cpu")
    cfg = ck["config"]
    m = cfg["model"]
    names = cfg["data"]["names"]
    h, w = cfg["imgsz"]
    model = Detector(len(names), tuple(m["widths"]), tuple(m["depths"]), m["neck_depth"], m["head_width"],
                     m["head_convs"], m.get("stem", "conv"))
    model.load_state_dict(ck["ema"])
    model.eval()
    n_params = count_params(model)
    reference = ExportWrapper(copy.deepcopy(model)).eval()
    wrapper = ExportWrapper(fuse_conv_bn(model)).eval()

    dummy = torch.zeros(1, 3, h, w)
    torch.onnx.export(
        wrapper, dummy, args.out, opset_version=args.opset, input_names=["images"], output_names=["output0"],
        dynamic_axes={"images": {2: "height", 3: "width"}, "output0": {2: "anchors"}}, do_constant_folding=True)

    mp = onnx.load(args.out)
    onnx.checker.check_model(mp)
    metrics = ck.get("metrics", {})
    ch, cw = cfg.get("train_canvas") or (h, w)
    canvas_note = f" on {cw}x{ch} crops at that scale" if (ch, cw) != (h, w) else ""
    sources = cfg["data"].get("sources")
    data_root = sources[0]["root"] if sources else cfg["data"]["root"]
    meta = {
        "description": (f"hazard-stream road-hazard detector ({n_params} params, anchor-free, trained from "
                        f"scratch for {w}x{h} input{canvas_note}); classes crack, pothole"),
        "author": "hazard-stream",
        "date": datetime.date.today().isoformat(),
        "version": args.version,
        "license": ("MIT. Trained on 'Cracks and Potholes in Road Images' (Passos et al. 2020, Mendeley Data "
                    "doi:10.17632/t576ydh9v8.4, MIT License (c) 2020 Bianka Passos)"),
        "data": (f"road-damage-br: 640x400 Brazilian highway-survey photos (DNIT), YOLO boxes derived from the "
                 f"upstream crack/pothole masks; train.txt (1922 images) / val.txt (213 images: every 10th of the "
                 f"id-sorted list, offset 5); val AP50 crack {metrics.get('crack_ap50')}, "
                 f"pothole {metrics.get('pothole_ap50')} (epoch {ck.get('epoch')})"),
        "stride": "32",
        **(multi_source_meta(cfg, metrics, ck.get("epoch"), n_params, w, h, canvas_note, args.base) if sources else {}),
        "task": "detect",
        "batch": "1",
        "imgsz": f"[{h}, {w}]",
        "names": "{" + ", ".join(f"{i}: '{n}'" for i, n in enumerate(names)) + "}",
    }
    del mp.metadata_props[:]
    for k, v in meta.items():
        p = mp.metadata_props.add()
        p.key, p.value = k, v
    mp.producer_name = "hazard-stream scripts/train"
    onnx.save(mp, args.out)
    ops = sorted({n.op_type for n in mp.graph.node})
    print(f"wrote {args.out} ({os.path.getsize(args.out) / 1e6:.2f} MB), opset {args.opset}, ops: {', '.join(ops)}")
    print(json.dumps(meta, indent=1))
    if args.skip_check:
        return

    # one val image, letterboxed exactly like the service, through PyTorch (unfused) and ORT
    img_path, _ = read_split(os.path.join(data_root), sources[0].get("val", "val.txt") if sources else cfg["data"]["val"])[0]
    img = cv2.cvtColor(cv2.imread(img_path), cv2.COLOR_BGR2RGB)
    lb, _, _, _ = letterbox(img, w, h)
    x = torch.from_numpy(lb).permute(2, 0, 1)[None].float().div(255).contiguous()
    with torch.no_grad():
        y = reference(x).numpy()
    with tempfile.TemporaryDirectory() as tmp:
        x.numpy().astype(np.float32).tofile(os.path.join(tmp, "in.bin"))
        y.astype(np.float32).tofile(os.path.join(tmp, "out.bin"))
        res = subprocess.run(
            ["node", os.path.join(HERE, "ort_check.mjs"), args.out, os.path.join(tmp, "in.bin"),
             os.path.join(tmp, "out.bin"), str(h), str(w)], capture_output=True, text=True)
    print(res.stdout, res.stderr)
    if res.returncode != 0:
        sys.exit("ORT check failed")


if __name__ == "__main__":
    main()
