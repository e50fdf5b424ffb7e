"""A compact anchor-free YOLO-family detector (ConvBNSiLU + C2f backbone, PAN neck, decoupled heads).

The box branch predicts left/top/right/bottom distances from each grid cell centre, in units of the
level's stride (softplus keeps them positive); no DFL, no objectness. `forward` returns raw per-level
maps for training; `ExportWrapper` turns them into the Ultralytics `[1, 4 + nc, N]` layout
(cx, cy, w, h in input pixels, then per-class sigmoid scores) that the service decodes.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class Conv(nn.Module):
    """Conv2d (no bias) + BatchNorm + SiLU."""

    def __init__(self, c_in: int, c_out: int, k: int = 1, s: int = 1, p: int | None = None):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, s, k // 2 if p is None else p, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.03)
        self.act = nn.SiLU()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    def __init__(self, c: int, shortcut: bool = True):
        super().__init__()
        self.cv1 = Conv(c, c, 3)
        self.cv2 = Conv(c, c, 3)
        self.add = shortcut

    def forward(self, x):
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    """CSP block as in YOLOv8: split, n bottlenecks on one half, concat every intermediate, fuse."""

    def __init__(self, c_in: int, c_out: int, n: int = 1, shortcut: bool = True):
        super().__init__()
        self.c = c_out // 2
        self.cv1 = Conv(c_in, 2 * self.c, 1)
        self.cv2 = Conv((2 + n) * self.c, c_out, 1)
        self.m = nn.ModuleList(Bottleneck(self.c, shortcut) for _ in range(n))

    def forward(self, x):
        y = list(self.cv1(x).chunk(2, 1))
        for m in self.m:
            y.append(m(y[-1]))
        return self.cv2(torch.cat(y, 1))


class SPPF(nn.Module):
    def __init__(self, c_in: int, c_out: int, k: int = 5):
        super().__init__()
        c_ = c_in // 2
        self.cv1 = Conv(c_in, c_, 1)
        self.cv2 = Conv(c_ * 4, c_out, 1)
        self.m = nn.MaxPool2d(k, 1, k // 2)

    def forward(self, x):
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        return self.cv2(torch.cat((x, y1, y2, self.m(y2)), 1))


class Detector(nn.Module):
    """widths: channels at strides 2, 4, 8, 16, 32; depths: C2f repeats at strides 4, 8, 16, 32."""

    strides = (8, 16, 32)

    def __init__(self, nc: int, widths=(16, 32, 64, 96, 128), depths=(1, 2, 2, 1), neck_depth: int = 1,
                 head_width: int = 64, head_convs: int = 2, stem: str = "conv"):
        super().__init__()
        w0, w1, w2, w3, w4 = widths
        d1, d2, d3, d4 = depths
        self.nc = nc
        if stem == "patch4":
            # 4x4/4 patchify: no full-resolution feature map at stride 2, which on a CPU costs more in
            # memory traffic (BN, SiLU, their backward) than its MACs suggest. widths[0] is unused.
            self.stem = Conv(3, w1, 4, 4, p=0)
            self.s4 = nn.Sequential(*([C2f(w1, w1, d1)] if d1 else []))
        else:
            self.stem = Conv(3, w0, 3, 2)
            self.s4 = nn.Sequential(Conv(w0, w1, 3, 2), *([C2f(w1, w1, d1)] if d1 else []))
        self.s8 = nn.Sequential(Conv(w1, w2, 3, 2), C2f(w2, w2, d2))
        self.s16 = nn.Sequential(Conv(w2, w3, 3, 2), C2f(w3, w3, d3))
        self.s32 = nn.Sequential(Conv(w3, w4, 3, 2), C2f(w4, w4, d4), SPPF(w4, w4))
        # PAN: top-down then bottom-up, as in YOLOv8 (nearest 2x upsample + concat + C2f).
        self.td16 = C2f(w4 + w3, w3, neck_depth, shortcut=False)
        self.td8 = C2f(w3 + w2, w2, neck_depth, shortcut=False)
        self.down8 = Conv(w2, w2, 3, 2)
        self.bu16 = C2f(w2 + w3, w3, neck_depth, shortcut=False)
        self.down16 = Conv(w3, w3, 3, 2)
        self.bu32 = C2f(w3 + w4, w4, neck_depth, shortcut=False)
        chans = (w2, w3, w4)
        hc_box = max(head_width // 2, 16)
        self.box = nn.ModuleList(self._branch(c, hc_box, 4, head_convs) for c in chans)
        self.cls = nn.ModuleList(self._branch(c, head_width, nc, head_convs) for c in chans)
        self._init_bias()

    @staticmethod
    def _branch(c_in: int, c: int, c_out: int, n: int) -> nn.Sequential:
        layers = [Conv(c_in if i == 0 else c, c, 3) for i in range(n)]
        return nn.Sequential(*layers, nn.Conv2d(c, c_out, 1))

    def _init_bias(self):
        for b, s in zip(self.cls, self.strides):
            # Prior of ~5 objects per 640x640 image spread over the level's cells (YOLOv8's choice).
            b[-1].bias.data.fill_(math.log(5 / self.nc / (640 / s) ** 2))
        for b in self.box:
            b[-1].bias.data.fill_(1.0)  # softplus(1) ≈ 1.3 strides per side to start

    def forward(self, x):
        """Returns [(box_raw [B,4,h,w], cls_logits [B,nc,h,w]) for strides 8, 16, 32]."""
        p8 = self.s8(self.s4(self.stem(x)))
        p16 = self.s16(p8)
        p32 = self.s32(p16)
        t16 = self.td16(torch.cat((F.interpolate(p32, scale_factor=2.0, mode="nearest"), p16), 1))
        o8 = self.td8(torch.cat((F.interpolate(t16, scale_factor=2.0, mode="nearest"), p8), 1))
        o16 = self.bu16(torch.cat((self.down8(o8), t16), 1))
        o32 = self.bu32(torch.cat((self.down16(o16), p32), 1))
        return [(self.box[i](f), self.cls[i](f)) for i, f in enumerate((o8, o16, o32))]


def make_anchors(feats, strides, offset: float = 0.5):
    """Cell centres in input pixels [N,2] and the stride of each [N,1], level by level, row-major."""
    points, stride_list = [], []
    for f, s in zip(feats, strides):
        h, w = f.shape[-2:]
        dtype, device = f.dtype, f.device
        sx = (torch.arange(w, dtype=dtype, device=device) + offset)
        sy = (torch.arange(h, dtype=dtype, device=device) + offset)
        # expand rather than meshgrid: exports to plain Expand/Reshape with dynamic H/W.
        gx = sx.view(1, -1).expand(h, w)
        gy = sy.view(-1, 1).expand(h, w)
        points.append(torch.stack((gx, gy), -1).reshape(-1, 2) * s)
        stride_list.append(torch.full_like(gx.reshape(-1, 1), float(s)))
    return torch.cat(points), torch.cat(stride_list)


def flatten_outputs(outs):
    """Per-level maps to box_raw [B,N,4] and cls_logits [B,N,nc]."""
    box = torch.cat([b.flatten(2) for b, _ in outs], 2).permute(0, 2, 1)
    cls = torch.cat([c.flatten(2) for _, c in outs], 2).permute(0, 2, 1)
    return box, cls


def decode_ltrb(box_raw, points, strides):
    """box_raw [B,N,4] -> xyxy in input pixels."""
    d = F.softplus(box_raw) * strides
    return torch.cat((points - d[..., :2], points + d[..., 2:]), -1)


class ExportWrapper(nn.Module):
    """Ultralytics detect output: [B, 4 + nc, N] with cx, cy, w, h (input pixels) and sigmoid scores."""

    def __init__(self, model: Detector):
        super().__init__()
        self.model = model

    def forward(self, images):
        outs = self.model(images)
        points, strides = make_anchors([b for b, _ in outs], self.model.strides)
        box_raw, cls = flatten_outputs(outs)
        d = F.softplus(box_raw) * strides
        lt, rb = d[..., :2], d[..., 2:]
        cxcy = points + (rb - lt) / 2
        wh = lt + rb
        return torch.cat((cxcy, wh, cls.sigmoid()), -1).permute(0, 2, 1)


def fuse_conv_bn(model: nn.Module) -> nn.Module:
    """Folds every BatchNorm into its conv (for export and timing); call on an eval-mode copy."""
    for m in model.modules():
        if isinstance(m, Conv):
            conv, bn = m.conv, m.bn
            fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                              bias=True)
            w = conv.weight.clone().view(conv.out_channels, -1)
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            fused.weight.data.copy_((w * scale.view(-1, 1)).view_as(conv.weight))
            fused.bias.data.copy_(bn.bias - bn.running_mean * scale)
            m.conv = fused
            m.bn = nn.Identity()
    return model


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
