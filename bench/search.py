"""Hyperparameter search on the digits CNN: accuracy reached, epochs saved by pruning, and the
wall time of two local workers against one.

Runs the real command, `torchwork search`, three times on one space in throw-away
workspaces: TPE with the median pruner, TPE with no pruner (same seed), and the
pruned search again with two workers. Each trial trains on one CPU thread.

    python bench/search.py [--trials 40] [--epochs 20]   # the issue's bar (long on 2 cores)
    python bench/search.py --trials 12 --epochs 6        # a reduced run
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPACE = """
[search.space]
"optim.lr" = { low = 1e-4, high = 3e-2, log = true }
"optim.weight_decay" = { low = 1e-6, high = 1e-2, log = true }
"model.dropout" = { low = 0.0, high = 0.5 }
"data.batch_size" = { choices = [32, 64, 128] }
"""


def config(trials: int, epochs: int, pruner: str, workers: int) -> str:
    base = (ROOT / "examples" / "digits-cnn.toml").read_text()
    base = base.replace("epochs = 20", f"epochs = {epochs}")
    return (base + f'\n[search]\nobjective = "val_accuracy"\nsampler = "tpe"\n'
            f'pruner = "{pruner}"\nn_trials = {trials}\nworkers = {workers}\nseed = 0\n' + SPACE)


def search(folder: Path, name: str, text: str) -> tuple[float, dict, int]:
    """Wall seconds, the search_finished event and the epochs its trials trained."""
    sys.path.insert(0, str(ROOT))
    from engine.workspace import Workspace

    path = folder / f"{name}.toml"
    path.write_text(text)
    workspace = folder / f"ws-{name}"
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "search", str(path), "--json",
                           "--workspace", str(workspace)],
                          cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f"{name}: torchwork search failed ({proc.returncode}): {proc.stderr[-2000:]}")
    finished = json.loads(proc.stdout.splitlines()[-1])
    with Workspace(workspace) as ws:
        epochs = sum(r.epochs_completed or 0 for r in ws.list_runs() if r.study == name)
    return wall, finished, epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--skip-workers", action="store_true",
                        help="leave out the two-worker search")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="tw-bench-search-") as tmp:
        folder = Path(tmp)
        runs = [("pruned", "median", 1), ("unpruned", "none", 1)]
        if not args.skip_workers:
            runs.append(("pruned2", "median", 2))
        for name, pruner, workers in runs:
            wall, finished, epochs = search(folder, name,
                                            config(args.trials, args.epochs, pruner, workers))
            rows.append((name, pruner, workers, wall, finished, epochs))
    print(f"digits CNN, TPE, {args.trials} trials of up to {args.epochs} epochs, "
          f"one CPU thread per trial")
    print("| search | pruner | workers | wall s | trials complete/pruned/failed | "
          "epochs trained | best val_accuracy |")
    print("|---|---|---|---|---|---|---|")
    for name, pruner, workers, wall, f, epochs in rows:
        print(f"| {name} | {pruner} | {workers} | {wall:.0f} | {f['complete']}/{f['pruned']}/"
              f"{f['failed']} | {epochs} | {f['best_value']:.4f} |")
    pruned, unpruned = rows[0], rows[1]
    print(f"epochs saved by pruning: {1 - pruned[5] / unpruned[5]:.1%}")
    if len(rows) > 2:
        print(f"wall time, two workers / one: {rows[2][3] / pruned[3]:.2f}")
    print(f"best val_accuracy with pruning: {pruned[4]['best_value']:.4f}")


if __name__ == "__main__":
    main()
