"""The read-only report table the docks share (findings, per-class metrics, messages...)."""

from __future__ import annotations

from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget


def report_table(headers: list[str], modes: dict[int, QHeaderView.ResizeMode] | None = None,
                 *, default: QHeaderView.ResizeMode | None = None,
                 stretch_last: bool = False) -> QTableWidget:
    """A table of ``headers`` that the user reads and selects by whole rows but never edits,
    with no row numbers. ``default`` is every column's resize mode and ``modes`` the
    exceptions by column; ``stretch_last`` lets the last column take the spare width."""
    table = QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(headers)
    table.setEditTriggers(QAbstractItemView.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectRows)
    table.verticalHeader().hide()
    header = table.horizontalHeader()
    if default is not None:
        header.setSectionResizeMode(default)
    for col, mode in (modes or {}).items():
        header.setSectionResizeMode(col, mode)
    header.setStretchLastSection(stretch_last)
    return table
