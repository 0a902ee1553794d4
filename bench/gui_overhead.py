"""What does the open window cost a run, and does it stay responsive while training?

(a) Throughput: the same run (synthetic data, MLP, the workspace written)
    by `torchwork run` in its own process, and from the window (the bridge's
    background thread, plots live); alternated, median of the pair ratios.
    Bar: >= 0.95.
(b) Event-loop latency while the window trains at full speed: a 10 ms QTimer's
    lateness, p99 over every tick of the windowed runs. Bar: <= 50 ms.
(c) Redrawing a 1,000,000-point loss curve: see bench/plot_redraw.py, whose
    table this script prints too. Bar: median <= 16 ms.

    QT_QPA_PLATFORM=offscreen python bench/gui_overhead.py [--pairs 5] [--steps 1500]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PySide6.QtCore import QEventLoop, QSettings, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from engine.config import RunConfig  # noqa: E402

CONFIG = {"data.dataset": "synthetic", "data.n_samples": 60000, "data.n_features": 64,
          "data.n_classes": 4, "data.batch_size": 256, "model.arch": "mlp",
          "model.hidden": [256, 256], "optim.name": "adam", "train.epochs": 1000,
          "train.device": "cpu", "train.checkpoint_every": 0}


def config(steps: int) -> RunConfig:
    cfg = RunConfig()
    for key, value in {**CONFIG, "train.max_steps": steps}.items():
        cfg.set(key, value)
    cfg.validate()
    return cfg


def headless(cfg: RunConfig, workspace: str) -> float:
    """Steps/s of the same run done by `torchwork run` in its own process.

    Its own process, as a user runs it: torch ops on this process's GUI thread
    would leave an OpenMP thread team there that competes with the training
    thread's (measured: a third slower), which the app itself never does.
    """
    path = Path(workspace) / "run.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    cfg.save(path)
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "run", str(path), "--json",
                           "--workspace", workspace], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    return json.loads(proc.stdout.splitlines()[-1])["steps_per_s"]


def windowed(app, window, cfg: RunConfig) -> tuple[float, list[float]]:
    """Steps/s of the run started from the window, and the 10 ms timer's lateness (ms)."""
    lateness, ended = [], []
    last = [time.perf_counter()]

    def tick():
        now = time.perf_counter()
        lateness.append(max(0.0, (now - last[0]) * 1000 - 10))
        last[0] = now

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(tick)
    window.bridge.runEnded.connect(ended.append)
    window.config_panel.set_config(cfg)
    window.start_run()
    last[0] = time.perf_counter()
    timer.start()
    loop = QEventLoop()
    window.bridge.runEnded.connect(loop.quit)
    loop.exec()  # the real event loop: idle waits release the GIL as in the app
    window.bridge.runEnded.disconnect(loop.quit)
    timer.stop()
    window.bridge.runEnded.disconnect(ended.append)
    window.bridge.wait()
    app.processEvents()
    return ended[0].steps_per_s, lateness


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=1500)
    args = parser.parse_args()
    app = QApplication.instance() or QApplication([])
    from app.main_window import MainWindow

    cfg = config(args.steps)
    with tempfile.TemporaryDirectory() as tmp:
        settings = QSettings(str(Path(tmp) / "settings.ini"), QSettings.IniFormat)
        window = MainWindow(cfg, workspace_dir=Path(tmp) / "ws", settings=settings)
        window.resize(1400, 860)
        window.show()
        app.processEvents()
        windowed(app, window, config(100))  # warm-up
        ratios, ours, theirs, lateness = [], [], [], []
        for i in range(args.pairs):
            if i % 2:
                gui_rate, late = windowed(app, window, cfg)
                plain = headless(cfg, str(Path(tmp) / "ws"))
            else:
                plain = headless(cfg, str(Path(tmp) / "ws"))
                gui_rate, late = windowed(app, window, cfg)
            ours.append(gui_rate)
            theirs.append(plain)
            lateness.extend(late)
            ratios.append(gui_rate / plain)
            print(f"pair {i + 1}: window {gui_rate:.1f} steps/s, headless {plain:.1f} "
                  f"steps/s, ratio {gui_rate / plain:.3f}", flush=True)
        window.close()
    p99 = statistics.quantiles(lateness, n=100)[98]
    print()
    print(f"{args.pairs} pairs of {args.steps}-step runs; {len(lateness)} timer ticks")
    print("| measure | value | bar |")
    print("|---|---|---|")
    print(f"| (a) throughput, window / headless (median) | {statistics.median(ratios):.3f} "
          f"(window {statistics.median(ours):.0f}, headless {statistics.median(theirs):.0f} "
          f"steps/s) | >= 0.95 |")
    print(f"| (b) 10 ms timer lateness p99 / median | {p99:.1f} ms / "
          f"{statistics.median(lateness):.1f} ms | p99 <= 50 ms |")
    import numpy as np
    from plot_redraw import bench_plot

    rows = bench_plot(app, 1_000_000, 50, 1200, 400, np.random.default_rng(0))
    for view, _in_view, drawn, _refresh, median, p95 in rows:
        print(f"| (c) redraw of a 1,000,000-point curve, {view} ({drawn} points drawn), "
              f"median / p95 | {median:.1f} ms / {p95:.1f} ms | median <= 16 ms |")


if __name__ == "__main__":
    main()
