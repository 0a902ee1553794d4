"""File ▸ Predict…: a non-modal dialog that predicts in a process of its own, shows its
progress and reports the result (or the engine's error) in the window's message bar."""

import pandas as pd
import pytest
from PySide6.QtCore import QSettings, Qt

from app.main_window import MainWindow
from app.panels.predict_dialog import PredictDialog
from engine.cli import main
from engine.data.tables import table_path
from tests.conftest import tiny

EXAMPLES = __import__("pathlib").Path(__file__).resolve().parents[2] / "examples"
PENGUINS = table_path("table:pkg://palmerpenguins/penguins.csv")


@pytest.fixture(scope="module")
def trained_ws(tmp_path_factory):
    folder = tmp_path_factory.mktemp("predict-app") / "ws"
    assert main(["run", str(EXAMPLES / "penguins-table.toml"), "--workspace", str(folder),
                 "--set", "train.epochs=1"]) == 0
    return folder


@pytest.fixture
def window(qtbot, tmp_path, trained_ws):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)
    w = MainWindow(tiny(), workspace_dir=trained_ws, settings=settings)
    w.answers = []
    w.confirm = lambda title, text: w.answers.pop(0)
    qtbot.addWidget(w)
    w.show()
    yield w
    w.predict_actions.wait()


def open_dialog(window) -> PredictDialog:
    window.act_predict.trigger()
    dialog = window.predict_actions.dialog
    assert dialog is not None and dialog.isVisible() and not dialog.isModal()
    return dialog


def test_predicts_with_a_progress_bar_and_reports_in_the_message_bar(window, tmp_path, qtbot):
    data = tmp_path / "new.csv"
    pd.read_csv(PENGUINS).to_csv(data, index=False)
    dialog = open_dialog(window)
    assert "penguins-mlp" in dialog.run_label.text()
    dialog.data.setText(str(data))
    out = tmp_path / "pred.csv"
    dialog.out.setText(str(out))
    seen = []  # (value, maximum) as the bar moves
    bar = dialog.progress
    bar.valueChanged.connect(lambda value: seen.append((value, bar.maximum())))
    with qtbot.waitSignal(window.predict_actions.finished, timeout=60000):
        dialog.predict_button.click()
        assert dialog.progress.isVisible() and not dialog.predict_button.isEnabled()
    assert seen and seen[-1] == (344, 344)  # the dialog itself closed on success
    got = pd.read_csv(out)
    assert len(got) == 344 and list(got.columns[:3]) == ["row", "species", "predicted"]
    text = window.messages.message()
    assert window.messages.kind == "info" and "Predicted 344 input(s)" in text
    assert str(out) in text
    assert window.log.messages[-1].source == "File ▸ Predict"
    qtbot.waitUntil(lambda: window.predict_actions.dialog is None)  # closed when done


def test_a_missing_column_is_an_error_and_the_dialog_stays_for_a_fix(window, tmp_path, qtbot):
    data = tmp_path / "partial.csv"
    pd.read_csv(PENGUINS).drop(columns=["bill_length_mm"]).to_csv(data, index=False)
    out = tmp_path / "pred.csv"
    out.write_text("previous")
    dialog = open_dialog(window)
    dialog.data.setText(str(data))
    dialog.out.setText(str(out))
    window.answers = [True]  # replace the existing file
    with qtbot.waitSignal(window.predict_actions.finished, timeout=60000):
        dialog.predict_button.click()
    assert window.answers == []
    assert window.messages.kind == "error"
    assert "'bill_length_mm'" in window.messages.message()
    assert out.read_text() == "previous"  # nothing half-written
    assert dialog.isVisible() and dialog.predict_button.isEnabled()
    assert not dialog.progress.isVisible()


def test_declining_to_replace_the_output_starts_nothing(window, tmp_path):
    out = tmp_path / "pred.csv"
    out.write_text("previous")
    dialog = open_dialog(window)
    dialog.data.setText(str(PENGUINS))
    dialog.out.setText(str(out))
    window.answers = [False]
    dialog.predict_button.click()
    assert not window.predict_actions.busy and out.read_text() == "previous"


@pytest.fixture(scope="module")
def big_table(tmp_path_factory):
    """Penguins 1,500 times over (516,000 rows): its CSV takes seconds to write."""
    path = tmp_path_factory.mktemp("predict-big") / "many.csv"
    pd.concat([pd.read_csv(PENGUINS)] * 1500, ignore_index=True).to_csv(path, index=False)
    return path


def partial_files(folder):
    return sorted(folder.glob(".pred.csv.*.tmp"))


def cancel_and_wait(window, dialog, qtbot):
    with qtbot.waitSignal(window.predict_actions.finished, timeout=30000):
        qtbot.mouseClick(dialog.cancel_button, Qt.LeftButton)
    assert not window.predict_actions.busy


@pytest.mark.slow
def test_cancel_while_the_csv_is_written_leaves_the_old_file_and_no_partial_one(
        window, tmp_path, qtbot, big_table):
    out = tmp_path / "pred.csv"
    out.write_text("previous")
    dialog = open_dialog(window)
    dialog.data.setText(str(big_table))
    dialog.out.setText(str(out))
    window.answers = [True]  # replace the existing file
    assert not dialog.cancel_button.isVisible()
    dialog.predict_button.click()
    assert dialog.cancel_button.isVisible() and dialog.cancel_button.isEnabled()
    # the process is writing the predictions into a temporary file beside the output
    qtbot.waitUntil(lambda: any(p.stat().st_size > 0 for p in partial_files(tmp_path)),
                    timeout=120000)
    cancel_and_wait(window, dialog, qtbot)
    assert out.read_text() == "previous" and partial_files(tmp_path) == []
    assert dialog.isVisible() and "cancelled" in dialog.status.text()
    assert dialog.status.isVisible() and not dialog.cancel_button.isVisible()
    assert dialog.predict_button.isEnabled() and not dialog.progress.isVisible()
    assert window.messages.kind == "info" and "cancelled" in window.messages.message()


@pytest.mark.slow
def test_cancel_during_inference_writes_nothing(window, tmp_path, qtbot, big_table):
    out = tmp_path / "pred.csv"
    dialog = open_dialog(window)
    dialog.data.setText(str(big_table))
    dialog.out.setText(str(out))
    with qtbot.waitSignal(dialog.progress.valueChanged, timeout=120000):
        dialog.predict_button.click()  # the first batches are predicted
    cancel_and_wait(window, dialog, qtbot)
    assert not out.exists() and partial_files(tmp_path) == []
    assert dialog.status.text() == "Prediction cancelled: pred.csv was not written."
    assert window.predict_actions.dialog is dialog  # it stays, for another try
