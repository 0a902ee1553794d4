"""The window starts lean: its first frame needs no torch, and what comes after it works.

Timings live in bench/startup.py and docs/benchmarks.md, not here.
"""

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, Qt

from app.main_window import MainWindow
from engine.monitor import Sampler
from engine.monitor.standin import GIB

ROOT = Path(__file__).parents[2]
NOT_AT_FIRST_FRAME = ("torch", "torch_tb_profiler", "onnx", "onnxruntime", "sklearn",
                      "engine.compression", "engine.export", "app.panels.compression_panel",
                      "app.panels.hardware_panel", "app.panels.profiler_panel",
                      "engine.evaluation", "app.panels.evaluation_panel")


def test_torchwork_shows_its_first_frame_before_importing_torch(tmp_path):
    """`torchwork` itself (a clean process), through its start-up probe."""
    probe = tmp_path / "probe.txt"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(tmp_path / "cfg"),
               TORCHWORK_STARTUP_PROBE=str(probe), PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "app", "--workspace", str(tmp_path / "ws")],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    fields = dict(line.split(" ", 1) for line in probe.read_text().splitlines())
    first_frame = set(fields["first_frame_modules"].split())
    assert "app.panels.training_plots" in first_frame and "app.panels.config_panel" in first_frame
    assert not first_frame & set(NOT_AT_FIRST_FRAME)
    assert float(fields["visible"]) <= float(fields["usable"])
    assert fields["start_enabled"] == "True"


@pytest.fixture
def deferred_window(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)
    window = MainWindow(workspace_dir=tmp_path / "ws", settings=settings, defer_docks=True)
    window.confirm = lambda title, text: True
    qtbot.addWidget(window)
    yield window
    window.bridge.stop()
    window.bridge.wait()


def test_the_docks_are_built_after_the_first_frame_and_work(qtbot, deferred_window):
    window = deferred_window
    assert not window.docks_loader.done and not hasattr(window, "hardware")
    window.show()
    qtbot.waitUntil(lambda: window.docks_loader.done, timeout=60000)
    assert window.docks_loader.painted_at is not None  # built after the frame, not before
    assert window.hardware_dock.widget().isAncestorOf(window.hardware)  # under its bar
    assert window.profiler_dock.widget() is window.profiler
    assert window.compression_dock.widget() is window.compression
    assert window.evaluation_dock.widget() is window.evaluation
    assert window.act_start.isEnabled() and not window.act_stop.isEnabled()
    # the bridge and the docks' own signals are wired to them once built
    sample = Sampler(0.1, torch_memory=False).sample()
    window.bridge.hardwareSampled.emit(dataclasses.replace(sample, process_rss=123 * GIB))
    assert 123 in window.hardware.curve_data("rss")[1]
    window.compression.selectionChanged.emit(True)
    assert window.act_export_compressed.isEnabled()
    window.hardware_dock.raise_()
    qtbot.waitUntil(window.hardware.isVisible)


@pytest.mark.slow
def test_a_run_from_the_deferred_window_reaches_every_dock(qtbot, deferred_window,
                                                           tiny_config):
    window = deferred_window
    window.config_panel.set_config(tiny_config(**{"monitor.interval": 0.1}))
    window.show()
    qtbot.waitUntil(lambda: window.docks_loader.done, timeout=60000)
    window.hardware_dock.raise_()  # shown: a dock behind another tab never samples
    received = []
    window.bridge.hardwareSampled.connect(received.append)
    with qtbot.waitSignal(window.bridge.runEnded, timeout=120000) as ended:
        window.start_run()
    assert ended.args[0].status == "completed"
    qtbot.waitUntil(window.act_start.isEnabled, timeout=10000)
    assert len(window.hardware.curve_data("rss")[1]) == len(received) > 0
    assert window.act_export_model.isEnabled()  # Export offers the trained run
    assert window.compression.run_box.count() == 1
    # the run process stored the run's evaluation before its end reached the window
    assert window.evaluation.run_id == 1 and window.evaluation.report is not None
    assert window.evaluation.report["n"] == 50 == window.evaluation.matrix.matrix.sum()


def test_closing_before_the_first_frame_builds_the_docks_first(qtbot, deferred_window):
    """The window's close cleans up the docks: it must find them built, not crash."""
    window = deferred_window
    assert window.close()
    assert window.docks_loader.done and window.docks_loader.painted_at is None


def test_a_key_before_the_first_frame_waits_for_the_docks(qtbot, deferred_window):
    window = deferred_window
    qtbot.keyClick(window.config_panel, Qt.Key_Tab)
    assert window.docks_loader.done
    assert window.hardware_dock.widget().isAncestorOf(window.hardware)  # under its bar


def test_another_windows_input_or_close_before_the_first_frame_leaves_the_docks_deferred(
        qtbot, deferred_window):
    """A tooltip or another test's window closing must not build the docks before the frame."""
    from PySide6.QtWidgets import QLabel

    window = deferred_window
    other = QLabel("another window")
    qtbot.addWidget(other)
    other.show()
    qtbot.keyClick(other, Qt.Key_Tab)
    other.close()
    assert not window.docks_loader.done
    window.show()
    qtbot.waitUntil(lambda: window.docks_loader.done, timeout=60000)
    assert window.docks_loader.painted_at is not None
