"""Run ▸ Model summary…: the dialog's nested rows and totals, and its errors in its own bar."""

import pytest

from app.panels.summary_dialog import COLUMNS, ModelSummaryAction, SummaryDialog
from app.widgets.message_bar import MessageLog
from engine.summary import bytes_text, flops_text, summarize
from tests.conftest import tiny

RESNET = {"model.arch": "resnet", "data.dataset": "digits", "model.channels": [4, 8],
          "data.batch_size": 16}


@pytest.fixture
def dialog(qtbot):
    widget = SummaryDialog(MessageLog())
    qtbot.addWidget(widget)
    widget.show()
    return widget


def cells(model, parent=None) -> list[tuple[int, list[str]]]:
    """(depth, texts) of every row, depth first, as the tree nests them."""
    from PySide6.QtCore import QModelIndex

    parent = parent or QModelIndex()
    out = []
    for r in range(model.rowCount(parent)):
        index = model.index(r, 0, parent)
        out.append((0, [model.index(r, c, parent).data() for c in range(len(COLUMNS))]))
        out += [(d + 1, t) for d, t in cells(model, index)]
    return out


def totals(dialog) -> dict[str, str]:
    form = dialog.totals
    return {form.itemAt(i, form.ItemRole.LabelRole).widget().text():
            form.itemAt(i, form.ItemRole.FieldRole).widget().text()
            for i in range(form.rowCount())}


def test_rows_nest_as_the_models_modules_and_totals_show_under_them(dialog):
    result = summarize(tiny(**RESNET, **{"model.freeze": ["0"]})).to_dict()
    dialog.show_result(result)
    rows = cells(dialog.model)
    assert len(rows) == len(result["layers"])
    assert rows[0] == (0, ["(model)", "Sequential", "16 × 10", "–", "–", "–", "–"])
    block = next(i for i, (depth, texts) in enumerate(rows) if (depth, texts[0]) == (1, "3"))
    assert rows[block][1][1] == "BasicBlock"  # a block's layers sit under it, by their own name
    assert (rows[block + 1][0], rows[block + 1][1][:3]) == (2, ["conv1", "Conv2d",
                                                                 "16 × 4 × 8 × 8"])
    first = {r["name"]: r for r in result["layers"]}["0"]
    assert (1, ["0", "Conv2d", "16 × 4 × 8 × 8", "–", "36", flops_text(first["flops"]),
                bytes_text(first["activation_bytes"])]) in rows
    shown = totals(dialog)
    assert shown["Parameters:"].startswith(f"{result['total_params']:,} (")
    assert "36 frozen" in shown["Parameters:"]
    assert shown["FLOPs at batch 16:"].startswith("forward ")
    assert "fp32" in shown["Model size (parameters):"]
    assert "resnet" in dialog.heading.text() and "fake tensors" in dialog.heading.text()
    assert not dialog.messages.isVisible()


def test_a_form_with_problems_shows_the_first_in_the_dialogs_bar(qtbot):
    from PySide6.QtWidgets import QWidget

    window = QWidget()
    qtbot.addWidget(window)
    log = MessageLog()
    action = ModelSummaryAction(lambda: tiny(), lambda: ["optim.lr must be > 0 (got -1.0)"],
                                log, window)
    action.show()
    bar = action.dialog.messages
    assert bar.isVisible() and bar.kind == "error"
    assert "optim.lr must be > 0" in bar.message()
    assert not action.dialog.busy()  # nothing was started for it
    assert [m.text for m in log.messages][-1] == bar.message()  # View ▸ Messages has it
    action.shutdown()


@pytest.mark.slow
def test_the_summary_is_measured_in_its_own_process_and_a_failure_is_one_line(qtbot, tmp_path):
    from PySide6.QtWidgets import QWidget

    window = QWidget()
    qtbot.addWidget(window)
    configs = [tiny(**RESNET)]
    action = ModelSummaryAction(lambda: configs[-1], lambda: [], MessageLog(), window)
    action.show()
    dialog = action.dialog
    assert dialog.busy() and dialog.spinner.isVisible()
    qtbot.waitUntil(lambda: dialog.result is not None, timeout=90000)
    assert len(cells(dialog.model)) == len(dialog.result["layers"]) > 10
    assert not dialog.spinner.isVisible() and dialog.refresh_button.isEnabled()

    (tmp_path / "net.py").write_text("x = 1\n")
    configs.append(tiny(**{"model.arch": f"custom:{tmp_path / 'net.py'}"}))
    dialog.refresh_button.click()
    qtbot.waitUntil(lambda: dialog.messages.isVisible(), timeout=90000)
    assert "defines no build_model function" in dialog.messages.message()
    assert "\n" not in dialog.messages.message()
    assert "previous configuration" in dialog.heading.text()
    action.shutdown()
    assert action.dialog is None or not action.dialog.busy()


def test_the_windows_run_menu_opens_it_for_the_forms_configuration(qtbot, tmp_path):
    from PySide6.QtCore import QSettings

    from app.main_window import MainWindow

    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)
    window = MainWindow(tiny(), workspace_dir=tmp_path / "ws", settings=settings)
    qtbot.addWidget(window)
    window.show()
    assert window.act_model_summary in window.menuBar().actions()[1].menu().actions()
    window.config_panel.set_value("optim.lr", -1.0)
    window.act_model_summary.trigger()
    dialog = window.model_summary.dialog
    assert dialog.isVisible() and not dialog.isModal()
    assert "optim.lr" in dialog.messages.message()
    window.close()
    assert window.model_summary.dialog is None or not window.model_summary.dialog.isVisible()


def test_the_windows_workspace_goes_to_the_command(qtbot, tmp_path):
    from PySide6.QtWidgets import QWidget

    window = QWidget()
    qtbot.addWidget(window)
    action = ModelSummaryAction(tiny, list, MessageLog(), window, tmp_path / "ws")
    action.show()
    arguments = action.dialog.command.process.arguments()
    assert arguments[-2:] == ["--workspace", str(tmp_path / "ws")]
    assert arguments[arguments.index("summary") + 2] == "--json"
    action.shutdown()
