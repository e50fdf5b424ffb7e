"""Task-aligned assignment (simplified YOLOv8 TAL) + BCE classification + CIoU box loss."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from model import decode_ltrb, flatten_outputs, make_anchors


def box_iou_pairwise(a, b, eps=1e-7):
    """a [...,4], b [...,4] broadcastable, xyxy -> IoU [...]."""
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1)
    area_b = (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)
    return inter / (area_a + area_b - inter + eps)


def ciou(a, b, eps=1e-7):
    """Complete IoU of matching xyxy boxes a [n,4], b [n,4]."""
    iou = box_iou_pairwise(a, b, eps)
    cw = torch.maximum(a[:, 2], b[:, 2]) - torch.minimum(a[:, 0], b[:, 0])
    ch = torch.maximum(a[:, 3], b[:, 3]) - torch.minimum(a[:, 1], b[:, 1])
    c2 = cw ** 2 + ch ** 2 + eps
    rho2 = ((a[:, 0] + a[:, 2] - b[:, 0] - b[:, 2]) ** 2 + (a[:, 1] + a[:, 3] - b[:, 1] - b[:, 3]) ** 2) / 4
    wa, ha = a[:, 2] - a[:, 0], (a[:, 3] - a[:, 1]).clamp(min=eps)
    wb, hb = b[:, 2] - b[:, 0], (b[:, 3] - b[:, 1]).clamp(min=eps)
    v = (4 / math.pi ** 2) * (torch.atan(wb / hb) - torch.atan(wa / ha)) ** 2
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha)


@torch.no_grad()
def task_aligned_assign(scores, pred_boxes, points, gt, mask, topk=10, alpha=0.5, beta=6.0, eps=1e-9):
    """
    scores [B,N,nc] (sigmoid), pred_boxes [B,N,4] xyxy, points [N,2], gt [B,M,5] (cls,xyxy), mask [B,M].
    Returns target boxes [B,N,4], target scores [B,N,nc], foreground mask [B,N].
    """
    B, N, nc = scores.shape
    M = gt.shape[1]
    gt_cls = gt[..., 0].long().clamp(0, nc - 1)
    gt_box = gt[..., 1:]
    # anchor centre strictly inside the gt box
    lt = points.view(1, 1, N, 2) - gt_box[..., None, :2]
    rb = gt_box[..., None, 2:] - points.view(1, 1, N, 2)
    in_gt = torch.cat((lt, rb), -1).amin(-1) > eps  # [B,M,N]
    valid = in_gt & mask[..., None]
    ious = box_iou_pairwise(gt_box[:, :, None, :], pred_boxes[:, None, :, :]).clamp(min=0)  # [B,M,N]
    cls_scores = torch.gather(scores.permute(0, 2, 1), 1, gt_cls[..., None].expand(B, M, N))  # [B,M,N]
    align = cls_scores.pow(alpha) * ious.pow(beta) * valid
    k = min(topk, N)
    top_idx = align.topk(k, dim=-1).indices  # [B,M,k]
    is_top = torch.zeros_like(align, dtype=torch.bool).scatter_(-1, top_idx, True)
    pos = is_top & valid  # [B,M,N]
    # an anchor claimed by several gts goes to the one it overlaps most
    multi = pos.sum(1, keepdim=True) > 1
    if multi.any():
        best = ious.masked_fill(~valid, -1).argmax(1, keepdim=True)
        best_onehot = torch.zeros_like(pos).scatter_(1, best, True)
        pos = torch.where(multi, best_onehot & valid, pos)
    fg = pos.any(1)  # [B,N]
    gt_idx = pos.float().argmax(1)  # [B,N]
    tgt_box = torch.gather(gt_box, 1, gt_idx[..., None].expand(B, N, 4))
    tgt_cls = torch.gather(gt_cls, 1, gt_idx)
    # soft targets: alignment normalised per gt so its best anchor gets that anchor's IoU
    align = align * pos
    norm = (align * ious.amax(-1, keepdim=True) / (align.amax(-1, keepdim=True) + eps)).amax(1)  # [B,N]
    tgt_scores = F.one_hot(tgt_cls, nc).float() * (norm * fg)[..., None]
    return tgt_box, tgt_scores, fg


class DetectionLoss:
    def __init__(self, nc: int, strides, box_gain=7.5, cls_gain=0.5, topk=10, alpha=0.5, beta=6.0):
        self.nc, self.strides = nc, strides
        self.box_gain, self.cls_gain = box_gain, cls_gain
        self.topk, self.alpha, self.beta = topk, alpha, beta

    def __call__(self, outs, gt, mask, cls_mask=None):
        """cls_mask [B,nc]: 0 where an image's source does not label the class; its scores get no loss
        there (neither as background nor as target), the other classes train as usual."""
        points, strides = make_anchors([b for b, _ in outs], self.strides)
        box_raw, cls_logits = flatten_outputs(outs)
        pred_boxes = decode_ltrb(box_raw, points, strides)
        tgt_box, tgt_scores, fg = task_aligned_assign(
            cls_logits.detach().sigmoid(), pred_boxes.detach(), points, gt, mask, self.topk, self.alpha, self.beta)
        tss = tgt_scores.sum().clamp(min=1.0)
        bce = F.binary_cross_entropy_with_logits(cls_logits, tgt_scores, reduction="none")
        if cls_mask is not None:
            bce = bce * cls_mask[:, None, :]
        loss_cls = bce.sum() / tss
        if fg.any():
            w = tgt_scores.sum(-1)[fg]
            loss_box = ((1.0 - ciou(pred_boxes[fg], tgt_box[fg])) * w).sum() / tss
        else:
            loss_box = pred_boxes.sum() * 0.0
        loss = self.box_gain * loss_box + self.cls_gain * loss_cls
        bs = cls_logits.shape[0]
        return loss * bs, {"box": loss_box.item(), "cls": loss_cls.item(), "fg": fg.sum().item() / bs}
