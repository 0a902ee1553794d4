"""How long do 20 overlaid runs of 100,000 logged steps each take to draw, pan and zoom?

What the Runs dock does with a selection: ``TrainingPlots.overlay_runs`` of
``--runs`` made-up runs (``--steps`` steps, 1,000 a epoch, a validation point
an epoch) on the training panel at its default size (six plots: per run a
train-loss, learning-rate, gradient-norm and throughput curve of every step,
validation loss and accuracy of every epoch). Timed: the overlay from the
call to the first frame painted; then what the window does after the loss
plot is zoomed to 1% of the run and panned across it, zoomed out again, the
smoothing slider moved (the loss plot repainted), and the x axis switched
(every plot repainted), each plot painted once. Each plot clips to its view
and peak-downsamples to its width (``setClipToView(True)``,
``setDownsampling(auto=True, mode="peak")``), so a redraw draws about two
points per pixel and run, not 100,000. Epoch markers are left out of runs
longer than 30 epochs (as the overlay does). The target is
a frame a redraw: 33 ms (the panel redraws at most 30 times a second).

    python bench/run_overlay.py [--runs 20] [--steps 100000] [--redraws 20]
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

from app.panels.run_overlay import OverlayRun  # noqa: E402
from app.panels.training_plots import REFRESH_MS, TrainingPlots  # noqa: E402
from engine.workspace.records import Series  # noqa: E402

SPE = 1000  # steps per epoch


def made_run(index: int, n: int, rng: np.random.Generator) -> OverlayRun:
    step = np.arange(1, n + 1)
    epochs = n // SPE
    e = np.arange(1, epochs + 1)
    decay = n / (4 + index % 5)
    return OverlayRun(f"run-{index:02d}", {
        "step": step, "epoch": (step - 1) // SPE + 1,
        "loss": 2.3 * np.exp(-step / decay) + 0.1 + 0.1 * np.abs(rng.standard_normal(n)),
        "lr": 1e-3 * (1 + index) * np.exp(-step / n), "grad_norm": 1 + rng.random(n),
        "samples_per_s": 2e4 + 500 * index + 100 * rng.random(n), "wall_s": step * 0.01,
    }, {"val_loss": Series(e, e * SPE, 2.0 * np.exp(-e * SPE / decay) + 0.15),
        "val_accuracy": Series(e, e * SPE, 1 - 0.5 * np.exp(-e * SPE / decay))})


def redraw_ms(app: QApplication, panel: TrainingPlots, change, painted=None) -> float:
    """One change (a view range, a setting), then what the window does next: the
    panel's redraw of the curves that changed and one paint of ``painted`` (the plot that
    changed: each plot is a widget of its own), else of every plot, in ms. The offscreen
    platform paints when the event loop gets to it, or not: what it did not paint,
    ``grab()`` paints."""
    plots = [painted] if painted else [p for p in panel.plots.values() if p.isVisible()]
    for plot in plots:
        plot.paint_ms = 0.0
    t0 = time.perf_counter()
    change()
    panel.refresh()
    app.processEvents()  # view-range handlers (clipping, downsampling), maybe paints
    for plot in plots:
        if not plot.paint_ms:
            plot.grab()
    return (time.perf_counter() - t0) * 1000


def summary(times: list[float]) -> tuple[float, float]:
    times = sorted(times)
    return statistics.median(times), times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]


def main(app: QApplication) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--redraws", type=int, default=20)
    args = parser.parse_args()
    import scipy.signal  # noqa: F401  (the smoothing's; the window imports it once, at the first
    # stored run it shows: not part of an overlay's cost)

    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    runs = [made_run(i, args.steps, rng) for i in range(args.runs)]
    made_s = time.perf_counter() - t0
    panel = TrainingPlots(dark=False)
    panel.resize(1000, 760)  # the Training dock at the window's default size
    panel.show()
    app.processEvents()

    rows = []
    t0 = time.perf_counter()
    panel.overlay_runs(runs)
    panel.refresh()
    app.processEvents()
    for plot in panel.plots.values():
        if plot.isVisible() and not plot.paint_ms:
            plot.grab()
    rows.append(("overlay: load the runs into the plots and draw the first frame",
                 (time.perf_counter() - t0) * 1000, None))

    loss = panel.plots["loss"]
    vb = loss.getPlotItem().getViewBox()
    n, width = args.steps, 0.01 * args.steps
    pans = [redraw_ms(app, panel, lambda x=x: vb.setXRange(x, x + width, padding=0),
                      loss)
            for x in np.linspace(0.1 * n, 0.9 * n, args.redraws)]
    rows.append(("pan: loss plot zoomed to 1% of the steps, moved (that plot repainted)",
                 *summary(pans)))
    zooms = [redraw_ms(app, panel, lambda f=f: vb.setXRange(0, f * n, padding=0), loss)
             for f in np.linspace(0.05, 1.0, args.redraws)]
    rows.append(("zoom: loss plot from 5% to all of the steps (that plot repainted)",
                 *summary(zooms)))
    smoothing = [redraw_ms(app, panel, lambda w=w: panel.set_smoothing(w), loss)
                 for w in np.linspace(0.5, 0.95, max(2, args.redraws // 4))]
    rows.append(("smoothing moved: every run's EMA recomputed, loss plot repainted",
                 *summary(smoothing)))
    axis = [redraw_ms(app, panel, lambda a=a: panel.set_x_axis(a))
            for a in ("epoch", "wall", "step") * max(1, args.redraws // 6)]
    rows.append(("x axis switched (step / epoch / wall), every plot repainted",
                 *summary(axis)))

    curves = sum(len(p.curve_names()) for p in panel.plots.values())
    print(f"{args.runs} runs x {args.steps:,} steps ({curves} curves, "
          f"{args.runs * args.steps * 4:,} step points), panel 1000x760, "
          f"{os.environ['QT_QPA_PLATFORM']} platform; making the data took {made_s:.1f} s\n")
    print(f"| action | ms: median | p95 | median ÷ {REFRESH_MS} ms frame |")
    print("|---|---:|---:|---:|")
    for label, median, p95 in rows:
        print(f"| {label} | {median:.0f} | {'' if p95 is None else f'{p95:.0f}'} "
              f"| {median / REFRESH_MS:.2f} |")
    panel.close()


if __name__ == "__main__":
    APP = QApplication([])  # outlives every widget: deleting it first crashes at exit
    main(APP)
