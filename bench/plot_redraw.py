"""How long does one redraw of a long live loss curve take?

A LivePlot the size of a plot in the training panel holds a loss curve of
``--points`` points (a million by default). Each redraw is what the panel's
timer does during a run: a new point arrives, ``refresh()`` hands the curve
its buffers, and the widget is rendered synchronously with ``grab()``, so the
time includes clipping, peak downsampling, the autorange and the painting.
Timed zoomed out to the whole run and zoomed in to 1% of it, then the same
for the whole training panel (six plots, six step curves of that length).
The target is the 16.7 ms of a 60 Hz frame; the panel redraws at most 30
times a second, so a redraw under that leaves the GUI thread mostly idle.

    python bench/plot_redraw.py [--points 1000000] [--redraws 50]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.panels.training_plots import TrainingPlots  # noqa: E402
from app.widgets.live_plot import PALETTE, LivePlot  # noqa: E402
from engine.training.events import MetricsLogged, RunStarted  # noqa: E402

FRAME_MS = 1000 / 60


def loss_curve(n: int, rng: np.random.Generator) -> np.ndarray:
    steps = np.arange(1, n + 1, dtype=np.float64)
    return 2.3 * np.exp(-steps / (n / 8)) + 0.1 + 0.1 * np.abs(rng.standard_normal(n))


def time_redraws(widget, step, redraws: int, warmup: int = 5) -> tuple[float, float, float]:
    """Median and p95 of refresh+paint, and the median of refresh alone, in ms."""
    total, refresh_only = [], []
    for i in range(warmup + redraws):
        step()
        t0 = time.perf_counter()
        widget.refresh()
        t1 = time.perf_counter()
        widget.grab()  # renders now, as a paint event would
        t2 = time.perf_counter()
        if i >= warmup:
            total.append((t2 - t0) * 1000)
            refresh_only.append((t1 - t0) * 1000)
    total.sort()
    p95 = total[min(len(total) - 1, round(0.95 * (len(total) - 1)))]
    return statistics.median(total), p95, statistics.median(refresh_only)


def bench_plot(app, n: int, redraws: int, width: int, height: int, rng) -> list[tuple]:
    plot = LivePlot("Loss", y_label="loss", x_label="step", dark=False)
    plot.resize(width, height)
    plot.show()
    plot.add_curve("loss", "train", PALETTE[0], capacity=1024)
    plot.append_many("loss", np.arange(1, n + 1, dtype=np.float64), loss_curve(n, rng))
    next_step = [n + 1]

    def step():
        plot.append("loss", next_step[0], 0.1 + 0.1 * rng.random())
        next_step[0] += 1

    rows = []
    for label, zoom in (("whole run", None), ("1% of it", 0.01)):
        vb = plot.getPlotItem().getViewBox()
        if zoom is None:
            plot.getPlotItem().enableAutoRange()
        else:
            mid = n / 2
            plot.setXRange(mid - zoom * n / 2, mid + zoom * n / 2, padding=0)
        plot.refresh()
        app.processEvents()
        median, p95, refresh = time_redraws(plot, step, redraws)
        lo, hi = vb.viewRange()[0]
        x, _ = plot.item("loss").getData()
        rows.append((f"1 plot, {label}", f"{min(hi, next_step[0]) - max(lo, 1):,.0f}",
                     f"{len(x):,}", refresh, median, p95))
    plot.close()
    return rows


def bench_panel(app, n: int, redraws: int, rng) -> list[tuple]:
    panel = TrainingPlots(dark=False)
    panel.resize(1400, 800)
    panel.show()
    spe = 1000
    panel.on_run_started(RunStarted(None, 1, "cpu", "classification", n // spe + 10, spe,
                                    n + 10 * spe, 0, 1, ("val_loss", "val_accuracy")))
    steps = np.arange(1, n + 1, dtype=np.float64)
    panel.load_history({"step": steps, "epoch": (steps - 1) // spe + 1,
                        "loss": loss_curve(n, rng), "lr": 1e-3 * np.exp(-steps / n),
                        "grad_norm": 1 + rng.random(n), "samples_per_s": 2e4 + rng.random(n),
                        "wall_s": steps * 0.01}, {}, "classification", spe)
    next_step = [n + 1]

    def step():
        s = next_step[0]
        panel.on_metrics(MetricsLogged(s, (s - 1) // spe + 1, 0.2, 1e-4, 1.5, 2e4, s * 0.01))
        next_step[0] += 1

    panel.refresh()
    app.processEvents()
    median, p95, refresh = time_redraws(panel, step, redraws)
    panel.close()
    return [("panel (6 plots, 6 curves), whole run", f"{n:,} × 6", "", refresh, median, p95)]


def main(app: QApplication) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--redraws", type=int, default=50)
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=400)
    parser.add_argument("--no-panel", action="store_true", help="time the single plot only")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = bench_plot(app, args.points, args.redraws, args.width, args.height, rng)
    if not args.no_panel:
        rows += bench_panel(app, args.points, args.redraws, rng)
    print(f"{args.points:,}-point curves, {args.redraws} redraws each "
          f"(a new point, refresh(), grab()), plot {args.width}x{args.height}, "
          f"{os.environ['QT_QPA_PLATFORM']} platform\n")
    print("| view | points in view | points drawn | refresh ms (median) "
          "| refresh+paint ms: median | p95 | median ÷ 16.7 ms frame |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for view, in_view, drawn, refresh, median, p95 in rows:
        print(f"| {view} | {in_view} | {drawn} | {refresh:.2f} | {median:.2f} | {p95:.2f} "
              f"| {median / FRAME_MS:.2f} |")


if __name__ == "__main__":
    APP = QApplication([])  # outlives every widget: deleting it first crashes at exit
    main(APP)
