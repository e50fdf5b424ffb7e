"""Trains the road-hazard detector from scratch, on CPU or on a CUDA GPU.

    /usr/bin/python3 scripts/train/train.py --config scripts/train/config.yaml

Writes <output_dir>/<name>/{results.csv, results.jsonl, config.yaml, weights/last.pt, weights/best.pt}.
`--resume` continues from weights/last.pt; every epoch reseeds from (seed, epoch), so a resumed run
replays the same augmentation stream. Each sample is augmented with its own generator seeded by
(seed, epoch, index), so the stream does not depend on the number of loader workers.
`--time-budget-min M` measures the first epoch and shortens the run to what fits in M minutes (the
epochs actually run are logged; pass them as `--epochs N` to reproduce the run).
"""
from __future__ import annotations

import argparse
import copy
import csv
import json
import math
import os
import sys
import time

import yaml


def setup_threads(n: int):
    # before torch/cv2 spin up their pools
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[k] = str(n)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="scripts/train/config.yaml")
    ap.add_argument("--epochs", type=int, help="override train.epochs")
    ap.add_argument("--max-batches", type=int, help="smoke test: stop each epoch after this many batches")
    ap.add_argument("--name", help="override run name")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--data-root", help="override data.root (e.g. a packed copy, see pack-data.mjs); with "
                    "data.sources: the folder holding each source's folder")
    ap.add_argument("--device", help="override device: auto, cpu, cuda")
    ap.add_argument("--workers", type=int, help="override data-loader worker processes")
    ap.add_argument("--time-budget-min", type=float, help="fit the run into this many minutes of wall time")
    ap.add_argument("--seed", type=int, help="override seed (a continuation stage should not replay the same augmented samples)")
    ap.add_argument("--init", help="start from these weights (a checkpoint's `ema`, e.g. from import_onnx.py)")
    args = ap.parse_args()
    cfg = yaml.safe_load(open(args.config))
    if args.epochs:
        cfg["train"]["epochs"] = args.epochs
    if args.name:
        cfg["name"] = args.name
    if args.seed is not None:
        cfg["seed"] = args.seed
    if args.data_root:
        if cfg["data"].get("sources"):  # a folder holding every source under its own folder name (packed)
            for src in cfg["data"]["sources"]:
                src["root"] = os.path.join(args.data_root, os.path.basename(os.path.normpath(src["root"])))
        else:
            cfg["data"]["root"] = args.data_root
    if args.init:
        cfg["init"] = args.init
    if args.device:
        cfg["device"] = args.device
    if args.workers is not None:
        cfg["workers"] = args.workers
    setup_threads(cfg["threads"])

    import cv2
    import numpy as np
    import torch

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from data import AugConfig, Dataset, MultiSource, batches, repeat_factor_weights
    from loss import DetectionLoss
    from metrics import run_val
    from model import Detector, ExportWrapper, count_params

    torch.set_num_threads(cfg["threads"])
    cv2.setNumThreads(1)
    torch.manual_seed(cfg["seed"])
    dev_name = cfg.get("device", "auto")
    device = torch.device("cuda" if dev_name == "auto" and torch.cuda.is_available() else
                          ("cpu" if dev_name == "auto" else dev_name))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        print(f"device: {torch.cuda.get_device_name(device)}", flush=True)
    workers = int(cfg.get("workers", 0))

    run_dir = os.path.join(cfg["output_dir"], cfg["name"])
    os.makedirs(os.path.join(run_dir, "weights"), exist_ok=True)
    with open(os.path.join(run_dir, "config.yaml"), "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)

    names = cfg["data"]["names"]
    nc = len(names)
    h, w = cfg["imgsz"]  # inference/export/val size
    ch, cw = cfg.get("train_canvas") or (h, w)  # training crops: smaller canvas at the imgsz scale
    t0 = time.time()
    sources = cfg["data"].get("sources")
    if sources:  # several cameras: domain-balanced stream, one val set per source
        train_ds = MultiSource(sources, (ch, cw), (h, w), names, cfg["train"].get("epoch_size"))
        val_sets = [(src["name"], Dataset(src["root"], src.get("val", "val.txt"), (h, w), cache_scale=1.0,
                                         limit=cfg["val"].get("limit")),
                     [n for n in names if n not in src.get("unlabelled_classes", [])]) for src in sources]
        print("sources: " + ", ".join(f"{n} {len(p)} images, share {sh:.2f}" for n, p, sh in
                                      zip(train_ds.names, train_ds.parts, train_ds.shares)), flush=True)
    else:
        train_ds = Dataset(cfg["data"]["root"], cfg["data"]["train"], (ch, cw), ref_hw=(h, w))
        if cfg["train"].get("repeat_thresh"):
            train_ds.weights = repeat_factor_weights(train_ds.labels, nc, cfg["train"]["repeat_thresh"])
        val_sets = [("", Dataset(cfg["data"]["root"], cfg["data"]["val"], (h, w), cache_scale=1.0), names)]
    n_val = sum(len(v) for _, v, _ in val_sets)
    print(f"cached {len(train_ds)} train (per epoch) / {n_val} val images in {time.time() - t0:.0f}s", flush=True)

    m = cfg["model"]
    model = Detector(nc, tuple(m["widths"]), tuple(m["depths"]), m["neck_depth"], m["head_width"], m["head_convs"],
                     m.get("stem", "conv"))
    print(f"model: {count_params(model)} parameters", flush=True)
    if args.init:
        model.load_state_dict(torch.load(args.init, map_location="cpu")["ema"])
        print(f"initialised from {args.init}", flush=True)
    model.to(device)
    ema = copy.deepcopy(model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)

    tc = cfg["train"]
    decay, no_decay = [], []
    for mod in model.modules():
        for pname, p in mod.named_parameters(recurse=False):
            (decay if pname == "weight" and isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)) else no_decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": tc["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}], lr=tc["lr0"], betas=tuple(tc["betas"]))
    lc = cfg["loss"]
    criterion = DetectionLoss(nc, model.strides, lc["box_gain"], lc["cls_gain"], lc["tal_topk"], lc["tal_alpha"],
                              lc["tal_beta"])
    aug_cfg = AugConfig(**cfg["augment"])
    epochs, bs = tc["epochs"], tc["batch_size"]
    per_epoch = len(train_ds) // bs
    if args.max_batches:
        per_epoch = min(per_epoch, args.max_batches)
    total = epochs * per_epoch
    warmup = max(1, int(tc["warmup_epochs"] * per_epoch))

    def lr_at(it):
        cos = tc["lrf"] + (1 - tc["lrf"]) * 0.5 * (1 + math.cos(math.pi * it / total))
        return tc["lr0"] * cos * min(1.0, (it + 1) / warmup)

    start_epoch, updates, best = 0, 0, -1.0
    last_path = os.path.join(run_dir, "weights", "last.pt")
    if args.resume and os.path.exists(last_path):
        ck = torch.load(last_path, map_location=device)
        model.load_state_dict(ck["model"])
        ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["optimizer"])
        start_epoch, updates, best = ck["epoch"] + 1, ck["updates"], ck["best_fitness"]
        print(f"resumed at epoch {start_epoch}", flush=True)

    csv_path = os.path.join(run_dir, "results.csv")
    jsonl_path = os.path.join(run_dir, "results.jsonl")
    fields = ["epoch", "time_s", "lr", "loss_box", "loss_cls", "fg_per_img", "mosaic",
              *[f"{vn + '_' if vn else ''}{n}_{k}" for vn, _, vnames in val_sets for n in vnames
                for k in ("p", "r", "ap50")], "map50"]
    if start_epoch == 0:
        with open(csv_path, "w", newline="") as f:
            csv.writer(f).writerow(fields)
        open(jsonl_path, "w").close()

    export_ema = ExportWrapper(ema).eval()
    freeze_bn = bool(tc.get("freeze_bn"))
    t_first = time.time()
    budget_s = args.time_budget_min * 60 if args.time_budget_min else None
    for epoch in range(start_epoch, epochs):
        if epoch >= epochs:  # shortened by --time-budget-min
            break
        te = time.time()
        torch.manual_seed(cfg["seed"] * 1000 + epoch)
        aug_cfg.mosaic = 0.0 if epoch >= epochs - tc["close_mosaic"] else cfg["augment"]["mosaic"]
        model.train()
        if freeze_bn:
            # fine-tuning with small CPU batches: BN keeps its (calibrated) statistics and acts as a
            # per-channel affine whose scale and shift still train
            for mod in model.modules():
                if isinstance(mod, torch.nn.BatchNorm2d):
                    mod.eval()
        sums = {"box": 0.0, "cls": 0.0, "fg": 0.0}
        n = 0
        for bi, (imgs, gt, mask, cls_mask) in enumerate(batches(train_ds, bs, cfg["seed"], epoch, aug_cfg, workers)):
            if bi >= per_epoch:
                break
            if budget_s and bi > 0 and time.time() - t_first > budget_s * tc.get("budget_train_frac", 0.95):
                # out of time (a shared machine slowed down): this epoch is the last; validate and save
                print(f"time budget reached at epoch {epoch} batch {bi}: stopping", flush=True)
                epochs = epoch + 1
                cfg["train"]["epochs"] = epochs
                cfg["train"]["stopped_at_batch"] = bi
                break
            imgs = imgs.to(device, non_blocking=True)
            gt, mask = gt.to(device, non_blocking=True), mask.to(device, non_blocking=True)
            it = epoch * per_epoch + bi
            lr = lr_at(it)
            for g in opt.param_groups:
                g["lr"] = lr
            if cls_mask is not None:
                cls_mask = cls_mask.to(device, non_blocking=True)
            loss, parts = criterion(model(imgs), gt, mask, cls_mask)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            opt.step()
            updates += 1
            d = tc["ema_decay"] * (1 - math.exp(-updates / tc["ema_tau"]))
            with torch.no_grad():
                msd = model.state_dict()
                for k, v in ema.state_dict().items():
                    if v.dtype.is_floating_point:
                        v.mul_(d).add_(msd[k].detach(), alpha=1 - d)
                    else:
                        v.copy_(msd[k])
            for k in sums:
                sums[k] += parts[k]
            n += 1
            if bi % 20 == 0:
                print(f"  ep {epoch} it {bi}/{per_epoch} box {parts['box']:.3f} cls {parts['cls']:.3f} "
                      f"fg {parts['fg']:.1f} lr {lr:.5f} {time.time() - te:.0f}s cpu {time.process_time():.0f}s",
                      flush=True)
        row = {"epoch": epoch, "lr": round(lr, 6), "loss_box": round(sums["box"] / n, 4),
               "loss_cls": round(sums["cls"] / n, 4), "fg_per_img": round(sums["fg"] / n, 1),
               "mosaic": aug_cfg.mosaic}
        train_s = time.time() - te
        # measured on the second epoch on a GPU: the first pays for worker start-up and cuDNN autotuning (4x
        # slower, which made a first-epoch estimate stop a 6-minute budget after 2 minutes); on a CPU the
        # first epoch is representative and may be a large part of the budget
        if args.time_budget_min and epoch == start_epoch + (1 if device.type == "cuda" else 0) and epoch < epochs - 1:
            fit_epochs = epoch + 1 + int((args.time_budget_min * 60 - (time.time() - t_first)) / train_s / 0.95)
            if fit_epochs < epochs:
                # (5 % for validation) the cosine schedule and close_mosaic follow the shortened run from the next update on
                epochs = max(start_epoch + 1, fit_epochs)
                cfg["train"]["epochs"] = epochs
                total = epochs * per_epoch
                print(f"time budget: {epochs} epochs fit in {args.time_budget_min} min", flush=True)
        if (epoch + 1) % tc["val_every"] == 0 or epoch == epochs - 1:
            vc = cfg["val"]
            aps, row["val_counts"] = [], {}
            for vn, vds, vnames in val_sets:
                res = run_val(export_ema, vds, 16, vc["conf"], vc["iou"], vc["max_det"], vc["conf_report"], names,
                              device)
                pre = f"{vn}_" if vn else ""
                for nm in vnames:  # only the classes the source labels
                    for k in ("p", "r", "ap50"):
                        row[f"{pre}{nm}_{k}"] = round(res[nm][k], 4)
                    aps.append(res[nm]["ap50"])
                    row["val_counts"][f"{pre}{nm}"] = {k: res[nm][k] for k in ("tp", "fp", "fn", "labels")}
            row["map50"] = round(float(np.mean(aps)), 4)
        row["time_s"] = round(time.time() - te, 1)
        row["train_s"] = round(train_s, 1)
        with open(csv_path, "a", newline="") as f:
            csv.writer(f).writerow([row.get(k, "") for k in fields])
        with open(jsonl_path, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)
        ck = {"epoch": epoch, "updates": updates, "best_fitness": best, "metrics": row, "model": model.state_dict(),
              "ema": ema.state_dict(), "optimizer": opt.state_dict(), "config": cfg}
        fit = row.get("map50", -1.0)
        if fit > best:
            best = fit
            ck["best_fitness"] = best
            torch.save({"ema": ema.state_dict(), "epoch": epoch, "config": cfg, "metrics": row},
                       os.path.join(run_dir, "weights", "best.pt"))
        torch.save(ck, last_path)
    with open(os.path.join(run_dir, "config.yaml"), "w") as f:  # with the epochs actually run
        yaml.safe_dump(cfg, f, sort_keys=False)
    print(f"done in {time.time() - t0:.0f}s; {epochs} epochs; best map50 {best:.4f}", flush=True)


if __name__ == "__main__":
    main()
