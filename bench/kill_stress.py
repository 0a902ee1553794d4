"""Kill `torchwork` over and over and check that no run is ever lost.

For each config: one uninterrupted run gives the reference curves. Then a run
is started and SIGKILLed, resumed and SIGKILLed again, until a resume
completes it. Half of the kills come at a random time; the other half at a
chosen worst moment (tests/engine/kill_child.py: before the run starts, while
a checkpoint is half written, right after a checkpoint's rename, after the
last checkpoint). After each kill the workspace is opened as the next command
would open it. Counted: kills, tracebacks printed by any command (must be 0),
runs whose stored curves differ from the reference (must be 0), damaged
databases, half-written checkpoints left after an open, runs left 'created'.

    python bench/kill_stress.py [--kills 40] [--seed 0]
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.workspace import Workspace  # noqa: E402

CHILD = ROOT / "tests" / "engine" / "kill_child.py"
CURVES = ("step", "epoch", "loss", "lr", "grad_norm")
POINTS = ("created", "ckpt-write", "ckpt-renamed", "finishing")
# Two example configs, made short so that many kills fit in a few minutes.
CONFIGS = {
    "breast-cancer-mlp": ("examples/breast-cancer-mlp.toml",
                          ["train.epochs=6", "regularization.early_stopping_patience=2"]),
    "digits-cnn": ("examples/digits-cnn.toml", ["train.epochs=3", "model.channels=[8, 16]"]),
}


def torchwork(args: list[str], kill: tuple[str, int] | None = None,
              kill_after: float | None = None) -> tuple[int, str]:
    """Run the command (optionally killed at a point or after a time); exit code, stderr."""
    if kill is not None:
        cmd = [sys.executable, str(CHILD), kill[0], str(kill[1]), "--", *args]
    else:
        cmd = [sys.executable, "-c", "import sys; from engine.cli import main; "
               "sys.exit(main(sys.argv[1:]))", *args]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        _, err = proc.communicate(timeout=kill_after)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return proc.returncode, err


def curves(ws_dir: Path) -> dict:
    with Workspace(ws_dir) as ws:
        steps = ws.step_metrics(1)
        epochs = {k: s.value for k, s in ws.epoch_metrics(1).items()}
    return {**{k: steps[k] for k in CURVES}, **{f"epoch/{k}": v for k, v in epochs.items()}}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k], equal_nan=True) for k in a)


def has_run(ws_dir: Path) -> bool:
    """Whether the killed command got as far as creating its run (else it is run again)."""
    if not (ws_dir / "workspace.sqlite").exists():
        return False
    with Workspace(ws_dir) as ws:
        return bool(ws.list_runs())


def after_kill_checks(ws_dir: Path, counts: dict) -> None:
    """Open the workspace as the next command would; look for what a kill may have broken."""
    db = sqlite3.connect(ws_dir / "workspace.sqlite")
    if db.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
        counts["damaged db"] += 1
    db.close()
    with Workspace(ws_dir) as ws:
        if any(r.status in ("created", "running") for r in ws.list_runs()):
            counts["left created/running"] += 1
    if list(ws_dir.glob("runs/*/checkpoints/*.tmp")):
        counts["tmp files left"] += 1


def stress(name: str, kills: int, rng: random.Random, work: Path) -> dict:
    path, sets = CONFIGS[name]
    common = [x for s in sets for x in ("--set", s)]
    ref_dir = work / f"{name}-reference"
    started = time.perf_counter()
    code, err = torchwork(["run", path, "--workspace", str(ref_dir), *common])
    full_s = time.perf_counter() - started
    assert code == 0, err
    reference = curves(ref_dir)
    counts = {"config": name, "kills": 0, "resumes": 0, "runs": 0, "tracebacks": 0,
              "curves differ": 0, "damaged db": 0, "left created/running": 0,
              "tmp files left": 0, "run s": round(full_s, 1)}
    while counts["kills"] < kills:
        ws_dir = work / f"{name}-{counts['runs']}"
        counts["runs"] += 1
        first = True
        while True:
            args = (["run", path, *common] if first else ["resume", "1"])
            args += ["--workspace", str(ws_dir)]
            if counts["kills"] >= kills:
                kill, after = None, None
            elif rng.random() < 0.5:
                kill, after = (rng.choice(POINTS), rng.randint(1, 3)), None
            else:
                kill, after = None, rng.uniform(0.3, 1.0) * full_s
            code, err = torchwork(args, kill, after)
            counts["tracebacks"] += "Traceback" in err
            if not first:
                counts["resumes"] += 1
            first = first and not has_run(ws_dir)
            if code == -9:
                counts["kills"] += 1
                after_kill_checks(ws_dir, counts)
                continue
            if code == 0:
                counts["curves differ"] += not same(curves(ws_dir), reference)
                break
            if code == 1 and "already finished" in err:  # a kill after the run was recorded
                counts["curves differ"] += not same(curves(ws_dir), reference)
                break
            raise SystemExit(f"{name}: `torchwork {' '.join(args)}` exited {code}: {err}")
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=40, help="kills per config")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    args = parser.parse_args()
    rng = random.Random(args.seed)
    rows = []
    with tempfile.TemporaryDirectory(prefix="kill-stress-") as tmp:
        for name in args.configs:
            rows.append(stress(name, args.kills, rng, Path(tmp)))
    columns = list(rows[0])
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for r in rows:
        print("  ".join(str(r[c]).ljust(w) for c, w in zip(columns, widths)))
    bad = sum(r[k] for r in rows for k in ("tracebacks", "curves differ", "damaged db",
                                           "left created/running", "tmp files left"))
    print(f"kills survived: {sum(r['kills'] for r in rows)}; problems found: {bad}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
