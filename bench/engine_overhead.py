"""How much does the Trainer cost over a minimal hand-written PyTorch loop?

Both train the same MLP on the same synthetic data in this one process. They
alternate in short windows (A B, then B A, ...) so that this machine's large
swings in speed hit both alike; each pair gives a ratio of steps/s and the
median ratio is the figure. Model and data are built outside the timed part.

    python bench/engine_overhead.py [--pairs 12] [--window 150]
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
from engine.data import load_dataset  # noqa: E402
from engine.training import Trainer  # noqa: E402

CONFIG = {"data.dataset": "synthetic", "data.n_samples": 100000, "data.n_features": 64,
          "data.n_classes": 4, "data.batch_size": 256, "model.arch": "mlp",
          "model.hidden": [256, 256], "optim.name": "adam", "optim.lr": 1e-3,
          "train.epochs": 1000, "train.device": "cpu", "train.log_every": 10}


def config(window: int) -> RunConfig:
    cfg = RunConfig()
    for key, value in CONFIG.items():
        cfg.set(key, value)
    cfg.set("train.max_steps", window)
    cfg.validate()
    return cfg


def trainer_window(cfg: RunConfig) -> float:
    trainer = Trainer(cfg)  # built outside the timed part, like the hand-written model
    start = time.perf_counter()
    result = trainer.run()
    elapsed = time.perf_counter() - start
    assert result.status == "completed" and result.steps == cfg.train.max_steps, result
    return result.steps / elapsed


def handwritten_window(cfg: RunConfig, x: torch.Tensor, y: torch.Tensor) -> float:
    torch.manual_seed(cfg.train.seed)
    d, (h1, h2) = x.shape[1], cfg.model.hidden
    model = nn.Sequential(nn.Linear(d, h1), nn.ReLU(), nn.Linear(h1, h2), nn.ReLU(),
                          nn.Linear(h2, int(y.max()) + 1))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr)
    loss_fn = nn.CrossEntropyLoss()
    bs, steps, n = cfg.data.batch_size, cfg.train.max_steps, len(x)
    done = 0
    start = time.perf_counter()
    while done < steps:
        perm = torch.randperm(n)
        for i in range(0, n, bs):
            idx = perm[i:i + bs]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            done += 1
            if done % cfg.train.log_every == 0:
                loss.item()  # a real loop reads its loss now and then too
            if done == steps:
                break
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=12)
    parser.add_argument("--window", type=int, default=150, help="optimizer steps per window")
    args = parser.parse_args()
    cfg = config(args.window)
    data = load_dataset(cfg)
    per_epoch = -(-len(data.x_train) // cfg.data.batch_size)
    if args.window > per_epoch:  # validation at an epoch end is not loop overhead
        parser.error(f"--window must be <= {per_epoch} steps, the length of one epoch")
    x, y = data.x_train, data.y_train
    trainer_window(cfg), handwritten_window(cfg, x, y)  # warm-up: allocator, threads
    ratios, ours, theirs = [], [], []
    for pair in range(args.pairs):
        if pair % 2 == 0:
            a = trainer_window(cfg)
            b = handwritten_window(cfg, x, y)
        else:
            b = handwritten_window(cfg, x, y)
            a = trainer_window(cfg)
        ours.append(a)
        theirs.append(b)
        ratios.append(a / b)
        print(f"pair {pair + 1:2d}: trainer {a:7.1f} steps/s  hand-written {b:7.1f} steps/s  "
              f"ratio {a / b:.3f}", flush=True)
    print()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; MLP "
          f"{x.shape[1]}-{'-'.join(map(str, cfg.model.hidden))}-{int(y.max()) + 1}, batch "
          f"{cfg.data.batch_size}, {args.pairs} pairs of {args.window}-step windows")
    print("| measure | Trainer | hand-written | ratio |")
    print("|---|---|---|---|")
    print(f"| median steps/s | {statistics.median(ours):.1f} | {statistics.median(theirs):.1f} "
          f"| {statistics.median(ratios):.3f} |")
    print(f"| min / max ratio | | | {min(ratios):.3f} / {max(ratios):.3f} |")


if __name__ == "__main__":
    main()
