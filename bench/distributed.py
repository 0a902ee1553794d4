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
machine at that moment, other load included. An FSDP2 side (train.strategy='fsdp',
the same 2 processes) shows what sharding costs where every parameter fits anyway.

    python bench/distributed.py [--rounds 3] [--steps 60] [--batch 2048] [--hidden 1024]

``--gpu-fit`` (a machine with two or more GPUs; one process per GPU, nccl) asks the
other question FSDP2 answers: the widest MLP (``--layers`` hidden layers of a width from
``--widths``, Adam) that trains a few steps under DDP, then under FSDP2. DDP keeps the
fp32 parameters, gradients and both Adam moments of the whole model on every GPU; FSDP2
keeps a share of each, so it fits models whose parameters and Adam state alone exceed
the GPU. Each try is its own torchrun launch of this file (``--fit-worker``); a try that
runs out of memory ends that strategy's ladder.

    python bench/distributed.py --gpu-fit [--widths 8192,16384,...] [--layers 4]
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

import torch

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


def start(config: Path, workspace: Path, steps: int, nproc: int, batch: int,
          strategy: str = "auto"):
    args = [sys.executable, "-m", "app", "run", str(config), "--json", "--max-steps", str(steps),
            "--set", f"data.batch_size={batch}", "--set", f"train.strategy={strategy}"]
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
    if side in ("ddp", "fsdp"):
        return samples_per_s(start(config, ws, steps, 2, batch // 2, side))
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
    p.add_argument("--gpu-fit", action="store_true", help="DDP against FSDP2: widest model "
                   "each trains on this machine's GPUs")
    p.add_argument("--widths", default="8192,16384,24576,32768,40960,49152,57344,65536",
                   help="--gpu-fit: the hidden widths tried, narrowest first")
    p.add_argument("--layers", type=int, default=4, help="--gpu-fit: hidden layers")
    p.add_argument("--fit-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--strategy", default="ddp", help=argparse.SUPPRESS)
    p.add_argument("--width", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--device", default="cuda", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.fit_worker:
        return fit_worker(a)
    if a.gpu_fit:
        return gpu_fit(a)
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "mlp.toml"
        config.write_text(config_text(a.batch, a.hidden))
        got: dict[str, list[float]] = {"one": [], "ddp": [], "fsdp": [], "control": []}
        ratios = []
        for r in range(a.rounds):
            order = ["one", "ddp", "fsdp", "control"]
            order = order if r % 2 == 0 else order[::-1]
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
    print(f"| 2 processes (FSDP2, gloo) | {statistics.median(got['fsdp']):.0f} |")
    print(f"| control: 2 independent processes at once (sum) | "
          f"{statistics.median(got['control']):.0f} |")
    print(f"| DDP / 1 process, a round's ratio: median (min - max) | **{ratio:.3f}** "
          f"({min(ratios):.3f} - {max(ratios):.3f}) |")
    print(f"| control / 1 process (what this machine allowed): median | {ceiling:.3f} |")
    fsdp = statistics.median(f / o for f, o in zip(got["fsdp"], got["one"]))
    print(f"| FSDP2 / 1 process: median | {fsdp:.3f} |")
    print(f"\nbar >= {BAR}: {'met' if ratio >= BAR else 'NOT met'}")
    return 0


def fit_config(width: int, layers: int, strategy: str, device: str):
    from engine.config import RunConfig

    cfg = RunConfig()
    for key, value in {"data.dataset": "synthetic", "data.n_samples": 512,
                       "data.n_features": 256, "data.n_classes": 4, "data.batch_size": 8,
                       "model.arch": "mlp", "model.hidden": [width] * layers,
                       "optim.name": "adam", "optim.lr": 1e-4, "train.epochs": 1,
                       "train.max_steps": 3, "train.log_every": 1, "train.device": device,
                       "train.strategy": strategy}.items():
        cfg.set(key, value)
    return cfg


def fit_worker(a) -> int:
    """One try under torchrun: train 3 steps; rank 0 prints one JSON line of the outcome."""
    from engine.distributed import leave_group
    from engine.training import Trainer

    fits, error, params, peak = False, None, 0, None
    try:
        trainer = Trainer(fit_config(a.width, a.layers, a.strategy, a.device))
        params = trainer.num_params
        result = trainer.run()
        fits, error = result.status == "completed", result.error
    except torch.OutOfMemoryError as exc:
        error = f"out of memory while building: {str(exc).splitlines()[0]}"
    if torch.cuda.is_available():
        peak = torch.cuda.max_memory_allocated() / 2**30
    if os.environ.get("RANK", "0") == "0":
        print(json.dumps({"fits": fits, "params": params, "peak_gib": peak, "error": error}),
              flush=True)
    leave_group()
    return 0 if fits else 1


def fit_try(strategy: str, width: int, layers: int, nproc: int, device: str) -> dict:
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc-per-node={nproc}", str(Path(__file__).resolve()), "--fit-worker",
            f"--strategy={strategy}", f"--width={width}", f"--layers={layers}",
            f"--device={device}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TORCHWORK_COLLECTIVE_TIMEOUT_S": "120",
           "OMP_NUM_THREADS": "4"}
    try:
        proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=1800)
    except subprocess.TimeoutExpired:
        return {"fits": False, "error": "no answer in 30 minutes"}
    lines = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith('{"fits"')]
    if not lines:
        return {"fits": False, "error": f"exit {proc.returncode}: {proc.stderr[-300:]}"}
    return lines[-1]


def gpu_fit(a) -> int:
    nproc = torch.cuda.device_count()
    if nproc < 2:
        print(f"--gpu-fit needs two or more CUDA GPUs (found {nproc}): FSDP2 shards a model "
              f"across processes, one per GPU", file=sys.stderr)
        return 2
    gpu = torch.cuda.get_device_properties(0)
    widths = [int(w) for w in a.widths.split(",")]
    print(f"{nproc} x {gpu.name} ({gpu.total_memory / 2**30:.0f} GiB each), MLP 256-"
          f"{a.layers}x<width>-4, Adam, batch 8 per process, 3 steps\n")
    print("| strategy | width | parameters | fp32 params + Adam state (GiB) | peak per GPU (GiB) "
          "| trains |")
    print("|---|---|---|---|---|---|")
    widest = {}
    for strategy in ("ddp", "fsdp"):
        for width in widths:
            got = fit_try(strategy, width, a.layers, nproc, "cuda")
            params = got.get("params") or 0
            peak = got.get("peak_gib")
            print(f"| {strategy} | {width} | {params / 1e9:.2f} B | {params * 12 / 2**30:.1f} | "
                  f"{'-' if peak is None else f'{peak:.1f}'} | "
                  f"{'yes' if got['fits'] else 'no: ' + str(got.get('error'))[:80]} |",
                  flush=True)
            if not got["fits"]:
                break
            widest[strategy] = (width, params)
    ddp, fsdp = widest.get("ddp", (0, 0)), widest.get("fsdp", (0, 0))
    gib = gpu.total_memory / 2**30
    print(f"\nwidest under DDP: {ddp[0]}, under FSDP2: {fsdp[0]}; FSDP2's fp32 params + Adam "
          f"state {fsdp[1] * 12 / 2**30:.1f} GiB against {gib:.0f} GiB per GPU")
    met = fsdp[0] > ddp[0] and fsdp[1] * 12 / 2**30 > gib
    print(f"bar (FSDP2 trains a model whose fp32 params + Adam state exceed one GPU, which DDP "
          f"cannot): {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
