"""Time to accuracy of the digits demo: `torchwork run examples/digits-cnn.toml`, end to end.

Runs the real command (interpreter start, imports, data, training, checkpoints,
workspace writes) a few times in a throw-away workspace and prints the wall
time and the best validation accuracy of each run.

    python bench/digits_cnn.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one_run(workspace: str) -> tuple[float, dict]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "run",
                           str(ROOT / "examples" / "digits-cnn.toml"), "--json",
                           "--workspace", workspace],
                          cwd=ROOT, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    return wall, events[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    walls, accs = [], []
    print("| run | wall s (whole command) | training s | best val_accuracy | steps/s |")
    print("|---|---|---|---|---|")
    for i in range(args.repeats):
        with tempfile.TemporaryDirectory() as ws:
            wall, end = one_run(ws)
        assert end["status"] == "completed", end
        walls.append(wall)
        accs.append(end["best_val"])
        print(f"| {i + 1} | {wall:.1f} | {end['wall_s']:.1f} | {end['best_val']:.4f} | "
              f"{end['steps_per_s']:.1f} |", flush=True)
    print(f"| median | {statistics.median(walls):.1f} | | {statistics.median(accs):.4f} | |")


if __name__ == "__main__":
    main()
