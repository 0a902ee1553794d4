"""Batch augmentation from ``[augment]``: random transforms of whole batches on the run's device.

The Trainer calls ``BatchAugment(x, y)`` on each training batch after it is on the
device; validation batches never pass through it. Batches arrive normalized
(``(pixels / 255 - mean) / std``): the geometric transforms and erasing work on
them as they are (a zero fill is the mean colour); brightness and contrast are
applied in pixel space ([0, 1]), where their clipping means something. Mixup and
CutMix mix pairs of the batch and return soft targets (N, classes), which the
cross-entropy and BCE losses accept.

Why not kornia (kornia.augmentation's modules, kornia.enhance's colour ops): on this
2-core CPU each module costs 10 to 130 ms per batch of 64 images of 64x64
(parameter sampling and checks, one warp per module, a dozen passes over the
batch for brightness and contrast), more than a small CNN's training step. Here
the random resized crop, the flips and the rotation are one affine matrix per
image and a single ``grid_sample``, brightness and contrast one multiply-add and
one clamp: a few passes over the batch, on any device.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from engine.config import RunConfig


class BatchAugment(nn.Module):
    """The training-batch transform of a run's ``[augment]`` section.

    Random draws come from torch's global generator (seeded by ``train.seed`` and
    saved in checkpoints), so a run's augmentation is repeatable.
    """

    def __init__(self, cfg: RunConfig, input_shape: tuple[int, ...], num_classes: int,
                 mean: list[float], std: list[float]):
        super().__init__()
        self.a = cfg.augment
        self.num_classes = num_classes
        self._grid: torch.Tensor | None = None
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    @torch.no_grad()
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.a
        x = x.float()
        if a.crop_scale < 1.0 or a.rotation:
            x = self._warp(x)
        elif a.hflip or a.vflip:  # flips alone: exact, no resampling
            x = self._flip(x)
        if a.brightness or a.contrast:
            x = self._colour(x)
        if a.erasing:
            x = self._erase(x)
        if a.mixup or a.cutmix:
            return self._mix(x, y)
        return x, y

    def _uniform(self, n: int, lo: float, hi: float) -> torch.Tensor:
        return torch.rand(n) * (hi - lo) + lo

    def _warp(self, x: torch.Tensor) -> torch.Tensor:
        """Crop (area share, aspect 3/4 to 4/3, anywhere), flips and rotation as one affine
        map per image from output to input coordinates ([-1, 1]), sampled bilinearly."""
        a, n = self.a, len(x)
        if a.crop_scale < 1.0:
            area = self._uniform(n, a.crop_scale, 1.0)
            aspect = torch.exp(self._uniform(n, math.log(3 / 4), math.log(4 / 3)))
            w = torch.sqrt(area * aspect).clamp(max=1.0)
            h = torch.sqrt(area / aspect).clamp(max=1.0)
        else:
            w = h = torch.ones(n)
        cx = self._uniform(n, -1.0, 1.0) * (1 - w)
        cy = self._uniform(n, -1.0, 1.0) * (1 - h)
        fx = torch.where(torch.rand(n) < a.hflip, -1.0, 1.0)
        fy = torch.where(torch.rand(n) < a.vflip, -1.0, 1.0)
        angle = self._uniform(n, -1.0, 1.0) * math.radians(a.rotation)
        cos, sin = torch.cos(angle), torch.sin(angle)
        # crop(rotate(flip(p))): diag(w, h) @ R(angle) @ diag(fx, fy), then + (cx, cy)
        theta = torch.stack([torch.stack([w * cos * fx, -w * sin * fy, cx], 1),
                             torch.stack([h * sin * fx, h * cos * fy, cy], 1)], 1)
        grid = torch.matmul(self._base_grid(x), theta.to(x.device).transpose(1, 2)[:, None])
        return nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="zeros",
                                         align_corners=False)

    def _base_grid(self, x: torch.Tensor) -> torch.Tensor:
        """(H, W, 3) output pixel centres in [-1, 1] with a 1 appended, as affine_grid makes
        them (align_corners=False); kept between batches."""
        h, w = x.shape[-2:]
        if self._grid is None or self._grid.shape[:2] != (h, w) or \
                self._grid.device != x.device:
            ys = (torch.arange(h, device=x.device) * 2 + 1) / h - 1
            xs = (torch.arange(w, device=x.device) * 2 + 1) / w - 1
            gy, gx = torch.meshgrid(ys, xs, indexing="ij")
            self._grid = torch.stack([gx, gy, torch.ones_like(gx)], dim=-1).float()
        return self._grid

    def _flip(self, x: torch.Tensor) -> torch.Tensor:
        n = len(x)
        for p, dim in ((self.a.hflip, 3), (self.a.vflip, 2)):
            if p:
                pick = (torch.rand(n) < p).to(x.device).view(-1, 1, 1, 1)
                x = torch.where(pick, x.flip(dim), x)
        return x

    def _colour(self, x: torch.Tensor) -> torch.Tensor:
        """Brightness (add s) and contrast (scale by k around the image's mean m) of the
        pixels p = x * std + mean, clipped to [0, 1] once: clamp(k * (p - m) + m + s).
        Per image and channel that is one multiply-add of x, then the clamp."""
        a, n = self.a, len(x)
        shift = self._uniform(n, -a.brightness, a.brightness).to(x.device).view(-1, 1, 1, 1)
        k = self._uniform(n, 1 - a.contrast, 1 + a.contrast).to(x.device).view(-1, 1, 1, 1)
        channel_means = x.mean(dim=(2, 3), keepdim=True) * self.std + self.mean
        m = channel_means.mean(dim=1, keepdim=True)  # the image's mean pixel value
        scale = self.std * k
        offset = self.mean * k + (1 - k) * m + shift
        pixels = torch.addcmul(offset, x, scale).clamp_(0.0, 1.0)
        return pixels.sub_(self.mean).div_(self.std)

    def _erase(self, x: torch.Tensor) -> torch.Tensor:
        """Blank (to the mean colour) one rectangle of 2% to 33% of the area, aspect 0.3 to
        3.3, in each image picked with probability ``augment.erasing``."""
        n, (hgt, wid) = len(x), x.shape[-2:]
        area = self._uniform(n, 0.02, 0.33) * hgt * wid
        aspect = torch.exp(self._uniform(n, math.log(0.3), math.log(3.3)))
        h = torch.sqrt(area * aspect).clamp(1, hgt).floor()
        w = torch.sqrt(area / aspect).clamp(1, wid).floor()
        top = (torch.rand(n) * (hgt - h + 1)).floor()
        left = (torch.rand(n) * (wid - w + 1)).floor()
        on = torch.rand(n) < self.a.erasing
        rows = torch.arange(hgt).view(1, -1)
        cols = torch.arange(wid).view(1, -1)
        inside_r = (rows >= top[:, None]) & (rows < (top + h)[:, None])
        inside_c = (cols >= left[:, None]) & (cols < (left + w)[:, None])
        mask = (inside_r[:, :, None] & inside_c[:, None, :] & on[:, None, None])
        return x.masked_fill(mask[:, None].to(x.device), 0.0)

    def _mix(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mixup or CutMix (one of them per batch when both are on): soft targets."""
        a = self.a
        use_cutmix = bool(a.cutmix) and (not a.mixup or bool(torch.rand(()) < 0.5))
        alpha = a.cutmix if use_cutmix else a.mixup
        lam = float(torch.distributions.Beta(alpha, alpha).sample())
        perm = torch.randperm(len(x)).to(x.device)
        if use_cutmix:
            x, lam = _paste_box(x, perm, lam)
        else:
            x = lam * x + (1 - lam) * x[perm]
        soft = nn.functional.one_hot(y, self.num_classes).to(x.dtype)
        return x, lam * soft + (1 - lam) * soft[perm]


def _paste_box(x: torch.Tensor, perm: torch.Tensor, lam: float) -> tuple[torch.Tensor, float]:
    """CutMix: a box of (1 - lam) of the area from the paired image; lam as actually pasted."""
    h, w = x.shape[-2:]
    cut = math.sqrt(1.0 - lam)
    bh, bw = int(h * cut), int(w * cut)
    cy, cx = int(torch.randint(0, h, ())), int(torch.randint(0, w, ()))
    y0, y1 = max(cy - bh // 2, 0), min(cy + bh // 2, h)
    x0, x1 = max(cx - bw // 2, 0), min(cx + bw // 2, w)
    x = x.clone()
    x[..., y0:y1, x0:x1] = x[perm][..., y0:y1, x0:x1]
    return x, 1.0 - (y1 - y0) * (x1 - x0) / (h * w)


def build_augment(cfg: RunConfig, data, device: torch.device) -> BatchAugment | None:
    """The run's batch augmentation on ``device``, or None when ``[augment]`` is off or
    does not apply (tabular data)."""
    if not (cfg.applies("augment.enabled") and cfg.augment.enabled):
        return None
    mean, std = normalization(data)
    return BatchAugment(cfg, tuple(data.input_shape), int(data.num_classes), mean,
                        std).to(device)


def normalization(data) -> tuple[list[float], list[float]]:
    """Per-channel (mean, std) that turn a batch back into [0, 1] pixels: an image
    folder's fitted statistics; for a built-in image set, its min-max range over training."""
    image = data.preprocessing.get("image")
    if image:
        return list(image["mean"]), list(image["std"])
    channels = data.input_shape[0]
    x = data.x_train
    lo, hi = float(x.min()), float(x.max())
    return [-lo / (hi - lo)] * channels, [1.0 / (hi - lo)] * channels


def preview_grid(cfg: RunConfig, count: int = 16, *, seed: int = 0,
                 data=None) -> np.ndarray:
    """A grid of ``count`` augmented training samples as an (H, W, 3) uint8 image: the first
    training images, each through the run's augmentation (mixup/CutMix included)."""
    from .datasets import load_dataset

    data = data if data is not None else load_dataset(cfg)
    mean, std = normalization(data)
    n = min(count, len(data.x_train))
    x = data.x_train[:n] if isinstance(data.x_train, torch.Tensor) else data.x_train[slice(0, n)]
    augment = build_augment(cfg, data, torch.device("cpu"))
    if augment is not None:
        state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            x, _ = augment(x, data.y_train[:n])
        finally:
            torch.random.set_rng_state(state)
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    pixels = ((x.float() * s + m).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    return tile(pixels)


def tile(images: np.ndarray, gap: int = 2) -> np.ndarray:
    """(N, C, H, W) uint8 images side by side in a near-square grid, as (H, W, 3) RGB."""
    n, c, h, w = images.shape
    if c == 1:
        images = np.repeat(images, 3, axis=1)
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.full((rows * (h + gap) + gap, cols * (w + gap) + gap, 3), 128, dtype=np.uint8)
    for i in range(n):
        r, q = divmod(i, cols)
        top, left = gap + r * (h + gap), gap + q * (w + gap)
        grid[top:top + h, left:left + w] = images[i, :3].transpose(1, 2, 0)
    return grid
