"""Quick development eval: decode + class-aware NMS like the service, per-class P/R at a confidence
threshold and AP50 with all-point (continuous) interpolation of the precision envelope."""
from __future__ import annotations

import numpy as np
import torch
import torchvision


def postprocess(pred, conf=0.001, iou=0.7, max_det=300):
    """pred [B, 4+nc, N] (cx,cy,w,h, scores) -> list of [k,6] x1,y1,x2,y2,score,cls; best class per box,
    class-aware NMS (Ultralytics predict semantics, multi_label=False)."""
    out = []
    for p in pred:
        p = p.T
        scores, cls = p[:, 4:].max(1)
        keep = scores > conf
        p, scores, cls = p[keep], scores[keep], cls[keep]
        xyxy = torch.cat((p[:, :2] - p[:, 2:4] / 2, p[:, :2] + p[:, 2:4] / 2), 1)
        k = torchvision.ops.batched_nms(xyxy, scores, cls, iou)[:max_det]
        out.append(torch.cat((xyxy[k], scores[k, None], cls[k, None].float()), 1))
    return out


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    aa = (a[:, 2:] - a[:, :2]).prod(-1)
    ab = (b[:, 2:] - b[:, :2]).prod(-1)
    return inter / (aa[:, None] + ab[None, :] - inter + 1e-9)


def match_image(det: np.ndarray, gt: np.ndarray, iou_thr=0.5):
    """Greedy in descending score: each detection takes the unmatched same-class label with the highest
    IoU >= thr. Returns a TP flag per detection (in the given order)."""
    order = np.argsort(-det[:, 4], kind="stable")
    tp = np.zeros(len(det), bool)
    used = np.zeros(len(gt), bool)
    ious = iou_matrix(det[:, :4], gt[:, 1:5])
    for i in order:
        same = (gt[:, 0] == det[i, 5]) & ~used
        if not same.any():
            continue
        cand = np.where(same, ious[i], -1)
        j = int(cand.argmax())
        if cand[j] >= iou_thr:
            tp[i] = True
            used[j] = True
    return tp


def average_precision(tp: np.ndarray, scores: np.ndarray, n_gt: int) -> float:
    """All-point interpolated AP (area under the monotone precision envelope)."""
    if n_gt == 0:
        return float("nan")
    if len(tp) == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    tp = tp[order].astype(np.float64)
    ctp, cfp = np.cumsum(tp), np.cumsum(1 - tp)
    recall = ctp / n_gt
    precision = ctp / (ctp + cfp)
    mrec = np.concatenate(([0.0], recall, [recall[-1]]))
    mpre = np.concatenate(([1.0], precision, [0.0]))
    mpre = np.flip(np.maximum.accumulate(np.flip(mpre)))
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def evaluate(dets: list[np.ndarray], gts: list[np.ndarray], names: list[str], conf_thr=0.25, iou_thr=0.5):
    """dets: per image [k,6] x1,y1,x2,y2,score,cls; gts: per image [m,5] cls,x1,y1,x2,y2 (same pixels)."""
    res = {}
    per_img = [(d, g, match_image(d, g, iou_thr)) for d, g in zip(dets, gts)]
    for c, name in enumerate(names):
        tps, scs, n_gt = [], [], 0
        for d, g, tp in per_img:
            sel = d[:, 5] == c
            tps.append(tp[sel])
            scs.append(d[sel, 4])
            n_gt += int((g[:, 0] == c).sum())
        tp_all, sc_all = np.concatenate(tps), np.concatenate(scs)
        ap = average_precision(tp_all, sc_all, n_gt)
        at = sc_all > conf_thr
        n_tp = int(tp_all[at].sum())
        n_det = int(at.sum())
        res[name] = {
            "ap50": ap,
            "p": n_tp / n_det if n_det else 0.0,
            "r": n_tp / n_gt if n_gt else float("nan"),
            "tp": n_tp, "fp": n_det - n_tp, "fn": n_gt - n_tp, "labels": n_gt,
        }
    res["map50"] = float(np.nanmean([res[n]["ap50"] for n in names]))
    return res


@torch.no_grad()
def run_val(export_model, ds, batch_size=16, conf=0.001, iou=0.7, max_det=300, conf_thr=0.25, names=("crack", "pothole"),
            device="cpu"):
    """export_model: images [B,3,H,W] -> [B,4+nc,N]. Boxes mapped back to source pixels."""
    dets, gts = [], []
    for k in range(0, len(ds), batch_size):
        idx = range(k, min(k + batch_size, len(ds)))
        items = [ds.val_item(i) for i in idx]
        x = torch.from_numpy(np.stack([im for im, _, _, _ in items])).permute(0, 3, 1, 2).float().div_(255)
        x = x.to(device)
        for (_, r, left, top), det, i in zip(items, postprocess(export_model(x), conf, iou, max_det), idx):
            d = det.float().cpu().numpy().astype(np.float64)
            d[:, [0, 2]] = (d[:, [0, 2]] - left) / r
            d[:, [1, 3]] = (d[:, [1, 3]] - top) / r
            w, h = ds.src_sizes[i]
            d[:, [0, 2]] = d[:, [0, 2]].clip(0, w)
            d[:, [1, 3]] = d[:, [1, 3]].clip(0, h)
            dets.append(d)
            gts.append(ds.source_labels(i).astype(np.float64))
    return evaluate(dets, gts, list(names), conf_thr)
