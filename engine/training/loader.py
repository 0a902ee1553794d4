"""Batches over in-memory tensors, in an order fixed by (seed, epoch).

The order of an epoch depends only on the seed and the epoch number, never on
the batch size, and a loader can start part-way into an epoch. That is what
makes resume exact (a run continues with the very batch it stopped before) and
gradient accumulation exact (k batches of b are the same samples as one of k*b).

With no worker processes the batches are gathered by indexing the tensors
directly: for data that already sits in memory, a DataLoader's per-sample
fetch and collate only adds time. With workers, a DataLoader fetches whole
batches by index lists in the worker processes, pinned if asked.
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The sample order of one epoch (epochs numbered from 1)."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=gen)


class _BatchedTensors(Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, indices):
        idx = torch.as_tensor(indices)
        return self.x[idx], self.y[idx]


class _BatchIndices(Sampler):
    def __init__(self, batches):
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self):
        return len(self.batches)


def _keep_batch(batch):
    return batch


class BatchLoader:
    """Iterable of (x, y) batches for one epoch; ``len`` is the batch count of a full epoch."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, *, shuffle: bool,
                 seed: int = 0, num_workers: int = 0, pin_memory: bool = False,
                 device: torch.device | None = None):
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.num_workers = num_workers
        self.pin_memory = pin_memory and torch.cuda.is_available()
        self.n = len(x)
        # Small in-memory sets on an accelerator: keep them there, no per-batch copy at all.
        if device is not None and device.type != "cpu" and num_workers == 0:
            self.x, self.y = x.to(device), y.to(device)
        self.on_device = self.x.device

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def batch_sizes(self) -> list[int]:
        full, rest = divmod(self.n, self.batch_size)
        return [self.batch_size] * full + ([rest] if rest else [])

    def epoch(self, epoch: int, start_batch: int = 0):
        """Yield the batches of ``epoch`` from batch index ``start_batch`` on."""
        if self.shuffle:
            order = epoch_order(self.n, self.seed, epoch)
        else:
            order = torch.arange(self.n)
        order = order.to(self.on_device)
        bounds = [(i, min(i + self.batch_size, self.n))
                  for i in range(start_batch * self.batch_size, self.n, self.batch_size)]
        if self.num_workers == 0:
            if not self.shuffle:
                for lo, hi in bounds:
                    yield self.x[lo:hi], self.y[lo:hi]
                return
            for lo, hi in bounds:
                idx = order[lo:hi]
                batch = self.x[idx], self.y[idx]
                if self.pin_memory:
                    batch = batch[0].pin_memory(), batch[1].pin_memory()
                yield batch
            return
        batches = [order[lo:hi].tolist() for lo, hi in bounds]
        loader = DataLoader(_BatchedTensors(self.x, self.y), sampler=_BatchIndices(batches),
                            batch_size=None, num_workers=self.num_workers,
                            pin_memory=self.pin_memory, collate_fn=_keep_batch,
                            persistent_workers=False)
        yield from loader
