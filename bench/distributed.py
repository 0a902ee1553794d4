"""Does data-parallel training pay on this machine? 2 gloo processes against 1 process.

Both sides run the real `torchwork run` on the synthetic MLP, each process with
one CPU thread (OMP_NUM_THREADS=1), with the same global batch: one process trains
on batches of ``--batch``, the DDP run (`--nproc-per-node 2`, torchrun's agent,
gloo) gives each process half of every batch, so both train the same steps. The
figure is the samples/s of the training steps (the median of the logged
intervals, the first left out as warm-up), read from rank 0's --json events; the
processes' start is not counted. Rounds alternate the two sides; the ratio is the
median of the rounds' ratios. A control side runs two independent single processes at
once (half the batch each, never talking): the most two processes get from this
machine at that moment, other load included.

    python bench/distributed.py [--rounds 3] [--steps 60] [--batch 2048] [--hidden 1024]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BAR = 1.6


def config_text(batch: int, hidden: int) -> str:
    return f"""[data]
dataset = "synthetic"
n_samples = 200000
n_features = 64
n_classes = 4
batch_size = {batch}

[model]
arch = "mlp"
hidden = [{hidden}, {hidden}]

[optim]
name = "sgd"
lr = 0.01
momentum = 0.9

[train]
epochs = 1
device = "cpu"
log_every = 5
checkpoint_every = 0
"""


def start(config: Path, workspace: Path, steps: int, nproc: int, batch: int):
    args = [sys.executable, "-m", "app", "run", str(config), "--json", "--max-steps", str(steps),
            "--set", f"data.batch_size={batch}"]
    if nproc > 1:
        args += ["--nproc-per-node", str(nproc)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TORCHWORK_WORKSPACE": str(workspace),
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def samples_per_s(proc) -> float:
    out, err = proc.communicate(timeout=900)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(proc.args)} failed ({proc.returncode}): {err[-2000:]}")
    rates = [e["samples_per_s"] for e in map(json.loads, out.splitlines())
             if e["event"] == "step"]
    return statistics.median(rates[1:])


def measure(side: str, config: Path, ws: Path, steps: int, batch: int) -> float:
    if side == "one":
        return samples_per_s(start(config, ws, steps, 1, batch))
    if side == "ddp":
        return samples_per_s(start(config, ws, steps, 2, batch // 2))
    # control: two independent processes at once, each on half the batch, never talking:
    # what two processes get from this machine now (its other load included)
    pair = [start(config, ws, steps, 1, batch // 2) for _ in range(2)]
    return sum(samples_per_s(proc) for proc in pair)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--batch", type=int, default=2048, help="global batch (both sides)")
    p.add_argument("--hidden", type=int, default=1024)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "mlp.toml"
        config.write_text(config_text(a.batch, a.hidden))
        got: dict[str, list[float]] = {"one": [], "ddp": [], "control": []}
        ratios = []
        for r in range(a.rounds):
            order = ["one", "ddp", "control"] if r % 2 == 0 else ["control", "ddp", "one"]
            for side in order:
                got[side].append(measure(side, config, Path(tmp) / "ws", a.steps, a.batch))
            ratios.append(got["ddp"][-1] / got["one"][-1])
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in got.items())
                  + f" samples/s, ratio {ratios[-1]:.3f}", file=sys.stderr)
    ratio = statistics.median(ratios)
    ceiling = statistics.median(c / o for c, o in zip(got["control"], got["one"]))
    print(f"MLP 64-{a.hidden}-{a.hidden}-4, global batch {a.batch}, {a.steps} steps, "
          f"{a.rounds} rounds, 1 thread per process\n")
    print("| side | median samples/s |")
    print("|---|---|")
    print(f"| 1 process | {statistics.median(got['one']):.0f} |")
    print(f"| 2 processes (DDP, gloo) | {statistics.median(got['ddp']):.0f} |")
    print(f"| control: 2 independent processes at once (sum) | "
          f"{statistics.median(got['control']):.0f} |")
    print(f"| DDP / 1 process, a round's ratio: median (min - max) | **{ratio:.3f}** "
          f"({min(ratios):.3f} - {max(ratios):.3f}) |")
    print(f"| control / 1 process (what this machine allowed): median | {ceiling:.3f} |")
    print(f"\nbar >= {BAR}: {'met' if ratio >= BAR else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
