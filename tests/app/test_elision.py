"""A name cut off in a table, list or combo box shows whole in its tooltip; one that fits gets
none. One filter, installed by the theme's style on every view and combo box as Qt polishes it,
serves them all (app.widgets.elision)."""

import time

import pytest
from PySide6.QtCore import QEvent, QPoint
from PySide6.QtGui import QHelpEvent
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QLineEdit,
    QTableWidget,
    QTableWidgetItem,
    QToolTip,
)

from app import theme
from app.panels.compression_panel import CompressionPanel
from app.widgets.elision import elided_combo_text
from app.widgets.profile_tables import Column, ProfileTable
from engine.compression.measure import Candidate

LONG = "structured 50% + ft 10 ep int8 linear (onnx) of aten::_scaled_dot_product_attention"


@pytest.fixture(autouse=True, params=["light", "dark"])
def themed(request):
    theme.apply(QApplication.instance(), request.param)
    QToolTip.hideText()
    yield
    QToolTip.hideText()
    theme.apply(QApplication.instance(), "system")


def tooltip_at(widget, pos: QPoint) -> str:
    """What hovering ``pos`` shows: the event Qt sends, then the tooltip on screen."""
    QToolTip.hideText()  # hides after a short fade
    deadline = time.monotonic() + 2
    while QToolTip.isVisible() and time.monotonic() < deadline:
        QApplication.processEvents()
    assert not QToolTip.isVisible()
    QApplication.sendEvent(widget, QHelpEvent(QEvent.Type.ToolTip, pos, widget.mapToGlobal(pos)))
    return QToolTip.text() if QToolTip.isVisible() else ""


def cell_tooltip(view, row: int, col: int) -> str:
    index = view.model().index(row, col)
    return tooltip_at(view.viewport(), view.visualRect(index).center())


@pytest.mark.parametrize("wrap", [False, True])
def test_a_narrow_table_shows_a_long_name_in_its_tooltip_and_a_short_one_none(qtbot, wrap):
    table = QTableWidget(2, 1)
    qtbot.addWidget(table)
    table.setWordWrap(wrap)
    table.setItem(0, 0, QTableWidgetItem(LONG))
    table.setItem(1, 0, QTableWidgetItem("relu"))
    table.setColumnWidth(0, 120)
    table.resize(200, 150)
    table.show()
    qtbot.waitExposed(table)
    assert cell_tooltip(table, 0, 0) == LONG
    assert cell_tooltip(table, 1, 0) == ""
    table.setColumnWidth(0, 1200)  # widened, the long name fits
    assert cell_tooltip(table, 0, 0) == ""


def test_a_cut_off_column_title_shows_whole_and_one_that_fits_shows_none(qtbot):
    table = QTableWidget(1, 2)
    qtbot.addWidget(table)
    table.setHorizontalHeaderLabels(["Self CUDA time per call (µs), mean of steps", "Calls"])
    table.horizontalHeaderItem(0).setToolTip("GPU time of the operator itself")
    table.setColumnWidth(0, 90)
    table.setColumnWidth(1, 90)
    table.show()
    qtbot.waitExposed(table)
    header = table.horizontalHeader()

    def title_tip(section: int) -> str:
        middle = header.sectionViewportPosition(section) + header.sectionSize(section) // 2
        return tooltip_at(header.viewport(), QPoint(middle, header.height() // 2))

    assert title_tip(0) == ("Self CUDA time per call (µs), mean of steps\n\n"
                            "GPU time of the operator itself")
    assert title_tip(1) == ""
    table.setColumnWidth(0, 900)  # widened, the title fits: only its own tooltip
    assert title_tip(0) == "GPU time of the operator itself"


def test_an_items_own_tooltip_follows_the_full_name(qtbot):
    table = QTableWidget(1, 1)
    qtbot.addWidget(table)
    item = QTableWidgetItem(LONG)
    item.setToolTip("measured on the CPU")
    table.setItem(0, 0, item)
    table.setColumnWidth(0, 100)
    table.show()
    assert cell_tooltip(table, 0, 0) == f"{LONG}\n\nmeasured on the CPU"


def test_compression_candidates_cut_off_in_the_dock_show_whole(qtbot, tmp_path):
    panel = CompressionPanel(tmp_path / "ws")
    qtbot.addWidget(panel)
    rows = [Candidate(name, "onnxruntime", 1000, 900, 4096, 10_000, 0.1, 1.0,
                      "val_accuracy", 0.9, 0.5) for name in (LONG, "original")]
    panel.show_candidates(rows)
    panel.resize(700, 500)
    panel.show()
    qtbot.waitExposed(panel)
    assert cell_tooltip(panel.table, 0, 0) == LONG
    assert cell_tooltip(panel.table, 1, 0) == ""


def test_profile_tables_names_show_whole_only_when_cut_off(qtbot):
    from dataclasses import dataclass

    @dataclass
    class Row:
        name: str
        self_us: float

    table = ProfileTable((Column("name", "name"), Column("self (ms)", "self_us", time=True)),
                         "filter")
    qtbot.addWidget(table)
    table.set_rows((Row(LONG, 5.0), Row("aten::mm", 3.0)), 1)
    table.resize(260, 200)
    table.show()
    qtbot.waitExposed(table)
    assert cell_tooltip(table.view, 0, 0) == LONG
    assert cell_tooltip(table.view, 1, 0) == ""


def test_a_narrow_combo_box_shows_its_text_whole_and_its_popup_fits_the_items(qtbot):
    combo = QComboBox()
    qtbot.addWidget(combo)
    combo.addItems(["mlp", LONG])
    combo.setToolTip("the model to compress")
    combo.setFixedWidth(140)
    combo.show()
    qtbot.waitExposed(combo)
    assert tooltip_at(combo, QPoint(20, 5)) == "the model to compress"  # "mlp" fits
    combo.setCurrentIndex(1)
    assert elided_combo_text(combo) == LONG
    assert tooltip_at(combo, QPoint(20, 5)) == f"{LONG}\n\nthe model to compress"
    combo.showPopup()
    view = combo.view()
    assert view.width() >= view.fontMetrics().horizontalAdvance(LONG)
    combo.hidePopup()


def test_timeline_range_table_names_show_whole_only_when_cut_off(qtbot, tmp_path):
    import orjson

    from app.widgets.timeline_view import TimelineView
    from engine.profiling.timeline import load_trace

    kernel = "void at::native::vectorized_elementwise_kernel<4, at::native::CUDAFunctor_add>"
    events = [{"ph": "X", "cat": "cpu_op", "name": "aten::relu", "pid": 1, "tid": 1,
               "ts": 0, "dur": 500},
              {"ph": "X", "cat": "kernel", "name": kernel, "pid": 0, "tid": 7,
               "ts": 100, "dur": 300}]
    path = tmp_path / "t.pt.trace.json"
    path.write_bytes(orjson.dumps({"traceEvents": events}))
    view = TimelineView()
    qtbot.addWidget(view)
    view.resize(1000, 500)
    view.show()
    qtbot.waitExposed(view)
    view.set_trace(load_trace(path))
    view.select_range(0, 500)
    names = [row[0] for row in view.range_rows()]
    table = view.range_table
    assert cell_tooltip(table, names.index(kernel), 0) == kernel
    assert cell_tooltip(table, names.index("aten::relu"), 0) == ""


def test_a_line_edits_cut_off_placeholder_or_text_shows_whole(qtbot):
    edit = QLineEdit()
    qtbot.addWidget(edit)
    hint = "e.g. 0.25, 0.5, 0.75 (replaces the ratio)"
    edit.setPlaceholderText(hint)
    edit.setToolTip("pruning ratios to sweep")
    edit.setFixedWidth(120)
    edit.show()
    qtbot.waitExposed(edit)
    assert tooltip_at(edit, QPoint(20, 5)) == f"{hint}\n\npruning ratios to sweep"
    edit.setText("0.5")
    assert tooltip_at(edit, QPoint(20, 5)) == "pruning ratios to sweep"
    edit.setFixedWidth(600)
    edit.clear()
    assert tooltip_at(edit, QPoint(20, 5)) == "pruning ratios to sweep"
