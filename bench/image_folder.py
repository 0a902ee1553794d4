"""Image folders: decode once, then read from the cache; the cost of augmentation.

Generates --count 64x64 PNGs in 10 class folders, then measures, in one process:

1. the first epoch: decoding every image into the cache (one process per CPU, at
   most 8), then one pass over the training batches, as images/s;
2. a later epoch: the same pass from the cache alone (no image file is opened),
   held in memory (what ``data.image_loading = "auto"`` picks for a set that fits)
   and streamed from the memory-mapped cache through 2 loader workers (what a set
   larger than memory gets); and a second load of the dataset (the next run);
3. training samples/s of the default CNN (model.channels [32, 64]) with the default
   augmentation
   (``augment.enabled = true``, every strength at its default) and without:
   two Trainers take turns of a few steps, so that load on the machine hits both
   alike; also their CPU time, which other processes' load does not change.

Bars (issue 17): later epoch >= 10x the first; augmented >= 0.9x plain.

    python bench/image_folder.py [--count 20000] [--pairs 12] [--steps 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_pngs(root: Path, count: int, size: int = 64, seed: int = 0) -> None:
    """``count`` PNGs in 10 folders: a class colour, a class stripe angle, noise."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(count):
        c = i % 10
        folder = root / f"class{c}"
        folder.mkdir(parents=True, exist_ok=True)
        angle = np.pi * c / 10
        stripes = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) / 3.0)
        colour = np.array([25 * c, 255 - 25 * c, 128]) / 255
        pixels = 127 + 80 * stripes[..., None] * colour + rng.normal(0, 20, (size, size, 3))
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / f"{i:06d}.png")


def config(folder: Path, **values):
    from engine.config import RunConfig

    cfg = RunConfig()
    base = {"data.dataset": f"images:{folder}", "data.image_size": 64, "data.channels": 3,
            "data.batch_size": 64, "model.arch": "cnn", "train.epochs": 1,
            "train.checkpoint_every": 0, "train.log_every": 1000}
    for key, value in {**base, **values}.items():
        cfg.set(key, value)
    cfg.validate()
    return cfg


def read_epoch(cfg, data) -> float:
    """Seconds for one pass over the training batches as the Trainer's loader reads them."""
    from engine.training.loader import BatchLoader

    loader = BatchLoader(data.x_train, data.y_train, cfg.data.batch_size, shuffle=True,
                         seed=0, num_workers=cfg.data.num_workers)
    start = time.perf_counter()
    for x, _ in loader.epoch(1):
        x.sum()  # touch the batch
    return time.perf_counter() - start


def epochs(folder: Path) -> None:
    from engine.data import load_dataset

    cfg = config(folder, **{"data.num_workers": 0})  # auto: held in memory, as it fits
    start = time.perf_counter()
    data = load_dataset(cfg)
    decode = time.perf_counter() - start
    first = decode + read_epoch(cfg, data)
    later = read_epoch(cfg, data)
    start = time.perf_counter()
    load_dataset(cfg)
    reload = time.perf_counter() - start
    stream_cfg = config(folder, **{"data.image_loading": "stream", "data.num_workers": 2})
    streamed_data = load_dataset(stream_cfg)
    streamed = min(read_epoch(stream_cfg, streamed_data) for _ in range(2))
    n, total = len(data.x_train), len(data.x_train) + len(data.x_val)
    workers = min(os.cpu_count() or 1, 8)
    print("| epoch | seconds | training images/s |")
    print("|---|---|---|")
    print(f"| first: decode {total} PNGs ({workers} processes) into the cache, then one "
          f"epoch | {first:.2f} (decode {decode:.2f}) | {n / first:.0f} |")
    print(f"| later: from the cache, held in memory (auto) | {later:.3f} | {n / later:.0f} |")
    print(f"| later: streamed from the memory-mapped cache, 2 loader workers | {streamed:.2f} "
          f"| {n / streamed:.0f} |")
    print(f"| next run: load the dataset again (cache hit, no PNG opened) | {reload:.2f} | |")
    ratio, stream_ratio = first / later, first / streamed
    print(f"\nlater / first epoch throughput: {ratio:.0f}x held in memory, {stream_ratio:.1f}x "
          f"streamed (bar >= 10x: {'met' if ratio >= 10 else 'NOT met'})\n")


class Turns:
    """A Trainer run a few steps at a time (each turn raises train.max_steps and continues),
    timed in wall-clock seconds and in CPU seconds of this process."""

    def __init__(self, cfg):
        from engine.training import Trainer

        self.trainer = Trainer(cfg)

    def run(self, steps: int) -> tuple[float, float]:
        t = self.trainer
        t.config.train.max_steps = t.step + steps
        wall, cpu = time.perf_counter(), time.process_time()
        result = t.run()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert result.status == "completed", result.error
        return wall, cpu


def augmentation(folder: Path, pairs: int, steps: int, device: str) -> None:
    """Plain and augmented Trainers take turns of ``steps`` steps, who goes first alternating,
    so that the machine's load swings hit both alike; ratios of samples/s per pair."""
    plain_cfg = config(folder, **{"train.device": device, "data.image_loading": "memory",
                                  "train.epochs": 1000})
    aug_cfg = plain_cfg.copy()
    aug_cfg.set("augment.enabled", True)
    plain, augmented = Turns(plain_cfg), Turns(aug_cfg)
    plain.run(3)  # warm-up: allocator, first-step costs
    augmented.run(3)
    walls, cpus = [], []
    rates = {"plain": [], "augmented": []}
    for i in range(pairs):
        order = (plain, augmented) if i % 2 == 0 else (augmented, plain)
        timed = {id(turns): turns.run(steps) for turns in order}
        (pw, pc), (aw, ac) = timed[id(plain)], timed[id(augmented)]
        walls.append(pw / aw)  # = augmented samples/s / plain samples/s
        cpus.append(pc / ac)
        rates["plain"].append(steps * plain_cfg.data.batch_size / pw)
        rates["augmented"].append(steps * plain_cfg.data.batch_size / aw)
    q = statistics.quantiles(walls, n=4) if len(walls) > 1 else [walls[0]] * 3
    print(f"| {device}: {pairs} pairs of {steps} steps, batch {plain_cfg.data.batch_size} | "
          f"plain | augmented | augmented / plain |")
    print("|---|---|---|---|")
    print(f"| median samples/s | {statistics.median(rates['plain']):.0f} | "
          f"{statistics.median(rates['augmented']):.0f} | |")
    print(f"| ratio of a pair, wall clock: median (quartiles) | | | "
          f"**{statistics.median(walls):.3f}** ({q[0]:.3f} - {q[2]:.3f}) |")
    print(f"| ratio of a pair, CPU time of the process: median | | | "
          f"{statistics.median(cpus):.3f} |")
    ratio = statistics.median(walls)
    print(f"\nmedian augmented / plain: {ratio:.3f} (bar >= 0.9: "
          f"{'met' if ratio >= 0.9 else 'NOT met'}) on {device}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--pairs", type=int, default=12, help="turns of each, alternating")
    parser.add_argument("--steps", type=int, default=5, help="training steps per turn")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--folder", help="reuse (or make) the PNGs here, not in a temp folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TORCHWORK_CACHE"] = str(Path(tmp) / "cache")  # a cold cache
        folder = Path(args.folder) if args.folder else Path(tmp) / "pngs"
        start = time.perf_counter()
        if not folder.exists():
            make_pngs(folder, args.count)
        wrote = time.perf_counter() - start
        print(f"{args.count} PNGs of 64x64 in 10 class folders ({wrote:.0f} s to write), "
              f"{os.cpu_count()} CPUs\n")
        epochs(folder)
        augmentation(folder, args.pairs, args.steps, args.device)


if __name__ == "__main__":
    main()
