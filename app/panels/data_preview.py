"""The Data group's preview: the first rows of a table, or a few images of each class.

Shown (collapsed at first) under the Data group of the configuration panel for
``table:`` and ``images:`` datasets. A table shows its first rows, per column its
dtype, missing count and distinct values, and the target's class balance (a bar
chart) or, for a numeric target with many values, its histogram. A column's
context menu (or the buttons above the tables) makes it the target or drops it:
the choice is sent as ``valueChosen(key, value)`` and the panel sets it in the form.

Reading happens on a worker thread and only the head of a file is read
(``read_head``), and a few thumbnails per class are decoded, so a big file never
blocks the window. A file that cannot be read is one line in the preview.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyqtgraph as pg
from PySide6.QtCore import QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QFont, QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.widgets.config_form import ERROR_COLOR
from app.widgets.live_plot import DARK, LIGHT
from engine.config import ConfigError, RunConfig

SHOWN_ROWS = 50  # rows in the table view
STATS_ROWS = 5000  # rows read for dtypes, missing counts and the class balance
THUMBS = 6  # thumbnails per class
THUMB = 40  # their side, pixels
MAX_CLASSES = 30  # classes shown in the image grid
MAX_BARS = 30  # classes in the bar chart (the most frequent)
HIST_BINS = 20
AUTO_CLASSES = 20  # a numeric target with more distinct values is shown as a histogram
DEBOUNCE_MS = 300  # typing a path reads the file once the typing pauses


@dataclass
class TableHead:
    path: str
    frame: pd.DataFrame  # at most STATS_ROWS rows
    more: bool  # the file has rows beyond the frame


@dataclass
class ImageClasses:
    source: str
    classes: list[tuple[str, int, list[np.ndarray]]]  # name, count, (S, S, 3) uint8 thumbnails
    total: int  # images
    class_count: int  # classes (only the first MAX_CLASSES are in ``classes``)


def load_preview(dataset: str) -> TableHead | ImageClasses:
    """What the preview of ``dataset`` shows; raises ConfigError with the problem's line."""
    if dataset.startswith("table:"):
        from engine.data.tables import read_head, table_path

        path = table_path(dataset)
        frame, more = read_head(path, STATS_ROWS)
        frame.columns = [str(c) for c in frame.columns]
        return TableHead(str(path), frame, more)
    from engine.data.images import decode_image, list_images

    listing = list_images(dataset)
    counts = Counter(listing.labels.tolist())
    classes = []
    for index, name in enumerate(listing.class_names[:MAX_CLASSES]):
        rows = np.flatnonzero(listing.labels == index)[:THUMBS]
        thumbs = []
        for row in rows:
            try:
                thumbs.append(decode_image(listing.paths[row], THUMB, 3).transpose(1, 2, 0))
            except Exception:  # an undecodable file: shown as missing, the run reports it
                continue
        classes.append((name, counts[index], thumbs))
    return ImageClasses(str(listing.source), classes, len(listing.paths),
                         len(listing.class_names))


def column_summary(frame: pd.DataFrame) -> list[tuple[str, str, int, int]]:
    """Per column: name, dtype, missing values, distinct values."""
    return [(str(name), str(frame[name].dtype), int(frame[name].isna().sum()),
             int(frame[name].nunique())) for name in frame.columns]


class DataPreview(QWidget):
    """A collapsible preview of the configured dataset (``show_for`` follows the form)."""

    valueChosen = Signal(str, object)  # a dotted key and its new value, set by the user here
    _loaded = Signal(int, object)
    _failed = Signal(int, str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._dataset = ""
        self._target = ""
        self._dropped: list[str] = []
        self._shown_dataset: str | None = None  # what the body shows (or is loading)
        self._head: TableHead | None = None
        self._generation = 0
        self._dark = False
        self._read_only = False

        self.toggle = QToolButton()
        self.toggle.setText("Preview data")
        self.toggle.setCheckable(True)
        self.toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.toggle.setAutoRaise(True)
        self.toggle.setToolTip("The first rows of the table (dtypes, missing values, the "
                               "target's balance) or a few images of each class")
        self.toggle.toggled.connect(self._toggled)

        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.target_button = QPushButton("Use as target")
        self.target_button.setToolTip("Make the selected column data.target")
        self.target_button.clicked.connect(self._use_selected_as_target)
        self.drop_button = QPushButton("Drop column")
        self.drop_button.setToolTip("Add the selected column to preprocess.drop_columns "
                                    "(or take it out again)")
        self.drop_button.clicked.connect(self._toggle_selected_drop)
        buttons = QHBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        buttons.addWidget(self.target_button)
        buttons.addWidget(self.drop_button)
        buttons.addStretch(1)

        self.columns = self._table(["column", "dtype", "missing", "distinct"])
        self.columns.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.columns.verticalHeader().hide()
        self.columns.horizontalHeader().setStretchLastSection(True)
        self.columns.itemSelectionChanged.connect(self._update_buttons)
        self.columns.customContextMenuRequested.connect(self._columns_menu)
        self.rows = self._table([])
        self.rows.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectColumns)
        self.rows.itemSelectionChanged.connect(self._rows_selected)
        self.rows.horizontalHeader().setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.rows.horizontalHeader().customContextMenuRequested.connect(self._header_menu)
        self.rows.customContextMenuRequested.connect(self._rows_menu)
        self.rows.setMinimumHeight(160)

        self.chart = pg.PlotWidget()
        self.chart.setFixedHeight(190)
        plot = self.chart.getPlotItem()
        plot.setMenuEnabled(False)
        plot.hideButtons()
        plot.setMouseEnabled(x=False, y=False)
        plot.showGrid(y=True, alpha=0.2)

        self.table_page = QWidget()
        page = QVBoxLayout(self.table_page)
        page.setContentsMargins(0, 0, 0, 0)
        page.addLayout(buttons)
        page.addWidget(self.columns)
        page.addWidget(self.rows)
        page.addWidget(self.chart)

        self.images_page = QWidget()
        self.grid = QGridLayout(self.images_page)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setHorizontalSpacing(4)
        self.grid.setVerticalSpacing(4)

        self.body = QWidget()
        body = QVBoxLayout(self.body)
        body.setContentsMargins(0, 0, 0, 0)
        body.addWidget(self.status)
        body.addWidget(self.table_page)
        body.addWidget(self.images_page)
        self.body.hide()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.toggle, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(self.body)

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self.reload)
        self._loaded.connect(self._show_loaded)
        self._failed.connect(self._show_failed)
        self.apply_theme(False)
        self._clear_pages()

    @staticmethod
    def _table(headers: list[str]) -> QTableWidget:
        table = QTableWidget(0, len(headers))
        table.setHorizontalHeaderLabels(headers)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        table.verticalHeader().setDefaultSectionSize(table.fontMetrics().height() + 6)
        table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        return table

    # --- following the form ------------------------------------------------------
    @staticmethod
    def applies(dataset: str) -> bool:
        return dataset.startswith(("table:", "images:"))

    def show_for(self, cfg: RunConfig) -> None:
        """Follow the form: its dataset (read again once typing pauses), target and drops."""
        self._dataset = cfg.data.dataset
        self._target = cfg.data.target
        self._dropped = list(cfg.preprocess.drop_columns)
        self.setVisible(self.applies(self._dataset))
        if not self.toggle.isChecked():
            return
        if self._dataset != self._shown_dataset:
            self._debounce.start()
        elif self._head is not None:
            self._show_table(self._head)

    def _toggled(self, on: bool) -> None:
        self.toggle.setArrowType(Qt.ArrowType.DownArrow if on else Qt.ArrowType.RightArrow)
        self.body.setVisible(on)
        if on and self._dataset != self._shown_dataset:
            self.reload()

    def reload(self) -> None:
        """Read the dataset again, on a worker thread; an older read's result is ignored."""
        self._debounce.stop()
        self._generation += 1
        self._shown_dataset = self._dataset
        self._head = None
        self._clear_pages()
        if not self.applies(self._dataset):
            return
        self._set_status(f"Reading {self._dataset}…")
        threading.Thread(target=self._work, args=(self._dataset, self._generation),
                         daemon=True, name="data-preview").start()

    def _work(self, dataset: str, generation: int) -> None:
        try:
            result = load_preview(dataset)
        except ConfigError as exc:
            self._failed.emit(generation, str(exc))
            return
        except Exception as exc:  # shown in the preview, never a crash of the window
            self._failed.emit(generation, f"cannot preview {dataset}: "
                                          f"{type(exc).__name__}: {exc}")
            return
        self._loaded.emit(generation, result)

    def _show_failed(self, generation: int, text: str) -> None:
        if generation == self._generation:
            self._set_status(text, error=True)

    def _show_loaded(self, generation: int, result) -> None:
        if generation != self._generation:
            return
        if isinstance(result, TableHead):
            self._head = result
            self._show_table(result)
        else:
            self._show_images(result)

    def _set_status(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet(f"color: {ERROR_COLOR};" if error else "")

    def _clear_pages(self) -> None:
        self.table_page.hide()
        self.images_page.hide()

    # --- tables ------------------------------------------------------------------
    def _show_table(self, head: TableHead) -> None:
        frame = head.frame
        rows = min(SHOWN_ROWS, len(frame))
        name = Path(head.path).name
        count = (f"the first {len(frame)} rows read (counts from those)" if head.more
                 else f"{len(frame)} rows")
        self._set_status(f"{name}: {count}, {len(frame.columns)} columns. Right-click a "
                         f"column to use it as the target or to drop it.")
        self.status.setToolTip(head.path)
        selected = self.selected_column()
        self._fill_columns(frame, selected)
        self._fill_rows(frame.head(rows))
        self._draw_target(frame)
        self._update_buttons()
        self.table_page.show()

    def _fill_columns(self, frame: pd.DataFrame, selected: str | None) -> None:
        summary = column_summary(frame)
        self.columns.setRowCount(len(summary))
        for row, (name, dtype, missing, distinct) in enumerate(summary):
            role = self._role(name)
            label = name + (f"  ({role})" if role else "")
            cells = [label, dtype, str(missing), str(distinct)]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, name)
                if col:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight
                                          | Qt.AlignmentFlag.AlignVCenter)
                self._style(item, name)
                self.columns.setItem(row, col, item)
        visible = min(len(summary), 8)
        self.columns.setFixedHeight(self.columns.horizontalHeader().sizeHint().height()
                                    + visible * self.columns.verticalHeader().defaultSectionSize()
                                    + 2 * self.columns.frameWidth() + 2)
        if selected in frame.columns:
            self.columns.selectRow(list(frame.columns).index(selected))

    def _fill_rows(self, frame: pd.DataFrame) -> None:
        names = [str(c) for c in frame.columns]
        self.rows.clear()
        self.rows.setColumnCount(len(names))
        self.rows.setRowCount(len(frame))
        for col, name in enumerate(names):
            header = QTableWidgetItem(name)
            head = self._head.frame[name] if self._head is not None else frame[name]
            header.setToolTip(f"{name}: {head.dtype}, {int(head.isna().sum())} missing")
            self._style(header, name)
            self.rows.setHorizontalHeaderItem(col, header)
            for row, value in enumerate(frame[name].tolist()):
                text = "" if pd.isna(value) else str(value)
                item = QTableWidgetItem(text)
                self._style(item, name)
                self.rows.setItem(row, col, item)

    def _role(self, name: str) -> str:
        if name == self._target:
            return "target"
        return "dropped" if name in self._dropped else ""

    def _style(self, item: QTableWidgetItem, name: str) -> None:
        role = self._role(name)
        if role == "target":
            font = QFont()
            font.setBold(True)
            item.setFont(font)
        elif role == "dropped":
            font = QFont()
            font.setStrikeOut(True)
            item.setFont(font)
            item.setForeground(self.palette().placeholderText())

    def _draw_target(self, frame: pd.DataFrame) -> None:
        plot = self.chart.getPlotItem()
        plot.clear()
        axis = plot.getAxis("bottom")
        if self._target not in frame.columns:
            plot.setTitle(f"no column {self._target!r}: choose the target "
                          f"(right-click a column)" if self._target else
                          "choose the target (right-click a column)", **self._title_style())
            axis.setTicks(None)
            return
        values = frame[self._target].dropna()
        brush = pg.mkBrush("#4c8dd6")
        numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        if numeric and values.nunique() > AUTO_CLASSES:
            counts, edges = np.histogram(values.to_numpy(dtype=float), bins=HIST_BINS)
            plot.addItem(pg.BarGraphItem(x0=edges[:-1], x1=edges[1:], height=counts,
                                         brush=brush, pen=None))
            top = counts.max()
            axis.setTicks(None)
            plot.setTitle(f"{self._target}: histogram ({len(values)} values)",
                          **self._title_style())
        else:
            balance = values.astype(str).value_counts().head(MAX_BARS)
            if numeric:
                balance = balance.sort_index(key=lambda s: pd.to_numeric(s))
            x = np.arange(len(balance))
            plot.addItem(pg.BarGraphItem(x=x, height=balance.to_numpy(), width=0.7,
                                         brush=brush, pen=None))
            top = balance.max()
            axis.setTicks([[(i, str(name)) for i, name in zip(x, balance.index)]])
            plot.setTitle(f"{self._target}: class balance ({len(values)} labelled rows)",
                          **self._title_style())
        plot.enableAutoRange(axis="x")
        plot.setYRange(0, max(1, top) * 1.08, padding=0)  # bars start at zero

    def _title_style(self) -> dict:
        return {"color": (DARK if self._dark else LIGHT)["foreground"], "size": "9pt"}

    # --- choosing the target, dropping columns ------------------------------------
    def selected_column(self) -> str | None:
        rows = self.columns.selectionModel().selectedRows()
        if not rows:
            return None
        item = self.columns.item(rows[0].row(), 0)
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else None

    def select_column(self, name: str) -> None:
        for row in range(self.columns.rowCount()):
            if self.columns.item(row, 0).data(Qt.ItemDataRole.UserRole) == name:
                self.columns.selectRow(row)
                return

    def _rows_selected(self) -> None:
        columns = self.rows.selectionModel().selectedColumns()
        if columns:
            header = self.rows.horizontalHeaderItem(columns[0].column())
            if header is not None:
                self.select_column(header.text())

    def set_read_only(self, read_only: bool) -> None:
        """While a run is going the preview still shows, but changes nothing."""
        self._read_only = read_only
        self._update_buttons()

    def _update_buttons(self) -> None:
        name = self.selected_column()
        can = name is not None and name != self._target and not self._read_only
        self.target_button.setEnabled(can)
        self.drop_button.setEnabled(can)
        self.drop_button.setText("Keep column" if name in self._dropped else "Drop column")

    def use_as_target(self, name: str) -> None:
        """data.target = name (taken out of the dropped columns, if it was there)."""
        if name in self._dropped:
            self.valueChosen.emit("preprocess.drop_columns",
                                  [c for c in self._dropped if c != name])
        self.valueChosen.emit("data.target", name)

    def toggle_drop(self, name: str) -> None:
        """Add ``name`` to preprocess.drop_columns, or take it out if it is there."""
        dropped = ([c for c in self._dropped if c != name] if name in self._dropped
                   else [*self._dropped, name])
        self.valueChosen.emit("preprocess.drop_columns", dropped)

    def _use_selected_as_target(self) -> None:
        if (name := self.selected_column()) is not None:
            self.use_as_target(name)

    def _toggle_selected_drop(self) -> None:
        if (name := self.selected_column()) is not None:
            self.toggle_drop(name)

    def column_menu(self, name: str) -> QMenu:
        menu = QMenu(self)
        target = menu.addAction(f"Use {name!r} as target")
        target.setData(("target", name))
        target.setEnabled(name != self._target and not self._read_only)
        drop = menu.addAction(f"Keep {name!r}" if name in self._dropped else f"Drop {name!r}")
        drop.setData(("drop", name))
        drop.setEnabled(name != self._target and not self._read_only)
        menu.triggered.connect(self._menu_chosen)
        return menu

    def _menu_chosen(self, action) -> None:
        what, name = action.data()
        if what == "target":
            self.use_as_target(name)
        else:
            self.toggle_drop(name)

    def _columns_menu(self, pos: QPoint) -> None:
        item = self.columns.itemAt(pos)
        if item is not None:
            self.column_menu(item.data(Qt.ItemDataRole.UserRole)).exec(
                self.columns.viewport().mapToGlobal(pos))

    def _header_menu(self, pos: QPoint) -> None:
        header = self.rows.horizontalHeader()
        self._column_at(header.logicalIndexAt(pos), header.mapToGlobal(pos))

    def _rows_menu(self, pos: QPoint) -> None:
        self._column_at(self.rows.columnAt(pos.x()), self.rows.viewport().mapToGlobal(pos))

    def _column_at(self, column: int, where: QPoint) -> None:
        item = self.rows.horizontalHeaderItem(column) if column >= 0 else None
        if item is not None:
            self.column_menu(item.text()).exec(where)

    # --- images ------------------------------------------------------------------
    def _show_images(self, images: ImageClasses) -> None:
        while self.grid.count():
            widget = self.grid.takeAt(0).widget()
            if widget is not None:
                widget.deleteLater()
        self.thumbnails: list[QPixmap] = []
        shown = len(images.classes)
        more = f" (the first {shown} shown)" if shown < images.class_count else ""
        self.status.setToolTip(images.source)
        self._set_status(f"{Path(images.source).name}: {images.total} images in "
                         f"{images.class_count} classes{more}; up to {THUMBS} of each class.")
        for row, (name, count, thumbs) in enumerate(images.classes):
            label = QLabel(f"<b>{name}</b><br>{count} image{'s' if count != 1 else ''}")
            label.setTextFormat(Qt.TextFormat.RichText)
            self.grid.addWidget(label, row, 0)
            for col, pixels in enumerate(thumbs, start=1):
                pixels = np.ascontiguousarray(pixels)
                h, w, _ = pixels.shape
                pixmap = QPixmap.fromImage(
                    QImage(pixels.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy())
                self.thumbnails.append(pixmap)
                thumb = QLabel()
                thumb.setPixmap(pixmap)
                thumb.setFixedSize(THUMB, THUMB)
                self.grid.addWidget(thumb, row, col)
        self.grid.setColumnStretch(THUMBS + 1, 1)
        self.images_page.show()

    def class_rows(self) -> list[str]:
        """The text of each class row of the image grid (its name and count)."""
        rows = []
        for row in range(self.grid.rowCount()):
            item = self.grid.itemAtPosition(row, 0)
            if item is not None and isinstance(item.widget(), QLabel):
                rows.append(item.widget().text())
        return rows

    # --- theme -------------------------------------------------------------------
    def apply_theme(self, dark: bool) -> None:
        self._dark = dark
        colours = DARK if dark else LIGHT
        self.chart.setBackground(colours["background"])
        plot = self.chart.getPlotItem()
        for axis in ("left", "bottom"):
            plot.getAxis(axis).setPen(colours["foreground"])
            plot.getAxis(axis).setTextPen(colours["foreground"])
        if self._head is not None:
            self._draw_target(self._head.frame)
