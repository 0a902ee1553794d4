"""How much does the Trainer cost over a minimal hand-written PyTorch loop?

Both train the same MLP on the same synthetic data in this one process, and
take turns in short windows of ``--window`` steps, each side timed around its
own turn, who goes first alternating. Both members of a pair see the same
moment of this machine, whose speed swings widely (identical loops differ by up to 20%
from run to run); each pair gives a ratio of steps/s and the median ratio is
the figure. Windows that contain an epoch end are left out: validation is work
the hand-written loop does not do, not overhead.

    python bench/engine_overhead.py [--pairs 200] [--window 20] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.config import RunConfig  # noqa: E402
from engine.training import Trainer  # noqa: E402
from engine.training import events as ev  # noqa: E402

CONFIG = {"data.dataset": "synthetic", "data.n_samples": 100000, "data.n_features": 64,
          "data.n_classes": 4, "data.batch_size": 256, "model.arch": "mlp",
          "model.hidden": [256, 256], "optim.name": "adam", "optim.lr": 1e-3,
          # the hand-written loop's Adam is torch's default, the for-loop on the CPU: the
          # same update on both sides, so the ratio is the Trainer's own overhead
          "optim.implementation": "for-loop",
          "train.epochs": 100000, "train.device": "cpu", "train.log_every": 10}


def config() -> RunConfig:
    cfg = RunConfig()
    for key, value in CONFIG.items():
        cfg.set(key, value)
    cfg.validate()
    return cfg


class HandWritten:
    """The loop a person writes in a notebook: randperm, slice, forward, backward, step."""

    def __init__(self, cfg: RunConfig, x: torch.Tensor, y: torch.Tensor):
        torch.manual_seed(cfg.train.seed)
        d, (h1, h2) = x.shape[1], cfg.model.hidden
        self.model = nn.Sequential(nn.Linear(d, h1), nn.ReLU(), nn.Linear(h1, h2), nn.ReLU(),
                                   nn.Linear(h2, int(y.max()) + 1))
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.optim.lr)
        self.loss_fn = nn.CrossEntropyLoss()
        self.x, self.y, self.bs = x, y, cfg.data.batch_size
        self.log_every = cfg.train.log_every
        self.batches = iter(())
        self.done = 0

    def _next_batch(self):
        idx = next(self.batches, None)
        if idx is None:
            perm = torch.randperm(len(self.x))
            self.batches = iter(perm.split(self.bs))
            idx = next(self.batches)
        return self.x[idx], self.y[idx]

    def run(self, steps: int) -> float:
        """Train ``steps`` steps; returns steps/s."""
        start = time.perf_counter()
        for _ in range(steps):
            xb, yb = self._next_batch()
            self.opt.zero_grad(set_to_none=True)
            loss = self.loss_fn(self.model(xb), yb)
            loss.backward()
            self.opt.step()
            self.done += 1
            if self.done % self.log_every == 0:
                loss.item()  # a real loop reads its loss now and then too
        return steps / (time.perf_counter() - start)


class TrainerTurns:
    """The Trainer, run a few steps at a time: each turn raises train.max_steps and continues.

    A turn is timed around the whole ``run()`` call, so the Trainer also pays
    for starting and ending a run at every turn (events, a last metrics read).
    """

    def __init__(self, cfg: RunConfig):
        self.trainer = Trainer(cfg)
        self.epoch_end = False
        self.trainer.on(ev.EpochEnded, self._epoch_end)

    def _epoch_end(self, e) -> None:
        self.epoch_end = True

    def run(self, steps: int) -> tuple[float, bool]:
        """Train ``steps`` more steps; returns steps/s and whether an epoch ended meanwhile."""
        t = self.trainer
        t.config.train.max_steps = t.step + steps
        self.epoch_end = False
        start = time.perf_counter()
        result = t.run()
        elapsed = time.perf_counter() - start
        assert result.status == "completed" and result.steps == t.config.train.max_steps, result
        return steps / elapsed, self.epoch_end


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--window", type=int, default=20, help="steps per turn (a multiple "
                        "of train.log_every)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = config()
    ours = TrainerTurns(cfg)
    data = ours.trainer.data
    theirs = HandWritten(cfg, data.x_train, data.y_train)
    ours.run(args.window), theirs.run(args.window)  # warm-up of both sides
    pairs, skipped = [], 0
    while len(pairs) < args.pairs:
        if len(pairs) % 2:  # alternate who goes first
            (a, epoch_end), b = ours.run(args.window), theirs.run(args.window)
        else:
            b = theirs.run(args.window)
            a, epoch_end = ours.run(args.window)
        if epoch_end:  # validation is work the hand-written loop does not do
            skipped += 1
            continue
        pairs.append((a, b))
    ratios = [a / b for a, b in pairs]
    for i, (a, b) in enumerate(pairs, 1):
        print(f"pair {i:3d}: trainer {a:7.1f} steps/s  hand-written {b:7.1f} steps/s  "
              f"ratio {a / b:.3f}")
    print()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; MLP "
          f"{cfg.data.n_features}-{'-'.join(map(str, cfg.model.hidden))}-{cfg.data.n_classes}, "
          f"batch {cfg.data.batch_size}, {len(pairs)} pairs of {args.window}-step turns "
          f"({skipped} with an epoch end left out)")
    print("| measure | Trainer | hand-written | Trainer / hand-written |")
    print("|---|---|---|---|")
    print(f"| median steps/s | {statistics.median(a for a, _ in pairs):.1f} | "
          f"{statistics.median(b for _, b in pairs):.1f} | |")
    q = statistics.quantiles(ratios, n=4)
    print(f"| ratio of a pair: median (quartiles) | | | {statistics.median(ratios):.3f} "
          f"({q[0]:.3f} - {q[2]:.3f}) |")


if __name__ == "__main__":
    main()
