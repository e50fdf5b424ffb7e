"""Dataset: decodes every image once into RAM, then augments on the fly with OpenCV on one thread.

Training images are placed into the fixed rectangular canvas (e.g. 416x256) by a random affine
(scale, translate, horizontal flip) around the letterbox placement the service uses, optionally
from a 4-image mosaic, then get HSV/brightness/contrast jitter and occasional blur. Validation
images are letterboxed exactly like the service (Ultralytics LetterBox: centred, gray 114).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import cv2
import numpy as np
import torch

PAD = 114


def read_split(root: str, split_file: str) -> list[tuple[str, str]]:
    """(image path, label path) pairs of a YOLO split file whose lines are relative to `root`."""
    pairs = []
    with open(os.path.join(root, split_file)) as f:
        for line in f:
            rel = line.strip()
            if not rel:
                continue
            img = os.path.join(root, rel)
            stem = os.path.splitext(rel)[0]
            lbl = os.path.join(root, stem.replace("images/", "labels/", 1) + ".txt")
            pairs.append((img, lbl))
    return pairs


def load_labels(path: str, w: int, h: int) -> np.ndarray:
    """YOLO normalised cx,cy,w,h -> [n,5] of cls, x1, y1, x2, y2 in source pixels."""
    if not os.path.exists(path) or os.path.getsize(path) == 0:  # images without defects
        return np.zeros((0, 5), np.float32)
    rows = np.loadtxt(path, ndmin=2, dtype=np.float32)
    if rows.size == 0:
        return np.zeros((0, 5), np.float32)
    c, cx, cy, bw, bh = rows.T
    return np.stack((c, (cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h), 1)


def letterbox_geometry(src_w: int, src_h: int, dst_w: int, dst_h: int):
    """Ultralytics LetterBox(auto=False, center=True): scale, resized size and left/top padding."""
    r = min(dst_h / src_h, dst_w / src_w)
    nw, nh = round(src_w * r), round(src_h * r)
    dw, dh = (dst_w - nw) / 2, (dst_h - nh) / 2
    return r, nw, nh, round(dw - 0.1), round(dh - 0.1)


def letterbox(img: np.ndarray, dst_w: int, dst_h: int):
    h, w = img.shape[:2]
    r, nw, nh, left, top = letterbox_geometry(w, h, dst_w, dst_h)
    if (nw, nh) != (w, h):
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    out = np.full((dst_h, dst_w, 3), PAD, np.uint8)
    out[top:top + nh, left:left + nw] = img
    return out, r, left, top


@dataclass
class AugConfig:
    mosaic: float = 0.5
    scale: float = 0.35
    translate: float = 0.1
    fliplr: float = 0.5
    hsv_h: float = 0.015
    hsv_s: float = 0.5
    hsv_v: float = 0.35
    contrast: float = 0.25
    blur: float = 0.15
    blur_max_kernel: int = 5
    min_box_px: float = 3.0
    min_area_kept: float = 0.25
    # camera robustness (multi-source runs); the defaults keep the single-source behaviour
    scale_min: float | None = None   # log-uniform zoom range around the letterbox scale, replaces `scale`
    scale_max: float | None = None
    perspective: float = 0.0         # probability of an oblique (dashcam-like) tilt: far side narrower
    perspective_max: float = 0.0     # strongest tilt k: top rows scale by 1/(1+k), bottom rows by 1/(1-k)
    crop_anywhere: bool = False      # a canvas smaller than the image views any part of it, not only the middle
    jpeg: float = 0.0                # probability of re-encoding as JPEG
    jpeg_quality: tuple = (30, 90)


class Dataset:
    def __init__(self, root: str, split_file: str, size_hw: tuple[int, int], cache_scale: float | None = None,
                 ref_hw: tuple[int, int] | None = None, limit: int | None = None):
        """size_hw: the training canvas (and val letterbox size). ref_hw: the size whose letterbox scale
        training zooms around; larger than size_hw means training on crops at the inference scale of a
        bigger input, so a cheap canvas still sees small potholes at full detail."""
        self.pairs = read_split(root, split_file)
        if limit and len(self.pairs) > limit:  # an evenly spaced subset (quick in-training validation)
            self.pairs = self.pairs[::-(-len(self.pairs) // limit)]
        self.h, self.w = size_hw
        self.ref_h, self.ref_w = ref_hw or size_hw
        self.weights: np.ndarray | None = None
        self.images: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        self.src_sizes: list[tuple[int, int]] = []
        for img_path, lbl_path in self.pairs:
            img = cv2.imread(img_path, cv2.IMREAD_COLOR)
            if img is None:
                raise FileNotFoundError(img_path)
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
            h, w = img.shape[:2]
            self.src_sizes.append((w, h))
            lab = load_labels(lbl_path, w, h)
            # Cache at (a bit above) the training scale: augmentation never needs more detail than that.
            s = cache_scale if cache_scale else min(1.0, 1.5 * min(self.ref_h / h, self.ref_w / w))
            if s < 1.0:
                img = cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
                lab[:, 1:] *= np.float32(img.shape[1] / w)
            self.images.append(img)
            self.labels.append(lab)

    def __len__(self):
        return len(self.pairs)

    # ---- validation -------------------------------------------------------------------------
    def val_item(self, i: int):
        """Letterboxed uint8 RGB image, its gain r and pad (relative to the ORIGINAL source size)."""
        img = self.images[i]
        src_w, src_h = self.src_sizes[i]
        if img.shape[1] != src_w:  # cached smaller: recover the exact source geometry first
            img = cv2.resize(img, (src_w, src_h), interpolation=cv2.INTER_LINEAR)
        return letterbox(img, self.w, self.h)

    def source_labels(self, i: int) -> np.ndarray:
        lab = self.labels[i].copy()
        lab[:, 1:] *= np.float32(self.src_sizes[i][0] / self.images[i].shape[1])
        return lab

    # ---- training ---------------------------------------------------------------------------
    def train_item(self, i: int, rng: np.random.Generator, aug: AugConfig):
        if rng.random() < aug.mosaic:
            img, lab = self._mosaic(i, rng)
            # the mosaic canvas is 2x the output; the affine below takes a random output-sized view
            base = 1.0
            centre = (self.w, self.h)
        else:
            img, lab = self.images[i], self.labels[i].copy()
            base = min(self.ref_h / img.shape[0], self.ref_w / img.shape[1])
            centre = (img.shape[1] / 2, img.shape[0] / 2)
        img, lab = self._affine(img, lab, base, centre, rng, aug)
        img = self._photometric(img, rng, aug)
        if rng.random() < aug.fliplr:
            img = img[:, ::-1]
            lab[:, [1, 3]] = self.w - lab[:, [3, 1]]
        return np.ascontiguousarray(img), lab

    def _mosaic(self, i: int, rng: np.random.Generator):
        """Four images at the letterbox scale around a random centre on a 2W x 2H canvas."""
        W, H = self.w, self.h
        xc = int(rng.uniform(0.5 * W, 1.5 * W))
        yc = int(rng.uniform(0.5 * H, 1.5 * H))
        canvas = np.full((2 * H, 2 * W, 3), PAD, np.uint8)
        if self.weights is None:
            idx = [i] + list(rng.integers(0, len(self), 3))
        else:
            idx = [i] + list(rng.choice(len(self), 3, p=self.weights))
        labs = []
        for k, j in enumerate(idx):
            src = self.images[j]
            r = min(self.ref_h / src.shape[0], self.ref_w / src.shape[1])
            img = cv2.resize(src, (round(src.shape[1] * r), round(src.shape[0] * r)), interpolation=cv2.INTER_LINEAR)
            h, w = img.shape[:2]
            if k == 0:
                x1a, y1a, x2a, y2a = max(xc - w, 0), max(yc - h, 0), xc, yc
                x1b, y1b = w - (x2a - x1a), h - (y2a - y1a)
            elif k == 1:
                x1a, y1a, x2a, y2a = xc, max(yc - h, 0), min(xc + w, 2 * W), yc
                x1b, y1b = 0, h - (y2a - y1a)
            elif k == 2:
                x1a, y1a, x2a, y2a = max(xc - w, 0), yc, xc, min(2 * H, yc + h)
                x1b, y1b = w - (x2a - x1a), 0
            else:
                x1a, y1a, x2a, y2a = xc, yc, min(xc + w, 2 * W), min(2 * H, yc + h)
                x1b, y1b = 0, 0
            canvas[y1a:y2a, x1a:x2a] = img[y1b:y1b + (y2a - y1a), x1b:x1b + (x2a - x1a)]
            lab = self.labels[j].copy()
            lab[:, 1:] *= np.float32(r)
            lab[:, [1, 3]] += x1a - x1b
            lab[:, [2, 4]] += y1a - y1b
            # clip to the pasted tile so boxes never claim pixels of a neighbour
            lab = _clip_filter(lab, x1a, y1a, x2a, y2a, 3.0, 0.25)
            labs.append(lab)
        return canvas, np.concatenate(labs, 0)

    def _affine(self, img, lab, base, centre, rng, aug: AugConfig):
        if aug.scale_min is not None:
            s = base * float(np.exp(rng.uniform(np.log(aug.scale_min), np.log(aug.scale_max))))
        else:
            s = base * rng.uniform(1 - aug.scale, 1 + aug.scale)
        if aug.crop_anywhere:
            # the canvas may be a crop of the scaled image: let it land on any part of it
            span_x = max(0.0, (img.shape[1] * s - self.w) / 2) + aug.translate * self.w
            span_y = max(0.0, (img.shape[0] * s - self.h) / 2) + aug.translate * self.h
            tx = self.w / 2 + rng.uniform(-1, 1) * span_x
            ty = self.h / 2 + rng.uniform(-1, 1) * span_y
        else:
            tx = self.w / 2 + rng.uniform(-aug.translate, aug.translate) * self.w
            ty = self.h / 2 + rng.uniform(-aug.translate, aug.translate) * self.h
        M = np.array([[s, 0, tx - s * centre[0]], [0, s, ty - s * centre[1]], [0, 0, 1]], np.float64)
        if aug.perspective and rng.random() < aug.perspective:
            # Tilt about the canvas centre: rows above it recede (narrower, compressed), rows below come
            # closer, as a top-down survey view seen from a low forward-looking camera.
            k = rng.uniform(0.0, aug.perspective_max)
            C = np.array([[1, 0, -self.w / 2], [0, 1, -self.h / 2], [0, 0, 1]], np.float64)
            P = np.array([[1, 0, 0], [0, 1, 0], [0, -k / (self.h / 2), 1]], np.float64)
            M = np.linalg.inv(C) @ P @ C @ M
        if M[2, 0] == 0 and M[2, 1] == 0:
            out = cv2.warpAffine(img, M[:2].astype(np.float32), (self.w, self.h), flags=cv2.INTER_LINEAR,
                                 borderValue=(PAD, PAD, PAD))
        else:
            out = cv2.warpPerspective(img, M, (self.w, self.h), flags=cv2.INTER_LINEAR, borderValue=(PAD, PAD, PAD))
        if len(lab):
            lab = lab.copy()
            # the four corners of each box through the warp; their bounding box is the new box
            x1, y1, x2, y2 = lab[:, 1], lab[:, 2], lab[:, 3], lab[:, 4]
            pts = np.stack([np.stack((x1, y1), 1), np.stack((x2, y1), 1), np.stack((x1, y2), 1),
                            np.stack((x2, y2), 1)], 1).astype(np.float64)  # [n,4,2]
            ph = pts @ M[:, :2].T + M[:, 2]
            xy = ph[..., :2] / ph[..., 2:3]
            lab[:, 1], lab[:, 2] = xy[..., 0].min(1), xy[..., 1].min(1)
            lab[:, 3], lab[:, 4] = xy[..., 0].max(1), xy[..., 1].max(1)
            lab = _clip_filter(lab, 0, 0, self.w, self.h, aug.min_box_px, aug.min_area_kept)
        return out, lab

    @staticmethod
    def _photometric(img, rng, aug: AugConfig):
        r = rng.uniform(-1, 1, 3) * [aug.hsv_h, aug.hsv_s, aug.hsv_v] + 1
        hue, sat, val = cv2.split(cv2.cvtColor(img, cv2.COLOR_RGB2HSV))
        x = np.arange(256, dtype=np.float32)
        lut_h = ((x * r[0]) % 180).astype(np.uint8)
        lut_s = np.clip(x * r[1], 0, 255).astype(np.uint8)
        c = 1 + rng.uniform(-aug.contrast, aug.contrast)
        lut_v = np.clip((x * r[2] - 128) * c + 128, 0, 255).astype(np.uint8)
        hsv = cv2.merge((cv2.LUT(hue, lut_h), cv2.LUT(sat, lut_s), cv2.LUT(val, lut_v)))
        img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        if rng.random() < aug.blur:
            k = int(rng.integers(1, aug.blur_max_kernel // 2 + 1)) * 2 + 1
            if rng.random() < 0.5:
                img = cv2.GaussianBlur(img, (k, k), 0)
            else:  # horizontal motion blur: a moving survey vehicle / panning camera
                kernel = np.zeros((k, k), np.float32)
                kernel[k // 2, :] = 1.0 / k
                img = cv2.filter2D(img, -1, kernel)
        if aug.jpeg and rng.random() < aug.jpeg:
            # phone and dashcam streams arrive as JPEG at every quality: blocking and ringing are normal input
            q = int(rng.integers(aug.jpeg_quality[0], aug.jpeg_quality[1] + 1))
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])
            if ok:
                img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        return img


def repeat_factor_weights(labels: list[np.ndarray], nc: int, thresh: float) -> np.ndarray:
    """LVIS repeat factors r(c) = max(1, sqrt(thresh / f(c))), f(c) = fraction of images holding class c;
    an image gets the largest factor of its classes. Returned normalised as sampling probabilities."""
    has = np.array([[(lab[:, 0] == c).any() for c in range(nc)] for lab in labels])
    f = has.mean(0).clip(1e-6)
    rc = np.maximum(1.0, np.sqrt(thresh / f))
    r = np.where(has, rc[None], 1.0).max(1)
    return r / r.sum()


def _clip_filter(lab, x1, y1, x2, y2, min_px, min_area_kept):
    if not len(lab):
        return lab
    area0 = (lab[:, 3] - lab[:, 1]) * (lab[:, 4] - lab[:, 2])
    lab[:, [1, 3]] = lab[:, [1, 3]].clip(x1, x2)
    lab[:, [2, 4]] = lab[:, [2, 4]].clip(y1, y2)
    w, h = lab[:, 3] - lab[:, 1], lab[:, 4] - lab[:, 2]
    keep = (w >= min_px) & (h >= min_px) & (w * h >= min_area_kept * np.maximum(area0, 1e-6))
    return lab[keep]


class MultiSource:
    """Several YOLO sources (cameras) behind one training stream. Each epoch draws a fixed share of its
    samples from every source whatever the source's size (domain balance); inside a source, repeat-factor
    weights (if any) favour images holding a rare class. A source may not label some classes: `cls_mask`
    (1 = labelled) travels with each sample so the loss ignores those classes' scores on its images
    (mosaic draws its other three tiles from the same source, so the mask stays true)."""

    def __init__(self, sources: list[dict], size_hw, ref_hw, names: list[str], epoch_size: int | None = None):
        self.names = [src["name"] for src in sources]
        self.parts: list[Dataset] = []
        self.masks: list[np.ndarray] = []
        shares = []
        for src in sources:
            ds = Dataset(src["root"], src.get("train", "train.txt"), size_hw, ref_hw=ref_hw)
            if src.get("repeat_thresh"):
                ds.weights = repeat_factor_weights(ds.labels, len(names), src["repeat_thresh"])
            mask = np.ones(len(names), np.float32)
            for c in src.get("unlabelled_classes", []):
                mask[names.index(c)] = 0.0
            self.parts.append(ds)
            self.masks.append(mask)
            shares.append(float(src.get("share", 1.0)))
        self.shares = np.array(shares) / sum(shares)
        self.epoch_size = epoch_size or sum(len(p) for p in self.parts)

    def __len__(self):
        return self.epoch_size

    def epoch_order(self, rng: np.random.Generator) -> np.ndarray:
        """[epoch_size, 2] rows of (source, image), shuffled across sources."""
        counts = np.floor(self.shares * self.epoch_size).astype(int)
        counts[: self.epoch_size - counts.sum()] += 1
        rows = []
        for s, (ds, n) in enumerate(zip(self.parts, counts)):
            if ds.weights is not None:
                idx = rng.choice(len(ds), n, replace=True, p=ds.weights)
            else:  # whole passes over the source, then a partial one
                idx = np.concatenate([rng.permutation(len(ds)) for _ in range(-(-n // len(ds)))])[:n]
            rows.append(np.stack((np.full(n, s), idx), 1))
        order = np.concatenate(rows)
        return order[rng.permutation(len(order))]

    def train_item(self, row, rng: np.random.Generator, aug: AugConfig):
        s, i = int(row[0]), int(row[1])
        img, lab = self.parts[s].train_item(i, rng, aug)
        return img, lab, self.masks[s]


def collate(items):
    """uint8 HWC images + per-image labels (+ optional per-image class mask) -> float [B,3,H,W] in 0..1,
    padded [B,M,5] + mask, and [B,nc] class-loss mask (None when no item carries one)."""
    imgs = torch.from_numpy(np.stack([it[0] for it in items])).permute(0, 3, 1, 2).float().div_(255)
    m = max(1, max(len(it[1]) for it in items))
    gt = torch.zeros(len(items), m, 5)
    mask = torch.zeros(len(items), m, dtype=torch.bool)
    for b, it in enumerate(items):
        l = it[1]
        if len(l):
            gt[b, :len(l)] = torch.from_numpy(l)
            mask[b, :len(l)] = True
    cls_mask = torch.from_numpy(np.stack([it[2] for it in items])) if len(items[0]) > 2 else None
    return imgs, gt, mask, cls_mask


def epoch_order(ds, rng: np.random.Generator) -> np.ndarray:
    if hasattr(ds, "epoch_order"):
        return ds.epoch_order(rng)
    if ds.weights is None:
        return rng.permutation(len(ds))
    # repeat-factor sampling: same epoch length, rare-class images drawn more often
    return rng.choice(len(ds), len(ds), replace=True, p=ds.weights)


class EpochItems(torch.utils.data.Dataset):
    """The k-th augmented sample of an epoch, drawn with its own generator seeded by (seed, epoch, k):
    the augmentation stream is the same whatever the number of loader workers or their scheduling."""

    def __init__(self, ds: Dataset, order: np.ndarray, seed: int, epoch: int, aug: AugConfig):
        self.ds, self.order, self.seed, self.epoch, self.aug = ds, order, seed, epoch, aug

    def __len__(self):
        return len(self.order)

    def __getitem__(self, k: int):
        rng = np.random.default_rng([self.seed, self.epoch, k])
        row = self.order[k]
        return self.ds.train_item(row if np.ndim(row) else int(row), rng, self.aug)


def batches(ds, batch_size: int, seed: int, epoch: int, aug: AugConfig, workers: int = 0):
    rng = np.random.default_rng([seed, epoch])
    items = EpochItems(ds, epoch_order(ds, rng), seed, epoch, aug)
    # drop the ragged last batch: BN statistics of 2 images are noise
    # prefetch_factor only with workers (torch 1.13 rejects even None without them)
    extra = {"prefetch_factor": 4} if workers else {}
    return torch.utils.data.DataLoader(items, batch_size=batch_size, shuffle=False, drop_last=True,
                                       num_workers=workers, collate_fn=collate, pin_memory=workers > 0,
                                       persistent_workers=False, **extra)
