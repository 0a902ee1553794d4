"""Batches over in-memory tensors, in an order fixed by (seed, epoch).

The order of an epoch depends only on the seed and the epoch number, never on
the batch size, and a loader can start part-way into an epoch. That is what
makes resume exact (a run continues with the very batch it stopped before) and
gradient accumulation exact (k batches of b are the same samples as one of k*b).

With no worker processes the batches are gathered by indexing the tensors
directly: for data that already sits in memory, a DataLoader's per-sample
fetch and collate only adds time. With workers, a DataLoader fetches whole
batches by index lists in the worker processes, pinned if asked. Data that is
not a tensor (an image folder streamed from its cache: engine.data.image_bundle)
is always read batch by batch, in the workers when there are any.
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, WeightedRandomSampler


def epoch_order(n: int, seed: int, epoch: int,
                weights: torch.Tensor | None = None) -> torch.Tensor:
    """The sample order of one epoch (epochs numbered from 1); with ``weights``, n draws
    with replacement in proportion to them (a WeightedRandomSampler on the same seed)."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    if weights is not None:
        return torch.tensor(list(WeightedRandomSampler(weights, n, generator=gen)))
    return torch.randperm(n, generator=gen)


class _BatchedTensors(Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, indices):
        idx = torch.as_tensor(indices)
        if not isinstance(self.x, torch.Tensor):  # reads its own rows, as a batch
            return self.x[idx], self.y.index_select(0, idx)
        return self.x.index_select(0, idx), self.y.index_select(0, idx)


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
                 device: torch.device | None = None, weights: torch.Tensor | None = None,
                 rank: int = 0, world: int = 1):
        """``weights`` (one per sample): draw each epoch's samples with replacement in
        proportion to them (data.oversample) instead of a permutation.

        ``world`` > 1 (a data-parallel run): each batch of the epoch order holds
        ``batch_size * world`` samples, and this loader yields part ``rank`` of each, so the
        ranks see disjoint shards whose union is the batch one process would train on with
        ``batch_size * world``. ``len`` and ``samples_in`` count those whole batches. A last
        batch too small to give every rank a sample is left out of the epoch."""
        self.x, self.y = x, y
        self.rank, self.world = rank, world
        self.weights = weights
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.num_workers = num_workers
        self.pin_memory = pin_memory and torch.cuda.is_available()
        self.n = len(x)
        whole = batch_size * world
        if world > 1 and 0 < self.n % whole < world:
            self.n -= self.n % whole
        self.streamed = not isinstance(x, torch.Tensor)
        # Small in-memory sets on an accelerator: keep them there, no per-batch copy at all.
        if device is not None and device.type != "cpu" and num_workers == 0 and \
                not self.streamed:
            self.x, self.y = x.to(device), y.to(device)
        self.on_device = self.y.device if self.streamed else self.x.device
        self._order: tuple[int, torch.Tensor] | None = None

    def __len__(self) -> int:
        return math.ceil(self.n / (self.batch_size * self.world))

    def samples_in(self, first_batch: int, end_batch: int) -> int:
        """Samples in batches ``first_batch`` up to (not including) ``end_batch`` of an epoch
        (on all ranks together)."""
        whole = self.batch_size * self.world
        return min(end_batch * whole, self.n) - first_batch * whole

    def epoch(self, epoch: int, start_batch: int = 0):
        """Yield the batches of ``epoch`` from batch index ``start_batch`` on."""
        if self.world > 1:
            yield from self._shard(epoch, start_batch)
            return
        first = start_batch * self.batch_size
        if not self.shuffle and not self.streamed:
            yield from zip(self.x[first:].split(self.batch_size),
                           self.y[first:].split(self.batch_size))
            return
        order = self._order_of(epoch)
        bs, n = self.batch_size, self.n
        if self.num_workers == 0 and not self.streamed:
            yield from self._gather(order[lo:lo + bs] for lo in range(first, n, bs))
            return
        yield from self._load([order[lo:lo + bs].tolist() for lo in range(first, n, bs)], epoch)

    def _order_of(self, epoch: int) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(len(self.x))
        if self._order is None or self._order[0] != epoch:  # kept for a resume in the epoch
            self._order = (epoch, epoch_order(len(self.x), self.seed, epoch, self.weights)
                           .to(self.on_device))
        return self._order[1]

    def _shard(self, epoch: int, start_batch: int):
        """This rank's part of each whole batch (see __init__)."""
        order, whole = self._order_of(epoch), self.batch_size * self.world
        parts = (order[lo:lo + whole].tensor_split(self.world)[self.rank]
                 for lo in range(start_batch * whole, self.n, whole))
        if self.num_workers == 0 and not self.streamed:
            yield from self._gather(parts)
        else:
            yield from self._load([idx.tolist() for idx in parts], epoch)

    def _gather(self, indices):
        x, y, pin = self.x, self.y, self.pin_memory
        for idx in indices:  # index_select: a third of the time of x[idx]
            if pin:
                yield x.index_select(0, idx).pin_memory(), y.index_select(0, idx).pin_memory()
            else:
                yield x.index_select(0, idx), y.index_select(0, idx)

    def _load(self, batches: list[list[int]], epoch: int):
        loader = DataLoader(_BatchedTensors(self.x, self.y),
                            sampler=_BatchIndices(batches),
                            batch_size=None, num_workers=self.num_workers,
                            pin_memory=self.pin_memory, collate_fn=_keep_batch,
                            persistent_workers=False,
                            # its own generator: starting workers must not draw from the
                            # global RNG, or dropout would differ from a run without workers
                            generator=torch.Generator().manual_seed(self.seed + epoch))
        yield from loader
