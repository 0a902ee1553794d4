"""Memory forecast against the measured peak of a real training step, on the examples.

The forecast (engine.experiments.memory: torch's MemTracker over fake tensors)
is compared with a real step at the same batch. Measured on the CPU: the
parameters, buffers and optimizer state that live before the step (their
tensors' exact sizes, after a first step created the optimizer's state) plus
the peak of what the step allocates on top, as c10's CPU allocator reports it
to torch.profiler (profile_memory: every allocation and free, "Total
Allocated"). On a GPU: torch.cuda.max_memory_allocated over the second step.
Then the largest batch the forecast allows in a budget is trained and measured.

    python bench/memory_forecast.py [--budget-mib 16]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CASES = [
    ("digits CNN", "digits-cnn.toml", []),
    ("digits CNN, batch 512", "digits-cnn.toml", ["data.batch_size=512"]),
    ("digits MLP", "digits-cnn.toml", ["model.arch=mlp", "model.hidden=[128]"]),
    ("breast cancer MLP", "breast-cancer-mlp.toml", []),
    ("synthetic MLP (BN, SGD)", "synthetic-mlp.toml", ["data.n_samples=20000"]),
    ("penguins table", "penguins-table.toml", []),
    ("diabetes regression", "diabetes-regression.toml", []),
]


def measured_peak(cfg) -> int:
    """Peak bytes of the second training step of ``cfg``'s real run (see the module doc)."""
    import torch

    from engine.run_builder import build_trainer

    trainer = build_trainer(cfg)
    model, optimizer, loss_fn = trainer.model, trainer.optimizer, trainer.loss_fn
    loader = trainer.train_loader
    x, y = next(iter(loader.epoch(1, 0)))
    x, y = x.to(trainer.device), y.to(trainer.device)

    def step():
        with trainer.precision.autocast():
            loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # the optimizer's state exists from here on
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        return int(torch.cuda.max_memory_allocated())
    live = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
    live += sum(v.numel() * v.element_size() for s in optimizer.state.values()
                for v in s.values() if torch.is_tensor(v))
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                profile_memory=True) as prof:
        step()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "trace.json"
        prof.export_chrome_trace(str(path))
        events = json.loads(path.read_text())["traceEvents"]
    on_top = max((e["args"].get("Total Allocated", 0) for e in events
                  if e.get("name") == "[memory]" and e["args"].get("Device Type") == 0),
                 default=0)
    return live + on_top


def main() -> None:
    import torch

    from engine.config import RunConfig
    from engine.experiments.memory import forecast, size_text

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-mib", type=float, default=16.0,
                        help="budget for the largest-batch check (default 16 MiB)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"device: {device}")
    print("| configuration | batch | forecast peak | measured peak | error |")
    print("|---|---|---|---|---|")
    budget = int(args.budget_mib * 2**20)
    largest = []
    for name, example, overrides in CASES:
        cfg = RunConfig.load(ROOT / "examples" / example).with_overrides(
            [*overrides, f"train.device={device}"])
        result = forecast(cfg, budget=budget)
        real = measured_peak(cfg)
        error = (result.peak_bytes - real) / real
        print(f"| {name} | {result.batch_size} | {size_text(result.peak_bytes)} | "
              f"{size_text(real)} | {error:+.1%} |", flush=True)
        if (result.largest_batch and result.largest_batch < result.train_samples
                and result.largest_batch != result.batch_size and
                all(result.largest_batch != b for _, _, b in largest)):
            largest.append((name, cfg, result.largest_batch))
    print(f"\nLargest batch within {size_text(budget)} (less any data on the GPU), "
          f"then trained:\n")
    print("| configuration | forecast largest batch | forecast peak at it | measured peak at it "
          "| measured / budget |")
    print("|---|---|---|---|---|")
    for name, cfg, batch in largest:
        at = cfg.with_overrides([f"data.batch_size={batch}"])
        real = measured_peak(at)
        predicted = forecast(at, budget=budget).peak_bytes
        print(f"| {name} | {batch} | {predicted / 2**20:.3f} MiB | {real / 2**20:.3f} MiB | "
              f"{real / budget:.2%} |", flush=True)


if __name__ == "__main__":
    main()
