"""Does the efficiency advisor find planted inefficiencies, and do its changes pay?

Each case is an example configuration with one planted inefficiency (examples/advisor-*):
the advisor profiles a few steps (as `torchwork advise CONFIG`), and every finding that
proposes a change is measured by its own A/B (engine.advisor.ab: alternating windows,
median ratio of samples/s, bootstrap 95% interval). The bars (issue 19): the planted
finding is found, each proposed change measures >= 1.2x, and on the efficient
configuration nothing is proposed that its A/B then fails to confirm.

    python bench/advisor.py [--pairs 10] [--cases tiny-batch,item-sync,...]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BAR = 1.2
# (case, example, the finding planted, overrides, a note)
CASES = (
    ("slow-input", "advisor-slow-input.toml", "input-bound", (), "streamed 96x96 colour images, "
     "0 loader workers"),
    ("item-sync", "advisor-item-sync.toml", "host-sync", (), "custom model, .item() in forward"),
    ("tiny-batch", "advisor-tiny-batch.toml", "small-batch", (), "batch 8, forecast fits far more"),
    ("for-loop-optimizer", "advisor-for-loop-optimizer.toml", "optimizer", (),
     "Adam one parameter at a time (auto would fuse it)"),
    ("fp32-on-gpu", "synthetic-mlp.toml", "precision", ("train.device=cuda",),
     "GPU only: fp32 where bf16 is available"),
    ("efficient", "synthetic-mlp.toml", None, (), "the efficient reference: batch 256"),
)


def load_case(example: str, overrides, images: Path | None):
    from engine.config import RunConfig
    from engine.run_files import resolve_beside

    path = ROOT / "examples" / example
    cfg = RunConfig.load(path)
    extra = list(overrides)
    if cfg.data.dataset.startswith("images:") and images is not None:
        extra.append(f"data.dataset=images:{images}")
    cfg = cfg.with_overrides(extra)
    resolve_beside(cfg, path)
    return cfg


def image_folder() -> Path:
    """examples/make_image_folder.py's digits, written once into a temporary folder."""
    sys.path.insert(0, str(ROOT / "examples"))
    from make_image_folder import make_image_folder

    folder = Path(tempfile.mkdtemp(prefix="torchwork-bench-advisor-")) / "digits-images"
    return make_image_folder(folder)


def main() -> None:
    import torch

    from engine.advisor.ab import ABError, measure
    from engine.advisor.diagnose import diagnose_config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--cases", default=",".join(c[0] for c in CASES))
    args = parser.parse_args()
    wanted = args.cases.split(",")
    images = image_folder() if "slow-input" in wanted else None
    rows, bars = [], []
    for name, example, planted, overrides, note in CASES:
        if name not in wanted:
            continue
        if "train.device=cuda" in overrides and not torch.cuda.is_available():
            rows.append(f"| {name} | {note} | skipped: no CUDA GPU here | | | |")
            continue
        start = time.perf_counter()
        cfg = load_case(example, overrides, images)
        diagnosis = diagnose_config(cfg, source=example)
        ids = [f.id for f in diagnosis.findings]
        found = planted is None or planted in ids
        if planted is not None:
            bars.append((f"{name}: {planted} found", found))
        print(f"{name}: findings {ids or 'none'}", file=sys.stderr)
        measured = []
        for f in diagnosis.findings:
            if not f.changes:
                measured.append(f"{f.id}: no change proposed ({f.hint[:60]}…)" if f.hint
                                else f"{f.id}: no change proposed")
                continue
            try:
                r = measure(cfg, f.changes, pairs=args.pairs)
            except ABError as exc:
                measured.append(f"{f.id}: A/B failed ({exc})")
                bars.append((f"{name}: {f.id} measured", False))
                continue
            change = ", ".join(f"{k}={v}" for k, v in f.changes.items())
            measured.append(f"{f.id} ({change}): {r.speedup:.2f}x [{r.low:.2f}, {r.high:.2f}] "
                            f"{'confirmed' if r.confirmed else 'not confirmed'}, {r.mode}")
            print(f"  {f.id}: {r.summary()}", file=sys.stderr)
            if planted is None:
                bars.append((f"{name}: {f.id} proposed only if confirmed", r.confirmed))
            else:
                bars.append((f"{name}: {f.id} >= {BAR}x", r.confirmed and r.speedup >= BAR))
        took = time.perf_counter() - start
        verdict = "-" if planted is None else "yes" if found else "NO"
        rows.append(f"| {name} | {note} | {', '.join(ids) or 'none'} | {verdict} | "
                    f"{'<br>'.join(measured) or '-'} | {took:.0f} s |")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
          f"{args.pairs} pairs per A/B")
    print("| case | planted | findings | planted one found | A/B of each proposed change: "
          "median speed-up [95% interval] | time |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(row)
    print()
    print("| bar | met |")
    print("|---|---|")
    for text, met in bars:
        print(f"| {text} | {'yes' if met else 'NO'} |")


if __name__ == "__main__":
    main()
