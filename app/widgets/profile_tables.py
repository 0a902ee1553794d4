"""Sortable, filterable tables of a profile report: operators (by name or input shape), kernels.

Rows are the adapter's frozen dataclasses; a table model shows them and a
QSortFilterProxyModel sorts on the raw numbers (``SORT_ROLE``) and filters on
the name, so sorting 10,000 operators never parses display strings.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from engine.profiling.report import KernelRow, OperatorRow

SORT_ROLE = Qt.UserRole + 1


@dataclass(frozen=True)
class Column:
    title: str
    attr: str
    time: bool = False  # microseconds shown as milliseconds
    tip: str = ""


OPERATOR_COLUMNS = (
    Column("Operator", "name"),
    Column("Input shapes", "input_shape", tip="Shapes of the inputs, when recorded"),
    Column("Calls", "calls"),
    Column("Host self (ms)", "host_self_us", True, "CPU time in the operator itself"),
    Column("Host total (ms)", "host_total_us", True, "CPU time including operators it called"),
    Column("Device self (ms)", "device_self_us", True, "GPU time of kernels it launched itself"),
    Column("Device total (ms)", "device_total_us", True, "GPU time including its children"),
)
KERNEL_COLUMNS = (
    Column("Kernel", "name"),
    Column("Calls", "calls"),
    Column("Total (ms)", "total_us", True),
    Column("Mean (µs)", "mean_us"),
    Column("Max (µs)", "max_us"),
    Column("Min (µs)", "min_us"),
    Column("Tensor Cores", "tensor_cores"),
)


class RowsModel(QAbstractTableModel):
    """A read-only table of dataclass rows, one column per attribute."""

    def __init__(self, columns: tuple[Column, ...], parent=None):
        super().__init__(parent)
        self.columns = columns
        self.rows: tuple = ()

    def set_rows(self, rows: tuple) -> None:
        self.beginResetModel()
        self.rows = tuple(rows)
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802 (Qt's name)
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.columns)

    def data(self, index: QModelIndex, role=Qt.DisplayRole):
        if not index.isValid():
            return None
        col = self.columns[index.column()]
        value = getattr(self.rows[index.row()], col.attr)
        if role == SORT_ROLE:
            return value
        if role == Qt.DisplayRole:
            if isinstance(value, bool):
                return "yes" if value else "no"
            if col.time:
                return f"{value / 1000:.3f}"
            if isinstance(value, float):
                return f"{value:.1f}"
            return str(value)
        if role == Qt.TextAlignmentRole and isinstance(value, (int, float)) \
                and not isinstance(value, bool):
            return int(Qt.AlignRight | Qt.AlignVCenter)
        return None

    def headerData(self, section: int, orientation, role=Qt.DisplayRole):  # noqa: N802
        if orientation != Qt.Horizontal:
            return None
        if role == Qt.DisplayRole:
            return self.columns[section].title
        if role == Qt.ToolTipRole:
            return self.columns[section].tip or None
        return None


class ProfileTable(QWidget):
    """A filter box over a sortable table; filtering matches the name, case-insensitively."""

    def __init__(self, columns: tuple[Column, ...], placeholder: str, parent=None):
        super().__init__(parent)
        self.model = RowsModel(columns, self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.proxy.setFilterKeyColumn(0)
        self.proxy.setFilterCaseSensitivity(Qt.CaseInsensitive)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText(placeholder)
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.count = QLabel()
        self.view = QTableView()
        self.view.setModel(self.proxy)
        self.view.setSortingEnabled(True)
        self.view.setAlternatingRowColors(True)
        self.view.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.view.setWordWrap(False)
        self.view.verticalHeader().hide()
        self.view.verticalHeader().setDefaultSectionSize(22)
        header = self.view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.Interactive)
        header.setSectionResizeMode(0, QHeaderView.Stretch)
        self.top = QHBoxLayout()
        self.top.setContentsMargins(0, 0, 0, 0)
        self.top.addWidget(self.filter, 1)
        self.top.addWidget(self.count)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.addLayout(self.top)
        layout.addWidget(self.view, 1)
        self.proxy.rowsInserted.connect(self._count)
        self.proxy.rowsRemoved.connect(self._count)
        self.proxy.modelReset.connect(self._count)
        self.proxy.layoutChanged.connect(self._count)

    def set_rows(self, rows: tuple, sort_column: int, order=Qt.DescendingOrder) -> None:
        self.model.set_rows(rows)
        self.view.sortByColumn(sort_column, order)
        for column in range(1, self.model.columnCount()):
            self.view.resizeColumnToContents(column)
        self._count()

    def visible_names(self) -> list[str]:
        """Names in the order shown (what a person sees after sorting and filtering)."""
        return [self.proxy.index(r, 0).data(SORT_ROLE) for r in range(self.proxy.rowCount())]

    def _count(self, *_args) -> None:
        shown, total = self.proxy.rowCount(), self.model.rowCount()
        self.count.setText(f"{shown} of {total}" if shown != total else f"{total} rows")


class OperatorTable(ProfileTable):
    """Operators by name, or by name and input shapes when the capture recorded shapes."""

    def __init__(self, parent=None):
        super().__init__(OPERATOR_COLUMNS, "Filter operators by name…", parent)
        self.by_shape = QCheckBox("Group by input shape")
        self.by_shape.toggled.connect(self._regroup)
        self.top.insertWidget(1, self.by_shape)
        self._rows: tuple[tuple[OperatorRow, ...], tuple[OperatorRow, ...]] = ((), ())
        self._sort = (3, Qt.DescendingOrder)  # host self time until a person sorts
        self.view.horizontalHeader().sortIndicatorChanged.connect(self._sorted)

    def set_operators(self, by_name: tuple[OperatorRow, ...],
                      by_shape: tuple[OperatorRow, ...]) -> None:
        self._rows = (by_name, by_shape)
        on_gpu = any(op.device_self_us > 0 for op in by_name)
        self._sort = (5 if on_gpu else 3, Qt.DescendingOrder)  # self time where it is spent
        shapes = any(op.input_shape not in ("", "[]") for op in by_shape)
        self.by_shape.setEnabled(shapes)
        self.by_shape.setToolTip("" if shapes else "This capture recorded no input shapes: "
                                 "capture with record_shapes")
        if not shapes:
            self.by_shape.setChecked(False)
        self._regroup()

    def _sorted(self, column: int, order) -> None:
        self._sort = (column, order)

    def _regroup(self, *_args) -> None:
        grouped = self.by_shape.isChecked()
        self.set_rows(self._rows[1] if grouped else self._rows[0], *self._sort)
        self.view.setColumnHidden(1, not grouped)
        on_gpu = any(op.device_total_us > 0 for op in self._rows[0])
        for column in (5, 6):  # device times: all zero in a CPU-only trace
            self.view.setColumnHidden(column, not on_gpu)


class KernelTable(ProfileTable):
    def __init__(self, parent=None):
        super().__init__(KERNEL_COLUMNS, "Filter kernels by name…", parent)

    def set_kernels(self, kernels: tuple[KernelRow, ...]) -> None:
        self.set_rows(kernels, 2)
