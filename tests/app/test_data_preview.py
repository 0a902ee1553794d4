"""The Data group's preview: a table's head, dtypes, missing counts and class balance;
choosing the target and dropping columns there; a grid per image class; errors inline."""

import sys
from pathlib import Path

import numpy as np
import pyqtgraph as pg
import pytest

from app.panels.config_panel import ConfigPanel
from app.widgets.config_form import ERROR_COLOR
from engine.config import RunConfig

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _panel(qtbot, dataset: str, target: str = "") -> ConfigPanel:
    cfg = RunConfig()
    cfg.set("data.dataset", dataset)
    cfg.set("data.target", target)
    panel = ConfigPanel(cfg)
    qtbot.addWidget(panel)
    panel.preview.toggle.setChecked(True)
    return panel


def _wait_shown(qtbot, preview) -> None:
    qtbot.waitUntil(lambda: not preview.status.text().startswith("Reading"), timeout=10000)


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "plants.csv"
    path.write_text("height,colour,kind\n1.5,red,a\n,blue,b\n2.5,,a\n3.0,red,a\n")
    return path


def test_table_preview_shows_rows_dtypes_missing_and_class_balance(qtbot, table):
    panel = _panel(qtbot, f"table:{table}", target="kind")
    preview = panel.preview
    _wait_shown(qtbot, preview)
    assert preview.rows.rowCount() == 4
    assert [preview.rows.horizontalHeaderItem(c).text() for c in range(3)] == \
        ["height", "colour", "kind"]
    assert preview.rows.item(0, 1).text() == "red"
    assert preview.rows.item(1, 0).text() == ""  # a missing value is an empty cell
    summary = [[preview.columns.item(r, c).text() for c in range(4)] for r in range(3)]
    assert summary[0] == ["height", "float64", "1", "3"]
    assert summary[1][2] == "1"  # colour: one missing
    assert summary[2][0] == "kind  (target)"
    bars = [i for i in preview.chart.getPlotItem().items if isinstance(i, pg.BarGraphItem)]
    assert len(bars) == 1
    assert sorted(bars[0].opts["height"].tolist()) == [1, 3]  # a: 3 rows, b: 1 row
    assert "class balance" in preview.chart.getPlotItem().titleLabel.text


def test_numeric_target_with_many_values_is_a_histogram(qtbot, tmp_path):
    path = tmp_path / "mass.csv"
    path.write_text("x,mass\n" + "".join(f"{i},{i * 1.5}\n" for i in range(100)))
    panel = _panel(qtbot, f"table:{path}", target="mass")
    _wait_shown(qtbot, panel.preview)
    assert "histogram" in panel.preview.chart.getPlotItem().titleLabel.text
    bars = [i for i in panel.preview.chart.getPlotItem().items
            if isinstance(i, pg.BarGraphItem)]
    assert bars[0].opts["height"].sum() == 100


def test_only_the_head_of_a_big_table_is_read(qtbot, tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("a,b\n" + "1,x\n" * 20000)
    panel = _panel(qtbot, f"table:{path}", target="b")
    _wait_shown(qtbot, panel.preview)
    from app.panels.data_preview import SHOWN_ROWS, STATS_ROWS
    assert panel.preview.rows.rowCount() == SHOWN_ROWS
    assert len(panel.preview._head.frame) == STATS_ROWS
    assert "the first 5000 rows" in panel.preview.status.text()


def test_use_as_target_and_drop_column_set_the_form(qtbot, table):
    panel = _panel(qtbot, f"table:{table}", target="kind")
    preview = panel.preview
    _wait_shown(qtbot, preview)
    with qtbot.waitSignal(panel.configChanged):
        preview.select_column("colour")
        preview.drop_button.click()
    assert panel.config().preprocess.drop_columns == ["colour"]
    assert panel.is_modified()
    assert preview.drop_button.text() == "Keep column"
    assert "(dropped)" in preview.columns.item(1, 0).text()
    preview.drop_button.click()  # keep it again
    assert panel.config().preprocess.drop_columns == []
    preview.select_column("colour")
    preview.target_button.click()
    assert panel.config().data.target == "colour"
    assert preview.columns.item(1, 0).text() == "colour  (target)"
    title = preview.chart.getPlotItem().titleLabel.text
    assert title.startswith("colour: class balance")


def test_the_column_menu_chooses_the_target(qtbot, table):
    panel = _panel(qtbot, f"table:{table}", target="kind")
    _wait_shown(qtbot, panel.preview)
    menu = panel.preview.column_menu("height")
    use, drop = menu.actions()
    use.trigger()
    assert panel.config().data.target == "height"
    menu = panel.preview.column_menu("kind")
    menu.actions()[1].trigger()
    assert panel.config().preprocess.drop_columns == ["kind"]


def test_read_only_form_changes_nothing_from_the_preview(qtbot, table):
    panel = _panel(qtbot, f"table:{table}", target="kind")
    _wait_shown(qtbot, panel.preview)
    panel.set_read_only(True)
    panel.preview.select_column("colour")
    assert not panel.preview.target_button.isEnabled()
    panel.preview.use_as_target("colour")
    assert panel.config().data.target == "kind"


def test_missing_table_shows_one_line_naming_the_file(qtbot, tmp_path):
    missing = tmp_path / "nothere.csv"
    panel = _panel(qtbot, f"table:{missing}", target="kind")
    _wait_shown(qtbot, panel.preview)
    text = panel.preview.status.text()
    assert str(missing) in text and "not found" in text and "\n" not in text
    assert ERROR_COLOR in panel.preview.status.styleSheet()
    assert panel.preview.table_page.isHidden()


def test_ragged_table_names_the_line(qtbot, tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("a,b\n1,2\n3,4,5\n")
    panel = _panel(qtbot, f"table:{path}", target="b")
    _wait_shown(qtbot, panel.preview)
    assert "line 3" in panel.preview.status.text()


def test_image_preview_shows_one_row_per_class(qtbot, tmp_path):
    sys.path.insert(0, str(EXAMPLES))
    try:
        from make_image_folder import make_image_folder
    finally:
        sys.path.remove(str(EXAMPLES))
    folder = make_image_folder(tmp_path / "digits", count=60)
    panel = _panel(qtbot, f"images:{folder}")
    preview = panel.preview
    _wait_shown(qtbot, preview)
    rows = preview.class_rows()
    assert len(rows) == 10
    counts = {int(d): int(np.sum([p.parent.name == d for p in folder.rglob("*.*")]))
              for d in "0123456789"}
    assert rows[0] == f"<b>0</b><br>{counts[0]} images"
    assert preview.grid.itemAtPosition(0, 1).widget().pixmap().width() > 0
    assert not preview.images_page.isHidden() and preview.table_page.isHidden()


def test_preview_is_offered_for_files_only_and_follows_the_dataset(qtbot, table, tmp_path):
    panel = _panel(qtbot, "digits")
    assert panel.preview.isHidden()
    other = tmp_path / "other.csv"
    other.write_text("p,q\n1,2\n")
    panel.set_value("data.dataset", f"table:{other}")
    assert not panel.preview.isHidden()
    qtbot.waitUntil(lambda: panel.preview.rows.columnCount() == 2, timeout=10000)
