"""While a CPU run fills a small machine's cores the window wakes and draws less,
and Qt's painting stays on the GUI thread."""

from __future__ import annotations

import dataclasses
import glob
import sys
import time
import types

import pytest

from app import pacing
from app.pacing import FRUGAL, NORMAL, pace_for
from app.widgets import run_status
from app.widgets.live_plot import LivePlot
from engine.training.events import MetricsLogged, RunStarted

STARTED = RunStarted(run_id="1", num_params=10, device="cpu", task="classification", epochs=2,
                     steps_per_epoch=50, total_steps=100, start_step=0, start_epoch=1,
                     metric_names=("val_loss",))


@pytest.mark.parametrize("device, cores, pace", [("cpu", 1, FRUGAL), ("cpu", 4, FRUGAL),
                                                  ("cpu", 8, NORMAL), ("cuda", 2, NORMAL),
                                                  ("mps", 2, NORMAL)])
def test_only_a_cpu_run_on_few_cores_gets_the_frugal_pace(monkeypatch, device, cores, pace):
    monkeypatch.setattr(pacing, "available_cores", lambda: cores)
    assert pace_for(device) is pace


@pytest.mark.parametrize("pace", [NORMAL, FRUGAL])
def test_a_plot_waits_its_budget_times_a_redraw_within_bounds(pace):
    assert pace.plot_wait_ms(0.1, 33) == 33  # a cheap redraw: the shortest wait
    assert pace.plot_wait_ms(4.0, 33) == int(4.0 * pace.plot_budget)
    assert pace.plot_wait_ms(1e6, 33) == pace.plot_max_ms  # however slow, it draws again
    assert pace.hardware_wait_ms(4.0, 250) == max(250, int(4.0 * pace.hardware_budget))
    assert pace.hardware_wait_ms(1e6, 250) == pace.hardware_max_ms


def test_the_frugal_pace_draws_and_wakes_less():
    assert FRUGAL.delivery_ms > NORMAL.delivery_ms
    assert FRUGAL.status_s > NORMAL.status_s
    assert FRUGAL.plot_budget > NORMAL.plot_budget
    assert FRUGAL.hardware_budget > NORMAL.hardware_budget


@pytest.mark.parametrize("device, most", [("cpu", 2), ("cuda", 8)])
def test_status_bar_progress_changes_at_the_runs_pace(qtbot, monkeypatch, device, most):
    monkeypatch.setattr(pacing, "available_cores", lambda: 2)
    clock = [1000.0]
    monkeypatch.setattr(run_status, "time", types.SimpleNamespace(monotonic=lambda: clock[0]))
    status = run_status.RunStatus()
    qtbot.addWidget(status)
    status.on_run_started(dataclasses.replace(STARTED, device=device))
    shown = set()
    for step in range(1, 21):  # 20 logged steps over 2 s
        clock[0] += 0.1
        status.on_metrics(MetricsLogged(step, 1, 0.5, 0.1, 1.0, 100.0, step * 0.1))
        shown.add(status.run_bar.value())
    assert 2 <= len(shown) <= most  # once a second on the CPU, four times on the GPU
    assert status.run_bar.value() >= 11


def test_the_hardware_dock_follows_the_run_and_returns_to_normal(qtbot, monkeypatch):
    from app.panels.hardware_panel import HardwarePanel

    monkeypatch.setattr(pacing, "available_cores", lambda: 2)
    panel = HardwarePanel()
    qtbot.addWidget(panel)
    panel.on_run_started(STARTED)
    assert panel.pace is FRUGAL
    panel.end_run()
    assert panel.pace is NORMAL


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/task")
def test_painting_a_plot_starts_no_qt_helper_threads(qtbot):
    plot = LivePlot("Loss", y_label="loss")
    plot.add_curve("loss", "train", "#3366cc")
    qtbot.addWidget(plot)
    plot.resize(1200, 800)
    plot.show()
    plot.grab()  # large fills: without QT_NO_GUI_THREADPOOL Qt hands them to a thread pool
    names = [open(task + "/comm").read().strip() for task in glob.glob("/proc/self/task/*")]
    assert "Thread (pooled)" not in names


def test_a_redraw_that_moves_the_view_range_paints_the_plot_once(qtbot):
    paints = []

    class Counted(LivePlot):
        def paintEvent(self, event):
            paints.append(event.rect())
            super().paintEvent(event)

    plot = Counted("Loss", y_label="loss", steady=True)
    plot.add_curve("loss", "train", "#3366cc")
    qtbot.addWidget(plot)
    plot.resize(640, 330)
    plot.show()
    qtbot.waitExposed(plot)
    plot.append_many("loss", range(100), [1.0 + i % 7 / 10 for i in range(100)])
    plot.refresh()
    # The first show and fit take several paints (layout, legend); on a slow machine
    # they run past a fixed wait, so wait until the plot has stopped painting.
    settle(qtbot, paints)
    x_range = plot.getPlotItem().getViewBox().viewRange()[0]
    paints.clear()
    plot.append_many("loss", range(100, 400), [1.0 + i % 7 / 10 for i in range(300)])
    plot.refresh()  # the data leaves the x range: the range moves
    settle(qtbot, paints)
    assert plot.getPlotItem().getViewBox().viewRange()[0] != x_range
    assert len(paints) == 1  # pyqtgraph alone would paint it, then its plot area again


def settle(qtbot, paints, quiet_ms=250, timeout_s=10.0):
    """Process events until ``quiet_ms`` pass with no new paint."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        seen = len(paints)
        qtbot.wait(quiet_ms)
        if len(paints) == seen:
            return
    raise AssertionError(f"the plot kept painting for {timeout_s} s")
