"""Reports reach the user where they are, and none is lost: the window's one message log,
the bar of every dock, View ▸ Messages; Export trace only with a capture; Help's shortcuts."""

import json

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QAction, QGuiApplication, QKeySequence, QTextDocument
from PySide6.QtWidgets import QFileDialog, QLabel, QMenu

from app import dialogs
from app.main_window import MainWindow
from app.widgets.timeline_keys import KEYS


@pytest.fixture
def window(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)
    win = MainWindow(None, workspace_dir=tmp_path / "ws", settings=settings)
    qtbot.addWidget(win)
    win.show()
    yield win
    win.bridge.stop()
    win.bridge.wait()


@pytest.fixture
def trace(tmp_path):
    """A small Chrome trace as torch.profiler writes one on the CPU."""
    events = [{"ph": "X", "cat": "user_annotation", "name": "ProfilerStep#1", "pid": 1,
               "tid": 1, "ts": 0, "dur": 100},
              {"ph": "X", "cat": "cpu_op", "name": "aten::addmm", "pid": 1, "tid": 1,
               "ts": 10, "dur": 50}]
    path = tmp_path / "run" / "profile" / "capture-1" / "host_1.1.pt.trace.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"traceEvents": events}))
    return path


def bars(window):
    return {"Training": (window.training_dock, window.messages),
            "Hardware": (window.hardware_dock, window.hardware_bar),
            "Profiler": (window.profiler_dock, window.profiler.messages),
            "Compression": (window.compression_dock, window.compression.messages)}


def show_trace(qtbot, window, trace):
    with qtbot.waitSignal(window.profiler.traceShown, timeout=30000):
        window.profiler.load(trace)


def test_export_trace_reports_in_the_dock_the_user_is_in_and_in_every_other(
        qtbot, window, trace, tmp_path, monkeypatch):
    show_trace(qtbot, window, trace)
    window.compression_dock.raise_()  # Profile ▸ Export trace, chosen from the Compression tab
    out = tmp_path / "out.json.gz"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args: (str(out), ""))
    window.act_export_trace.trigger()
    bar = window.compression.messages
    qtbot.waitUntil(lambda: bool(bar.message()), timeout=10000)
    assert f"Exported {out}" in bar.message() and bar.kind == "info" and out.is_file()
    for name, (dock, other) in bars(window).items():
        dock.raise_()
        assert f"Exported {out}" in other.message(), name


def test_a_docks_own_message_stays_in_its_dock_and_dismissing_hides_it_everywhere(qtbot,
                                                                                 window):
    window.compression.sweep.setText("0.5, half")
    window.compression.refresh_runs()
    window.compression.run_box.addItem("1  moons-mlp", 1)  # a run to compress
    window.compression.start()
    window.compression_dock.raise_()
    assert "sweep ratios must be numbers" in window.compression.messages.message()
    window.training_dock.raise_()
    assert window.messages.message() == ""  # the Training tab is not about compression
    window.messages.show_message("The run could not start: no such file", "error", "Run")
    window.compression_dock.raise_()
    assert "could not start" in window.compression.messages.message()
    window.compression.messages.close_button.click()
    for name, (dock, bar) in bars(window).items():
        dock.raise_()
        assert "could not start" not in bar.message(), name


def test_view_messages_lists_every_report_with_time_level_and_action_and_copies_them(
        qtbot, window):
    window.messages.show_message("Saved /tmp/a.toml", "info", "File ▸ Save config as")
    window.profiler.messages.show_message("Cannot read x.json: not JSON", "error")
    window.messages.show_message("Export of run 1 failed: disk full", "error",
                                 "File ▸ Export trained model")  # replaces the first in the bar
    window.messages.close_button.click()  # dismissed, not lost
    window.act_messages.trigger()
    history = window.history
    assert history.isVisible()
    table = history.table
    rows = [[table.item(r, c).text() for c in range(4)] for r in range(table.rowCount())]
    assert [row[1:] for row in rows] == [
        ["error", "File ▸ Export trained model", "Export of run 1 failed: disk full"],
        ["error", "Profiler", "Cannot read x.json: not JSON"],
        ["info", "File ▸ Save config as", "Saved /tmp/a.toml"]]
    assert all(len(row[0]) == 8 and row[0].count(":") == 2 for row in rows)  # HH:MM:SS
    window.compression.message.emit("Pick a candidate first.", "info")  # arrives while open
    assert table.rowCount() == 4 and table.item(0, 2).text() == "Compression"
    table.selectRow(2)
    history.copy()
    copied = QGuiApplication.clipboard().text()
    assert copied.endswith("ERROR    Profiler: Cannot read x.json: not JSON")
    table.clearSelection()
    history.copy()  # nothing selected: all of it, oldest first
    lines = QGuiApplication.clipboard().text().splitlines()
    assert len(lines) == 4 and lines[0].endswith("File ▸ Save config as: Saved /tmp/a.toml")


def test_a_bars_history_button_opens_the_messages(qtbot, window):
    window.compression.message.emit("Pick a candidate first.", "info")
    window.compression_dock.raise_()
    qtbot.mouseClick(window.compression.messages.history_button, Qt.LeftButton)
    assert window.history is not None and window.history.isVisible()
    assert window.history.table.item(0, 3).text() == "Pick a candidate first."


def test_export_trace_is_offered_only_while_a_capture_is_shown(qtbot, window, trace, tmp_path):
    assert not window.act_export_trace.isEnabled()  # nothing on show at start
    show_trace(qtbot, window, trace)
    assert window.act_export_trace.isEnabled()
    empty = tmp_path / "ws" / "runs" / "0002-no-captures"
    empty.mkdir(parents=True)
    window.profiler.set_run(empty)  # a run without captures shows none
    assert window.profiler.trace is None and not window.act_export_trace.isEnabled()
    window.profiler.set_run(trace.parents[2])  # back to the run with the capture
    qtbot.waitUntil(window.act_export_trace.isEnabled, timeout=30000)


def shortcuts_text(window, monkeypatch) -> str:
    shown = []
    monkeypatch.setattr(dialogs.TextDialog, "exec", lambda self: shown.append(self) or 0)
    window.act_shortcuts.trigger()
    document = QTextDocument()
    document.setHtml(shown[0].findChild(QLabel).text())
    return document.toPlainText()


def test_help_lists_every_shortcut_of_the_window_and_the_timeline_keys(window, monkeypatch):
    text = shortcuts_text(window, monkeypatch)
    actions = [a for a in window.findChildren(QAction) if a.shortcuts()]
    assert len(actions) >= 13
    for action in actions:
        for shortcut in action.shortcuts():
            keys = shortcut.toString(QKeySequence.NativeText)
            label = action.text().replace("&", "").rstrip(".…")
            assert f"{keys}\n{label}" in text or f"{keys}, " in text, (keys, label)
    for key, (label, _method) in KEYS.items():
        assert f"{QKeySequence(key).toString()}\n{label}" in text
    assert "Shift+Drag\nSelect a time range" in text


def test_a_new_action_with_a_shortcut_appears_in_the_help_by_itself(window, monkeypatch):
    menus = {m.title(): m for m in window.menuBar().findChildren(QMenu)}
    action = QAction("Duplicate run", window, shortcut=QKeySequence("Ctrl+D"))
    menus["&Run"].addAction(action)
    text = shortcuts_text(window, monkeypatch)
    assert "Ctrl+D\nDuplicate run" in text.split("\nRun\n")[1].split("\nProfile\n")[0]
