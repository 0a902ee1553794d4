"""An image folder as a run's DataBundle: the seeded stratified split every dataset gets
(datasets.split_rows: test, validation, cross-validation folds), per-channel
normalization fitted on the training rows, held in memory or streamed from the cache.

A set whose float32 tensors fit comfortably in free memory becomes tensors, as
every other dataset; a larger one stays in the memory-mapped uint8 cache and
``x_train``/``x_val`` are ``ImageRows``: a torch Dataset that reads and normalizes
only the rows of each batch (in DataLoader workers when ``data.num_workers`` > 0).
``data.image_loading`` forces either.
"""

from __future__ import annotations

import math

import numpy as np
import psutil
import torch
from torch.utils.data import Dataset

from engine.config import ConfigError, RunConfig
from engine.show import show

from .images import decode_images, list_images, report_bad

CHUNK = 2048  # rows normalized at a time: bounds the float copy while filling tensors


class ImageRows(Dataset):
    """Rows of the uint8 cache as normalized float32 (C, S, S) images, read on demand.

    Indexing with an int, a slice or a list/tensor of positions returns a tensor (a
    batch for anything but an int). The memmap is opened lazily in each process, so
    the object is cheap to send to DataLoader workers.
    """

    def __init__(self, file: str, shape: tuple[int, ...], rows: np.ndarray,
                 mean: list[float], std: list[float]):
        self.file, self.cache_shape = str(file), tuple(shape)
        self.rows = np.asarray(rows, dtype=np.int64)
        self.scale, self.offset = pixel_affine(mean, std)
        self._pixels: np.memmap | None = None

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows), *self.cache_shape[1:])

    dtype = torch.float32
    device = torch.device("cpu")

    def __getstate__(self):
        return {**self.__dict__, "_pixels": None}

    def __getitem__(self, index) -> torch.Tensor:
        return self.read(index)

    def read(self, index, out: torch.Tensor | None = None) -> torch.Tensor:
        """The rows at ``index`` (positions in this split), normalized, into ``out`` if given."""
        return self.normalize(self.pixels(index), out)

    def normalize(self, pixels: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 rows from ``pixels`` as the model's float input."""
        return torch.addcmul(self.offset, pixels.float(), self.scale, out=out)

    def pixels(self, index) -> torch.Tensor:
        """The uint8 rows at ``index``, as the cache holds them."""
        if self._pixels is None:
            self._pixels = np.memmap(self.file, dtype=np.uint8, mode="r", shape=self.cache_shape)
        if isinstance(index, torch.Tensor):
            index = index.numpy()
        rows = self.rows[index]
        single = np.ndim(rows) == 0
        order = np.argsort(rows) if not single else None  # read the file front to back
        raw = self._pixels[rows if single else rows[order]]
        if not single:
            raw = raw[np.argsort(order)]
        return torch.from_numpy(np.ascontiguousarray(raw))


def pixel_affine(mean: list[float], std: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, offset) of shape (C, 1, 1): ``(p / 255 - mean) / std`` as one multiply-add
    ``p * scale + offset`` (torch.addcmul), the arithmetic of training and of predict."""
    std_t = torch.tensor(std, dtype=torch.float64).view(-1, 1, 1)
    scale = (1.0 / (255.0 * std_t)).float()
    offset = (-torch.tensor(mean, dtype=torch.float64).view(-1, 1, 1) / std_t).float()
    return scale, offset


def load_images(cfg: RunConfig):
    """The DataBundle of an ``images:`` dataset (see the module's docstring)."""
    from .datasets import DataBundle, split_rows

    d, name = cfg.data, cfg.data.dataset
    listing = list_images(name)
    decoded = decode_images(listing, d.image_size, d.channels)
    report_bad(name, listing, decoded.bad, d.on_bad_file)
    good = np.asarray([i for i in range(len(listing.paths)) if i not in decoded.bad],
                      dtype=np.int64)
    labels = listing.labels[good]
    counts = np.bincount(labels, minlength=len(listing.class_names))
    if counts.min() == 0:
        empty = listing.class_names[int(counts.argmin())]
        raise ConfigError(f"data.dataset={show(name)}: class {empty!r} has no image that can "
                          f"be decoded: add images to it or remove its folder")
    train, val, test = split_rows(cfg, labels, listing.class_names,
                                  too_few="add images to it")
    train_rows, val_rows = good[train], good[val]
    test_rows = None if test is None else good[test]
    mean, std = fit_normalization(decoded.pixels, train_rows)
    shape = (d.channels, d.image_size, d.image_size)
    y_all = np.zeros(len(listing.paths), dtype=np.int64)
    y_all[good] = labels
    bytes_needed = 4 * math.prod(shape) * len(good)
    stream = d.image_loading == "stream" or (
        d.image_loading == "auto" and bytes_needed > psutil.virtual_memory().available // 2)
    x_train, x_val, x_test = (
        None if rows is None else ImageRows(str(decoded.path), decoded.pixels.shape, rows,
                                            mean, std)
        for rows in (train_rows, val_rows, test_rows))
    if not stream:
        x_train, x_val = _in_memory(x_train), _in_memory(x_val)
        x_test = None if x_test is None else _in_memory(x_test)
    preprocessing = {
        "dataset": name,
        "task": "classification",
        "input_shape": list(shape),
        "feature_names": [],
        "feature_mean": None,
        "feature_std": None,
        "target_mean": 0.0,
        "target_std": 1.0,
        "class_names": listing.class_names,
        # to feed a model: pixels (C, S, S) in [0, 255] -> (pixels / 255 - mean[c]) / std[c]
        "image": {"size": d.image_size, "channels": d.channels, "resize": "bilinear, squashed",
                  "scale": 1 / 255, "mean": mean, "std": std,
                  "skipped": len(decoded.bad),
                  "skipped_files": [str(listing.paths[i]) for i in sorted(decoded.bad)[:20]]},
    }
    return DataBundle(
        x_train=x_train, y_train=torch.from_numpy(y_all[train_rows]),
        x_val=x_val, y_val=torch.from_numpy(y_all[val_rows]),
        x_test=x_test, y_test=None if test_rows is None else torch.from_numpy(y_all[test_rows]),
        input_shape=shape, task="classification", num_classes=len(listing.class_names),
        class_names=listing.class_names, feature_names=[], target_mean=0.0, target_std=1.0,
        preprocessing=preprocessing)


def fit_normalization(pixels: np.ndarray, rows: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of ``pixels[rows] / 255`` (the training rows).

    Counted exactly from each channel's histogram of the 256 uint8 values, which is
    far faster than summing the pixels as floats."""
    channels = pixels.shape[1]
    counts = np.zeros((channels, 256), dtype=np.int64)
    rows = np.sort(rows)
    for lo in range(0, len(rows), CHUNK):
        block = pixels[rows[lo:lo + CHUNK]]
        for c in range(channels):
            counts[c] += np.bincount(block[:, c].ravel(), minlength=256)
    values = np.arange(256) / 255.0
    n = counts.sum(axis=1)
    mean = counts @ values / n
    std = np.sqrt(np.maximum(counts @ values ** 2 / n - mean ** 2, 0.0))
    std = np.where(std < 1e-6, 1.0, std)  # a constant channel: leave its scale alone
    return [float(m) for m in mean], [float(s) for s in std]


def _in_memory(rows: ImageRows) -> torch.Tensor:
    out = torch.empty(rows.shape, dtype=torch.float32)
    for lo in range(0, len(rows), CHUNK):
        rows.read(slice(lo, lo + CHUNK), out=out[lo:lo + CHUNK])
    return out
