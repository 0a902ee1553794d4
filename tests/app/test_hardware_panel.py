"""The Hardware dock: what a user reads off it with and without a GPU, its warnings, its
two time spans, a stored run's samples, and samples of a run trained from the window."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMenu

from app.main_window import MainWindow
from app.panels.hardware_panel import ROLLING_S, HardwarePanel
from engine.monitor import Sampler
from engine.monitor.standin import GIB, StandInNvml
from engine.workspace import Workspace


@pytest.fixture
def make_panel(qtbot):
    def make(**kwargs):
        panel = HardwarePanel(**kwargs)
        qtbot.addWidget(panel)
        panel.resize(1000, 700)
        return panel
    return make


def feed(panel, nvml, times, step=None, **fields):
    """Samples from a sampler over the stand-in, re-timed to ``times`` (seconds), with
    ``fields`` replaced (a run process's readings, unlike the test process's own)."""
    sampler = Sampler(0.1, nvml=nvml, torch_memory=False)
    for t in times:
        panel.on_sample(dataclasses.replace(sampler.sample(), time=1000.0 + t, step=step,
                                            **fields))


def stored_run(tiny_config):
    """A stored run's hardware samples, as Open run and Resume from checkpoint show them."""
    sampler = Sampler(0.1, nvml=StandInNvml(), step=lambda: 12, torch_memory=False)
    samples = [dataclasses.replace(sampler.sample(), time=500.0 + t) for t in (0, 1, 2)]
    with Workspace() as ws:
        run = ws.create_run(tiny_config())
        ws.add_hardware_samples(run.id, samples)
        return run, ws.hardware_samples(run.id)


def test_without_a_gpu_it_samples_cpu_and_ram_and_says_once_why_there_is_no_gpu(
        qtbot, make_panel):
    panel = make_panel(interval=0.1)  # the real pynvml: no NVML library on this machine
    panel.show()
    assert panel.sampling
    qtbot.waitUntil(lambda: len(panel.curve_data("ram_used")[1]) >= 3, timeout=10000)
    panel.refresh()
    assert panel.notice.isVisible()
    assert panel.notice.text().count("No NVIDIA GPU found: NVML library not found") == 1
    assert panel.plots["cpu"].isVisible() and panel.plots["ram"].isVisible()
    assert not panel.plots["utilization"].isVisible() and not panel.gpu_combo.isVisible()
    ram_total = panel.curve_data("ram_total")[1]
    assert (ram_total > 0).all()
    assert "RAM" in panel.values.text()
    panel.hide()
    assert not panel.sampling  # a hidden dock costs nothing


def test_gpu_plots_and_a_selector_when_there_are_several(make_panel):
    panel = make_panel()
    nvml = StandInNvml(count=2)
    nvml.memory_used = [int(8 * GIB), int(30 * GIB)]
    feed(panel, nvml, [0, 1, 2])
    panel.show()
    panel.refresh()
    assert panel.gpu_combo.isVisible() and panel.gpu_combo.count() == 2
    assert panel.gpu_indices() == [0, 1] and panel.selected_gpu == 0
    assert list(panel.curve_data("memory_used", gpu=0)[1]) == [8.0, 8.0, 8.0]
    assert list(panel.curve_data("memory_total", gpu=0)[1]) == [80.0] * 3
    assert panel.plots["memory"].item("memory_used:0").isVisible()
    assert not panel.plots["memory"].item("memory_used:1").isVisible()
    panel.select_gpu(1)
    panel.refresh()
    assert panel.plots["memory"].item("memory_used:1").isVisible()
    assert not panel.plots["memory"].item("memory_used:0").isVisible()
    assert "GPU 1" in panel.values.text() and "30.0 / 80.0 GiB" in panel.values.text()
    assert not panel.notice.isVisible()


def test_warnings_show_in_the_panel_memory_idle_gpu_and_throttling(make_panel):
    panel = make_panel()
    panel.show()
    nvml = StandInNvml()
    nvml.memory_used = [int(76 * GIB)]
    feed(panel, nvml, [0])
    panel.refresh()
    assert panel.warning_label.isVisible() and "memory 95% full" in panel.warning_label.text()

    nvml.memory_used = [int(10 * GIB)]
    nvml.utilization = [5]
    feed(panel, nvml, [1, 40])  # idle, but no run is training
    panel.refresh()
    assert not panel.warning_label.isVisible()
    panel.training = True
    feed(panel, nvml, [41, 60, 75])
    panel.refresh()
    assert "input pipeline may be the bottleneck" in panel.warning_label.text()
    nvml.utilization = [95]
    nvml.throttle_reasons = [0x04]
    feed(panel, nvml, [76])
    panel.refresh()
    text = panel.warning_label.text()
    assert "power throttling" in text and "bottleneck" not in text


def test_last_5_minutes_follows_the_newest_readings_whole_run_shows_all(make_panel):
    panel = make_panel()
    panel.show()
    feed(panel, StandInNvml(), range(0, 900, 10))
    panel.refresh()
    left, right = panel.plots["memory"].getPlotItem().viewRange()[0]
    assert right == pytest.approx(890) and left == pytest.approx(890 - ROLLING_S)
    panel.whole.setChecked(True)
    panel.refresh()
    panel.plots["memory"].getPlotItem().getViewBox().updateAutoRange()
    left, right = panel.plots["memory"].getPlotItem().viewRange()[0]
    assert left <= 0 and right >= 890


def test_the_step_axis_lines_up_with_the_loss_curves(make_panel):
    panel = make_panel()
    panel.show()
    nvml = StandInNvml()
    feed(panel, nvml, [0])  # before training: no step, no point on the step axis
    for t in range(1, 6):
        feed(panel, nvml, [t], step=100 * t)
    panel.x_combo.setCurrentIndex(panel.x_combo.findData("step"))
    panel.refresh()
    x, y = panel.curve_data("utilization", gpu=0)
    assert list(x[1:]) == [100, 200, 300, 400, 500] and len(y) == 6
    left, right = panel.plots["utilization"].getPlotItem().viewRange()[0]
    assert left == pytest.approx(100) and right == pytest.approx(500)


def test_a_stored_run_is_shown_again_then_live_resumes(make_panel, workspace_dir, tiny_config):
    run, history = stored_run(tiny_config)
    panel = make_panel(interval=0.1)
    panel.show()
    panel.show_history(history, f"Run {run.id}: stored samples")
    panel.refresh()
    assert not panel.sampling and panel.live_button.isVisible()
    assert panel.whole.isChecked()
    assert list(panel.curve_data("utilization", gpu=0)[0]) == [0.0, 1.0, 2.0]
    assert list(panel.curve_data("utilization", gpu=0)[1]) == [87.0] * 3
    panel.live_button.click()
    assert panel.sampling and not panel.live_button.isVisible()
    assert panel.gpu_indices() == []  # this machine has none: the stored GPU is gone


def test_an_ended_runs_process_readings_stay_instead_of_the_windows_own(qtbot, make_panel):
    panel = make_panel(interval=0.1, nvml=StandInNvml())
    panel.show()
    panel.begin_run()
    panel.on_run_started(SimpleNamespace(device="cpu", run_id="7"))
    assert panel.source.text() == "Run 7, live (process: the run's)"
    feed(panel, StandInNvml(), [0, 1, 2], step=5, process_rss=3 * GIB, process_cpu=180.0)
    panel.end_run()
    qtbot.wait(300)  # time for the window's own sampler to read, were it sampling again
    panel.refresh()
    assert not panel.sampling
    assert list(panel.curve_data("rss")[1]) == [3.0] * 3
    assert list(panel.curve_data("process_cpu")[1]) == [180.0] * 3
    assert panel.source.text().startswith("Run 7 ended")
    assert "(process 3.00 GiB)" in panel.values.text()
    panel.hide()
    panel.show()  # tabbing back to the dock does not start sampling either
    assert not panel.sampling and len(panel.curve_data("rss")[1]) == 3

    panel.live_button.click()  # the user asks for this machine's readings now
    assert panel.sampling and not panel.live_button.isVisible()
    assert panel.source.text() == "This machine, live (process: this window)"
    qtbot.waitUntil(lambda: len(panel.curve_data("rss")[1]) >= 1, timeout=10000)
    assert 3.0 not in panel.curve_data("rss")[1]


def test_a_run_that_ends_before_its_first_reading_leaves_the_dock_live(make_panel):
    panel = make_panel(interval=0.1, nvml=StandInNvml())
    panel.show()
    panel.begin_run()
    panel.end_run()  # e.g. the model file did not build
    assert panel.sampling and not panel.live_button.isVisible()


@pytest.mark.parametrize("choice", ["rolling", "whole"])
def test_the_users_time_span_stays_through_run_end_a_resume_and_new_runs(
        make_panel, workspace_dir, tiny_config, choice):
    panel = make_panel(nvml=StandInNvml())
    panel.show()
    other = "whole" if choice == "rolling" else "rolling"
    getattr(panel, other).click()
    getattr(panel, choice).click()  # what the user picked last
    panel.begin_run()
    feed(panel, StandInNvml(), range(0, 900, 10), step=1)
    panel.end_run()
    assert getattr(panel, choice).isChecked()
    run, history = stored_run(tiny_config)
    panel.show_history(history, f"Run {run.id}: stored samples")  # Resume opens it first,
    assert panel.whole.isChecked()  # a stored run is shown whole
    panel.begin_run()  # ...then resumes it
    assert getattr(panel, choice).isChecked()
    feed(panel, StandInNvml(), range(0, 900, 10), step=1)
    panel.refresh()
    left, right = panel.plots["memory"].getPlotItem().viewRange()[0]
    if choice == "rolling":
        assert right == pytest.approx(890) and left == pytest.approx(890 - ROLLING_S)
    panel.end_run()
    panel.begin_run()  # a new run
    assert getattr(panel, choice).isChecked()
    panel.show_history(history, "stored")
    panel.live_button.click()
    assert getattr(panel, choice).isChecked()


@pytest.mark.slow  # a real run in its own process: tens of seconds on a loaded machine
def test_a_run_from_the_window_sends_its_samples_and_open_run_shows_them(qtbot, tmp_path,
                                                                       tiny_config):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)
    window = MainWindow(tiny_config(**{"monitor.interval": 0.1, "train.epochs": 60}),
                        workspace_dir=tmp_path / "ws", settings=settings)
    window.confirm = lambda title, text: True
    qtbot.addWidget(window)
    window.show()
    view = next(m for m in window.findChildren(QMenu) if m.title() == "&View")
    assert window.hardware_dock.toggleViewAction() in view.actions()
    window.hardware_dock.raise_()  # shown: a dock behind another tab never samples
    received = []
    window.bridge.hardwareSampled.connect(received.append)
    with qtbot.waitSignal(window.bridge.runEnded, timeout=60000):
        window.start_run()
    qtbot.waitUntil(lambda: window.act_start.isEnabled(), timeout=10000)
    assert received and all(s.step is not None for s in received)
    assert received[-1].ram_total > 0
    hardware = window.hardware
    assert not hardware.sampling and "ended" in hardware.source.text()
    assert len(hardware.curve_data("rss")[1]) == len(received)  # the run's process alone
    with Workspace(tmp_path / "ws") as ws:
        run = ws.list_runs()[0]
        stored = ws.hardware_samples(run.id)["host"]
    assert len(stored["time"]) >= len(received)
    window.open_run(run.id)
    window.hardware.refresh()
    assert window.hardware.live_button.isVisible()
    assert len(window.hardware.curve_data("ram_used")[1]) == len(stored["time"])
    window.bridge.wait()
