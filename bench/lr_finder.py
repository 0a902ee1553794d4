"""LR range test quality: training at the suggested rate against a 7-point log grid of rates.

For each problem, `lr_range_test` (engine.experiments.lr_finder) suggests
optim.lr; then the problem is trained once at the suggestion and once at each
rate of the grid 1e-5, 1e-4, ..., 10, with the same seed and epochs, and the
final validation accuracy of each (the mean over three seeds) is compared. The bar (issue 18): the
suggestion ends within 1 point of the grid's best on every problem.

    python bench/lr_finder.py [--epochs-scale 1.0] [--threads 1]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GRID = [10.0 ** k for k in range(-5, 2)]
# name, example file, overrides (small epochs: a CPU benchmark, run once)
PROBLEMS = [
    ("digits MLP", "digits-cnn.toml", ["model.arch=mlp", "model.hidden=[128]",
                                       "train.epochs=8"]),
    ("digits CNN", "digits-cnn.toml", ["train.epochs=4"]),
    ("breast cancer MLP", "breast-cancer-mlp.toml", ["train.epochs=15",
                                                     "regularization.early_stopping_patience=0"]),
]


def final_accuracy(cfg, seeds: int) -> float:
    """The last epoch's validation accuracy, the mean over ``seeds`` seeds (a small
    validation split moves a point or two with the seed alone)."""
    return sum(one_accuracy(cfg.with_overrides([f"train.seed={seed}"]))
               for seed in range(seeds)) / seeds


def one_accuracy(cfg) -> float:
    """The last epoch's validation accuracy; 0 for a run whose loss diverged."""
    from engine.run_builder import build_trainer
    from engine.training import events as ev

    trainer = build_trainer(cfg)
    seen = []
    trainer.on(ev.ValidationEnded, seen.append)
    result = trainer.run()
    if result.status != "completed" or not seen:
        return 0.0
    value = seen[-1].metrics.get("val_accuracy", math.nan)
    return value if math.isfinite(value) else 0.0


def main() -> None:
    import torch

    from engine.config import RunConfig
    from engine.experiments.lr_finder import lr_range_test
    from engine.run_builder import build_trainer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs-scale", type=float, default=1.0,
                        help="multiply each problem's epochs (smoke tests use less)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--problems", type=int, default=len(PROBLEMS))
    parser.add_argument("--seeds", type=int, default=3, help="seeds per rate (default 3)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("| problem | suggested lr | val acc at suggestion | best grid lr | best grid acc | "
          "gap (points) | within 1 point | grid accs 1e-5 … 10 | s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, example, overrides in PROBLEMS[:args.problems]:
        started = time.perf_counter()
        cfg = RunConfig.load(ROOT / "examples" / example).with_overrides(overrides)
        epochs = max(1, round(cfg.train.epochs * args.epochs_scale))
        cfg = cfg.with_overrides([f"train.epochs={epochs}"])
        sweep = lr_range_test(build_trainer(cfg))
        lr = sweep.suggested_lr
        acc = final_accuracy(cfg.with_overrides([f"optim.lr={lr!r}"]), args.seeds)
        grid = [final_accuracy(cfg.with_overrides([f"optim.lr={g!r}"]), args.seeds)
                for g in GRID]
        best = max(range(len(GRID)), key=grid.__getitem__)
        gap = 100 * (grid[best] - acc)
        print(f"| {name} | {lr:.3g} | {acc:.4f} | {GRID[best]:g} | {grid[best]:.4f} | "
              f"{gap:+.1f} | {'yes' if gap <= 1.0 else 'NO'} | "
              f"{' '.join(f'{a:.3f}' for a in grid)} | {time.perf_counter() - started:.0f} |",
              flush=True)


if __name__ == "__main__":
    main()
