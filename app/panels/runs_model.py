"""The Runs dock's table model, its filter, and the thread that reads the workspace.

Sorting is done here, in the source model, on keys computed once per
snapshot (numbers as numbers, missing values last): a QSortFilterProxyModel
sort would call back into Python for each of the ~130,000 comparisons of
10,000 rows. The proxy only filters, on plain attributes of each row.
"""

from __future__ import annotations

import math

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QSortFilterProxyModel,
    Qt,
    QThread,
    Signal,
)
from PySide6.QtGui import QColor

from engine.monitor.energy import SOURCE_TEXT
from engine.workspace.config_columns import MISSING, show_value

from .runs_data import RunRow, RunsReader, Snapshot

ID_ROLE = int(Qt.UserRole) + 1
# Roles as plain ints: data() is called for every role of every painted cell, and comparing
# PySide6's enum members costs microseconds each.
_DISPLAY, _TOOLTIP, _ALIGN, _FOREGROUND = (int(r) for r in (
    Qt.DisplayRole, Qt.ToolTipRole, Qt.TextAlignmentRole, Qt.ForegroundRole))
_RIGHT = int(Qt.AlignRight | Qt.AlignVCenter)
_NUMERIC = frozenset(("id", "best", "duration", "steps_per_s", "energy_j"))
# (key, header): the fixed columns; the hyperparameter columns go after "model".
BEFORE_HP = (("id", "ID"), ("name", "Name"), ("status", "Status"), ("dataset", "Dataset"),
             ("model", "Model"))
AFTER_HP = (("best", "Best metric"), ("duration", "Duration"), ("steps_per_s", "Steps/s"),
            ("energy_j", "Energy (J)"), ("created", "Created"), ("tags", "Tags"),
            ("notes", "Notes"))
STATUS_COLOURS = {"running": "#2e86de", "failed": "#d64545", "interrupted": "#d68a00",
                  "pruned": "#8e8e8e", "stopped": "#b07d00"}


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def energy_tooltip(row: RunRow) -> str | None:
    """What the Energy cell stands for: its rates and source, or why it is not available."""
    if row.energy_j is None:
        return row.energy_note
    lines = [f"{row.energy_j:.4g} J in all"]
    if row.energy_per_epoch_j is not None:
        lines.append(f"{row.energy_per_epoch_j:.4g} J per epoch")
    if row.energy_per_1k_samples_j is not None:
        lines.append(f"{row.energy_per_1k_samples_j:.4g} J per 1,000 samples")
    lines.append(f"measured by {SOURCE_TEXT.get(row.energy_source, row.energy_source)}")
    return "\n".join(lines)


class RunsModel(QAbstractTableModel):
    """Rows of a workspace snapshot; a new snapshot updates the rows that changed."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.rows: list[RunRow] = []
        self.hp_keys: list[str] = []
        self.complete = False
        self.keys: list[str] = [k for k, _ in BEFORE_HP + AFTER_HP]
        self.headers: list[str] = [h for _, h in BEFORE_HP + AFTER_HP]
        self._sort: tuple[int, bool] | None = None

    # --- Qt's model interface ------------------------------------------------
    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.keys)

    def headerData(self, section, orientation, role=Qt.DisplayRole):
        if orientation == Qt.Horizontal and 0 <= section < len(self.keys):
            if role == Qt.DisplayRole:
                return self.headers[section]
            if role == Qt.ToolTipRole and self.keys[section].startswith("hp:"):
                return f"{self.keys[section][3:]}: a config key that differs between the runs"
        return None

    def data(self, index, role=_DISPLAY):
        role = int(role)
        if role == _DISPLAY:
            return self.text(self.rows[index.row()], self.keys[index.column()])
        if role == _ALIGN:
            return _RIGHT if self.keys[index.column()] in _NUMERIC else None
        if role == _FOREGROUND:
            row = self.rows[index.row()]
            colour = STATUS_COLOURS.get(row.status)
            return QColor(colour) if colour and self.keys[index.column()] == "status" else None
        if role == _TOOLTIP:
            return self.tooltip(self.rows[index.row()], self.keys[index.column()])
        if role == ID_ROLE:
            return self.rows[index.row()].id
        return None

    def sort(self, column: int, order=Qt.AscendingOrder) -> None:
        """Order the rows by a column's values: numbers numerically, missing ones last."""
        if not 0 <= column < len(self.keys):
            return
        self._sort = (column, order == Qt.DescendingOrder)
        self.layoutAboutToBeChanged.emit()
        before = self.persistentIndexList()
        ids = [self.rows[i.row()].id for i in before]
        self._apply_sort()
        where = {r.id: n for n, r in enumerate(self.rows)}
        self.changePersistentIndexList(
            before, [self.index(where[i], p.column()) for i, p in zip(ids, before)])
        self.layoutChanged.emit()

    # --- values ------------------------------------------------------------------
    def value(self, row: RunRow, key: str):
        if key.startswith("hp:"):
            return row.hp[self.hp_keys.index(key[3:])] if row.hp else None
        if key == "best":
            return row.best_val
        if key == "tags":
            return ", ".join(row.tags)
        return getattr(row, key)

    def text(self, row: RunRow, key: str) -> str:
        value = self.value(row, key)
        if key == "best":
            return "" if value is None else f"{value:.4g}"
        if key == "duration":
            return duration_text(value)
        if key == "steps_per_s":
            return "" if value is None else f"{value:.3g}"
        if key == "energy_j":
            return "n/a" if value is None and row.energy_note else (
                "" if value is None else f"{value:.4g}")
        if key == "status" and row.trashed:
            return f"{value} (trash)"
        if key.startswith("hp:"):
            return "" if not self.complete else show_value(value)
        if key == "notes":
            return value.splitlines()[0] if value else ""
        return "" if value is None else str(value)

    def tooltip(self, row: RunRow, key: str) -> str | None:
        if key == "best" and row.best_metric:
            return f"best {row.best_metric}: {row.best_val}"
        if key == "notes" and row.notes:
            return row.notes
        if key == "energy_j":
            return energy_tooltip(row)
        if key == "name":
            extra = [f"study {row.study}, trial {row.trial}" if row.study else "",
                     f"group {row.group}" if row.group else "", row.dir]
            return "\n".join(x for x in extra if x)
        return None

    def column_of(self, key: str) -> int:
        return self.keys.index(key)

    def row_of(self, run_id: int) -> int | None:
        return next((n for n, r in enumerate(self.rows) if r.id == run_id), None)

    def run(self, row: int) -> RunRow:
        return self.rows[row]

    # --- snapshots -------------------------------------------------------------
    def set_snapshot(self, snap: Snapshot) -> None:
        """Show a new read: rows changed in place, new ones inserted, gone ones removed;
        the whole table is reset only when the hyperparameter columns change."""
        if snap.hp_keys != self.hp_keys or snap.complete != self.complete or not self.rows:
            self.beginResetModel()
            self.hp_keys, self.complete = list(snap.hp_keys), snap.complete
            hp = [(f"hp:{k}", k) for k in self.hp_keys]
            self.keys = [k for k, _ in BEFORE_HP] + [k for k, _ in hp] + [k for k, _ in AFTER_HP]
            self.headers = ([h for _, h in BEFORE_HP] + [h for _, h in hp]
                            + [h for _, h in AFTER_HP])
            self.rows = list(snap.rows)
            self._apply_sort()
            self.endResetModel()
            return
        fresh = {r.id: r for r in snap.rows}
        for n in range(len(self.rows) - 1, -1, -1):  # gone (emptied from the trash)
            if self.rows[n].id not in fresh:
                self.beginRemoveRows(QModelIndex(), n, n)
                del self.rows[n]
                self.endRemoveRows()
        last = self.columnCount() - 1
        changed = False
        for n, old in enumerate(self.rows):
            new = fresh.pop(old.id)
            if new is not old:
                changed = True
                self.rows[n] = new
                self.dataChanged.emit(self.index(n, 0), self.index(n, last))
        if fresh:  # new runs: on top (newest first) until sorted in below
            added = sorted(fresh.values(), key=lambda r: r.id, reverse=True)
            self.beginInsertRows(QModelIndex(), 0, len(added) - 1)
            self.rows[:0] = added
            self.endInsertRows()
        if (changed or fresh) and self._sort is not None:
            column, descending = self._sort
            self.sort(column, Qt.DescendingOrder if descending else Qt.AscendingOrder)

    def _apply_sort(self) -> None:
        if self._sort is None:
            return
        column, descending = self._sort
        key = self.keys[column] if column < len(self.keys) else "id"
        present = [r for r in self.rows if self.value(r, key) not in (None, MISSING, "")]
        absent = [r for r in self.rows if self.value(r, key) in (None, MISSING, "")]
        present.sort(key=lambda r: _sort_key(self.value(r, key)), reverse=descending)
        self.rows = present + absent


def _sort_key(value):
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, -math.inf if math.isnan(value) else float(value), "")
    return (1, 0.0, show_value(value).lower() if isinstance(value, tuple) else str(value).lower())


class RunsFilter(QSortFilterProxyModel):
    """Keeps the rows that pass the search text and the status/tag/study/group filters;
    the trash shows alone (``trash``) or not at all."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.text = ""
        self.status = self.tag = self.study = self.group = None
        self.trash = False
        self.setDynamicSortFilter(False)

    def set_filters(self, *, text: str = "", status=None, tag=None, study=None, group=None,
                    trash: bool = False) -> None:
        self.beginFilterChange()
        self.text = text.strip().lower()
        self.status, self.tag, self.study, self.group, self.trash = (status, tag, study, group,
                                                                     trash)
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, source_row: int, source_parent) -> bool:
        row = self.sourceModel().rows[source_row]
        return (row.trashed == self.trash
                and (self.status is None or row.status == self.status)
                and (self.tag is None or self.tag in row.tags)
                and (self.study is None or row.study == self.study)
                and (self.group is None or row.group == self.group)
                and (not self.text or self.text in row.search_text))

    def run_ids(self, proxy_rows) -> list[int]:
        model = self.sourceModel()
        return [model.rows[self.mapToSource(self.index(r, 0)).row()].id for r in proxy_rows]


class LoadJob(QThread):
    """One read of the workspace, off the GUI thread; ``loaded`` may come twice (see
    RunsReader.read)."""

    loaded = Signal(object)
    failed = Signal(str)

    def __init__(self, reader: RunsReader, parent=None):
        super().__init__(parent)
        self.reader = reader

    def run(self) -> None:
        from engine.workspace import WorkspaceError

        try:
            self.reader.read(self.loaded.emit)
        except (WorkspaceError, OSError) as exc:
            self.failed.emit(str(exc))

