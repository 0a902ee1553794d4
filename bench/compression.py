"""Compression of the digits CNN: structured pruning of 50% of channels, fine-tuning, int8 ONNX.

Trains examples/digits-cnn.toml in a throw-away workspace, then runs the same
pipeline as `torchwork compress RUN --prune structured --ratio 0.5
--finetune-epochs N --quantize onnx` and prints its before/after table and
whether each bar of issue 6 is met, against the fp32 ONNX export of the
original model:

- the int8 ONNX file is >= 4x smaller,
- validation accuracy is within 1.0 point,
- ONNX Runtime CPU latency at batch 64 is no worse.

    python bench/compression.py [--finetune-epochs 10] [--repeats 100]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.cli import main as torchwork  # noqa: E402
from engine.compression import (  # noqa: E402
    CompressOptions,
    compress,
    format_table,
)
from engine.export import load_run_model  # noqa: E402
from engine.run_builder import workspace_train  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--finetune-epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=100, help="timed repeats per latency")
    parser.add_argument("--epochs", type=int, help="train the original for fewer epochs (smoke)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as ws:
        start = time.perf_counter()
        extra = ["--set", f"train.epochs={args.epochs}"] if args.epochs else []
        with contextlib.redirect_stdout(io.StringIO()):  # its JSON events, not the table
            code = torchwork(["run", str(ROOT / "examples" / "digits-cnn.toml"), "--json",
                              "--workspace", ws, *extra])
        if code != 0:
            raise SystemExit(f"training the digits CNN failed (exit {code})")
        trained = time.perf_counter() - start
        loaded = load_run_model(ws, 1)
        options = CompressOptions(prune="structured", ratios=(0.5,), quantize="onnx",
                                  finetune_epochs=args.finetune_epochs, repeats=args.repeats)
        start = time.perf_counter()
        result = compress(loaded, options, Path(ws) / "compressed", train=workspace_train(ws))
        took = time.perf_counter() - start
    print(f"\ntrained in {trained:.0f} s; compressed and measured in {took:.0f} s\n")
    print(format_table(result.candidates))
    base = result.get("original (onnx)")
    int8 = result.get(result.finals[0])
    size_x = base.size_bytes / int8.size_bytes
    drop = (base.metric - int8.metric) * 100
    faster = base.latency_b64_ms / int8.latency_b64_ms
    print(f"\nchosen int8 candidate: {int8.name}\n")
    print("| bar | measured | target | met |")
    print("|---|---|---|---|")
    print(f"| file size vs fp32 ONNX | {size_x:.1f}x smaller | >= 4x | {_yes(size_x >= 4)} |")
    print(f"| validation accuracy | {int8.metric * 100:.2f}% vs {base.metric * 100:.2f}% "
          f"({drop:.2f} points lost) | within 1.0 point | {_yes(drop <= 1.0)} |")
    print(f"| ORT CPU latency, batch 64 | {int8.latency_b64_ms:.3f} ms vs "
          f"{base.latency_b64_ms:.3f} ms ({faster:.2f}x) | no worse | {_yes(faster >= 1.0)} |")


def _yes(ok: bool) -> str:
    return "yes" if ok else "no"


if __name__ == "__main__":
    main()
