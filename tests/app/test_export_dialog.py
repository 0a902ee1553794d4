"""File ▸ Export trained model…: offered once a run has weights, asks before overwriting,
exports in a process of its own and reports the verification (or the error) in the message bar."""


import pytest

from app.panels import export_dialog
from app.panels.export_dialog import ExportDialog
from engine.cli import main
from tests.conftest import tiny


@pytest.fixture(scope="module")
def trained_ws(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export-app") / "ws"
    config = folder.parent / "tiny.toml"
    tiny().save(config)
    for _ in range(2):
        assert main(["run", str(config), "--workspace", str(folder)]) == 0
    return folder


@pytest.fixture
def make_window(make_window):
    """The shared window on ``workspace``, whose confirmations answer from
    ``window.answers``; its exports are waited for at the test's end."""
    windows = []

    def make(workspace):
        window = make_window(tiny(), workspace=workspace)
        window.answers = []
        window.confirm = lambda title, text: window.answers.pop(0)
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.exporter.wait()


def fill_in(monkeypatch, fmt, path, seen):
    """Replace the modal exec: choose format and file, press Export like a user."""
    def exec_(dialog):
        seen.append(dialog)
        dialog.set_format(fmt)
        dialog.path.setText(str(path))
        dialog.export_button.click()
        return dialog.result()

    monkeypatch.setattr(ExportDialog, "exec", exec_)


def test_disabled_with_a_reason_until_a_run_has_weights(make_window, tmp_path):
    window = make_window(tmp_path / "empty-ws")
    assert not window.act_export_model.isEnabled()
    assert "No trained run" in window.act_export_model.toolTip()


def test_exports_in_a_process_of_its_own_and_reports(make_window, trained_ws, tmp_path, qtbot,
                                                monkeypatch):
    window = make_window(trained_ws)
    assert window.act_export_model.isEnabled()
    window.open_run(1)  # the run last shown is the default, not the newest

    def in_the_window(*args, **kwargs):
        raise AssertionError("the export ran in the window's process")

    monkeypatch.setattr(export_dialog, "export_model", in_the_window)
    out, seen = tmp_path / "out" / "moons.onnx", []
    fill_in(monkeypatch, "onnx", out, seen)
    with qtbot.waitSignal(window.exporter.succeeded, timeout=60000) as done:
        window.act_export_model.trigger()
    assert seen[0].request.run_id == 1 and seen[0].request.format == "onnx"
    report = done.args[0]
    assert report.path == out and out.is_file()
    text = window.messages.message()
    assert window.messages.kind == "info" and str(out) in text
    assert "held-out batch of 50" in text and "max abs difference" in text


def test_asks_before_overwriting(make_window, trained_ws, tmp_path, qtbot, monkeypatch):
    window = make_window(trained_ws)
    out = tmp_path / "model.pt2"
    out.write_bytes(b"previous")
    seen = []
    fill_in(monkeypatch, "pt2", out, seen)
    window.answers = [False]
    window.act_export_model.trigger()
    assert seen[0].request is None and not window.exporter.busy  # declined: nothing started
    assert out.read_bytes() == b"previous"
    window.answers = [True]
    with qtbot.waitSignal(window.exporter.succeeded, timeout=60000):
        window.act_export_model.trigger()
    assert seen[1].request.overwrite and out.read_bytes() != b"previous"
    assert window.answers == []  # asked exactly once each time


def test_a_failed_export_shows_the_engines_error_and_keeps_no_file(make_window, trained_ws,
                                                                  tmp_path, qtbot, monkeypatch):
    # A failed verification is checked in tests/engine/test_export.py (the export runs in
    # a process of its own here, out of a monkeypatch's reach): a folder that cannot be
    # written fails the same way, through the same error path.
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the folder should be")
    window = make_window(trained_ws)
    out = blocker / "model.safetensors"
    fill_in(monkeypatch, "safetensors", out, [])
    with qtbot.waitSignal(window.exporter.failed, timeout=60000):
        window.act_export_model.trigger()
    assert window.messages.kind == "error"
    assert f"cannot write into {blocker}" in window.messages.message()
    window.compression_dock.raise_()  # the report reaches every dock, and the log keeps it
    assert f"cannot write into {blocker}" in window.compression.messages.message()
    assert window.log.messages[-1].source == "File ▸ Export trained model"
    assert blocker.read_text() == "a file where the folder should be"
    assert list(tmp_path.glob("**/.model*")) == []


def test_path_follows_the_run_and_format(trained_ws, qtbot, tmp_path):
    runs = export_dialog.exportable_runs(trained_ws)
    dialog = ExportDialog(runs, 1, str(tmp_path), lambda *a: True)
    qtbot.addWidget(dialog)
    assert dialog.runs.currentData().id == 1
    assert dialog.path.text() == str(tmp_path / "0001-moons-mlp.safetensors")
    dialog.set_format("onnx")
    assert dialog.path.text().endswith("0001-moons-mlp.onnx")
    dialog.runs.setCurrentIndex(0)  # newest first
    assert dialog.path.text() == str(tmp_path / "0002-moons-mlp.onnx")
    dialog.path.setText("")
    assert not dialog.export_button.isEnabled()
