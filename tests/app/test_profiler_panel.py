"""The Profiler dock: real CPU traces shown, tables sorted and filtered, captures in the window."""

import pytest
from PySide6.QtCore import QSettings, Qt

from app.panels.profiler_panel import ProfilerPanel
from app.widgets.profile_tables import SORT_ROLE
from engine.profiling.options import CaptureOptions, profiling_config

OPTIONS = CaptureOptions(wait=0, warmup=1, active=2)


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A run folder holding one capture torch.profiler records here, on the CPU."""
    from engine.profiling.capture import ProfilerCapture
    from engine.training import Trainer
    from tests.conftest import tiny

    folder = tmp_path_factory.mktemp("run")
    trainer = Trainer(profiling_config(tiny(), OPTIONS))
    ProfilerCapture(worker="w").attach(trainer, folder).request(OPTIONS, "capture-1")
    assert trainer.run().status == "completed"
    return folder


@pytest.fixture
def panel(qtbot):
    widget = ProfilerPanel()
    qtbot.addWidget(widget)
    widget.resize(1000, 600)
    widget.show()
    return widget


def shown(qtbot, panel):
    qtbot.waitUntil(lambda: panel.report is not None, timeout=30000)
    return panel.report


def test_shows_the_newest_capture_of_a_run(qtbot, panel, run_folder):
    panel.set_run(run_folder)
    report = shown(qtbot, panel)
    assert panel.captures.currentText().startswith("capture-1")
    assert set(panel.breakdown.bars) == {c for c in report.average.costs_us
                                         if report.average.costs_us[c] > 0}
    assert "CPU Exec" in panel.breakdown.bars
    text = panel.summary.toPlainText()
    assert "Average step" in text and "CPU Exec" in text and "Recommendations" in text
    assert panel.operators.proxy.rowCount() == len(report.operators) > 10
    assert not panel.tabs.isTabVisible(panel.kernels_tab)  # no GPU kernels in a CPU trace
    assert panel.memory.curves  # profile_memory is on by default
    assert panel.tabs.isTabEnabled(panel.timeline_tab)
    assert panel.timeline.index is panel.timeline_index and panel.timeline.index.tracks
    assert panel.timeline.search("aten::addmm") > 0


def test_operator_table_sorts_and_filters(qtbot, panel, run_folder):
    panel.set_run(run_folder)
    shown(qtbot, panel)
    table = panel.operators
    host_self = [table.proxy.index(r, 3).data(SORT_ROLE) for r in range(table.proxy.rowCount())]
    assert host_self == sorted(host_self, reverse=True)  # the default: most self time first
    table.view.sortByColumn(2, Qt.AscendingOrder)  # calls, as a click on the header does
    calls = [table.proxy.index(r, 2).data(SORT_ROLE) for r in range(table.proxy.rowCount())]
    assert calls == sorted(calls) and calls[0] < calls[-1]
    qtbot.keyClicks(table.filter, "ADDMM")
    names = table.visible_names()
    assert names and all("addmm" in n.lower() for n in names)
    assert len(names) < table.model.rowCount() and "of" in table.count.text()
    table.filter.clear()
    assert table.proxy.rowCount() == table.model.rowCount()
    table.by_shape.setChecked(True)
    assert not table.view.isColumnHidden(1)
    shapes = {table.proxy.index(r, 1).data(SORT_ROLE) for r in range(table.proxy.rowCount())}
    assert any(s.startswith("[[") for s in shapes)


@pytest.mark.parametrize("content, words", [(b"", "is empty"), (b'{"traceEvents": [1',
                                                                  "truncated or damaged")])
def test_a_bad_trace_is_a_message_naming_the_file(qtbot, panel, tmp_path, content, words):
    bad = tmp_path / "bad.pt.trace.json"
    bad.write_bytes(content)
    panel.load(bad)
    qtbot.waitUntil(lambda: panel.messages.isVisible() and not panel.busy, timeout=10000)
    assert words in panel.messages.message() and str(bad) in panel.messages.message()
    assert panel.messages.kind == "error" and panel.report is None


def test_cancel_keeps_what_was_shown(qtbot, panel, run_folder):
    trace = next((run_folder / "profile" / "capture-1").glob("*.pt.trace.json"))
    panel.load(trace)
    assert panel.busy and panel.loading.isVisible()
    panel.cancel()
    assert not panel.busy and not panel.loading.isVisible()
    assert "cancelled" in panel.messages.message()
    qtbot.wait(1500)  # a worker that finished anyway must not show its result
    assert panel.report is None


@pytest.fixture
def window(qtbot, tmp_path):
    from app.main_window import MainWindow

    settings = QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat)
    win = MainWindow(workspace_dir=tmp_path / "ws", settings=settings)
    win.confirm = lambda title, text: True
    qtbot.addWidget(win)
    win.show()
    yield win
    win.bridge.stop()
    win.bridge.wait()


@pytest.mark.slow  # a run process starts (seconds on a loaded machine)
def test_profile_steps_of_the_current_run(qtbot, window, tiny_config):
    window.config_panel.set_config(tiny_config(**{"train.epochs": 1000}))
    with qtbot.waitSignal(window.bridge.metricsLogged, timeout=30000):
        window.start_run()
    with qtbot.waitSignal(window.bridge.profileDone, timeout=30000) as done:
        window.bridge.profile(OPTIONS)
    result = done.args[0]
    assert result.trace and not result.partial and result.error is None
    report = shown(qtbot, window.profiler)
    assert report.trace == result.trace and len(report.steps) == OPTIONS.active
    assert window.profiler_dock.isVisible()


@pytest.mark.slow  # a run process starts (seconds on a loaded machine)
def test_capture_dialog_starts_a_short_dedicated_run(qtbot, window, tiny_config, monkeypatch):
    from app.widgets import capture_dialog

    monkeypatch.setattr(capture_dialog.CaptureDialog, "exec", lambda self: True)
    window.config_panel.set_config(tiny_config(**{"train.epochs": 1}))
    with qtbot.waitSignal(window.bridge.runEnded, timeout=60000) as ended:
        window.act_capture.trigger()
    assert ended.args[0].status == "completed"
    assert ended.args[0].steps == CaptureOptions().steps  # the dialog's defaults
    report = shown(qtbot, window.profiler)
    assert len(report.steps) == CaptureOptions().active
    assert window.profiler.run_folder is not None
    assert window.profiler.captures.count() == 1
    from engine.workspace import Workspace

    with Workspace(window.workspace_dir) as ws:  # kept, marked: not listed as a trained run
        run = ws.list_runs()[0]
    assert run.kind == "profile" and run.name.startswith("profile-")


@pytest.mark.slow
def test_open_in_tensorboard_and_stop_on_close(qtbot, panel, run_folder, monkeypatch):
    from app.panels import profiler_panel

    opened = []
    monkeypatch.setattr(profiler_panel.QDesktopServices, "openUrl", opened.append)
    panel.set_run(run_folder)
    panel.open_tensorboard()
    qtbot.waitUntil(lambda: bool(opened), timeout=60000)
    assert opened[0].toString().startswith("http://127.0.0.1:")
    process = panel.tensorboard.process
    assert process is not None and process.state() != process.ProcessState.NotRunning
    panel.tensorboard.stop()
    assert process.state() == process.ProcessState.NotRunning


def test_the_summary_names_the_device_the_trace_ran_on():
    from app.panels.profiler_panel import summary_html
    from engine.profiling.accelerator import Accelerator
    from engine.profiling.report import CATEGORIES, ProfileReport, StepCosts

    step = StepCosts("average", {**dict.fromkeys(CATEGORIES, 0.0), "Kernel": 40.0})
    report = ProfileReport(trace="rocm.pt.trace.json", steps=(step,), average=step,
                           operators=(), operators_by_shape=(), kernels=(), memory=(),
                           recommendations=(), has_gpu=True,
                           accelerator=Accelerator("HIP", "GPU", model="AMD Instinct MI250X"))
    assert "1 profiled step on AMD Instinct MI250X (HIP)" in summary_html(report)
