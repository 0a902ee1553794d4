"""The Search dock's form: the [search] settings and the space, one row per config key.

A row is a dotted config key (chosen from the options, with completion), a kind
(float or int range, or a list of choices) and its range (low, high, step, log)
or its choices typed as TOML values. Picking a key fills its row from the
configuration's value (a decade either side of a learning rate, say).
``spec()`` reads the form into a ``SearchSpec``; ``set_spec`` shows one.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)

from engine.config import RunConfig, all_keys
from engine.run_options import MONITORED

from .search_spec import (
    DIRECTIONS,
    KINDS,
    MINIMIZED,
    PRUNERS,
    SAMPLERS,
    Param,
    SearchSpec,
    SpecError,
    format_choices,
    parse_choices,
    suggested_param,
)

KEY, KIND, LOW, HIGH, STEP, LOG, CHOICES = range(7)
HEADERS = ("Config key", "Kind", "Low", "High", "Step", "Log", "Choices")
NO_SEED = -1


class SearchSpaceForm(QWidget):
    """``config``: returns the form's RunConfig (rows start from its values)."""

    changed = Signal()

    def __init__(self, config: Callable[[], RunConfig], parent=None):
        super().__init__(parent)
        self._config = config
        self._heartbeat: int | None = None
        self.objective = QComboBox()
        self.objective.setEditable(True)
        self.objective.addItems(MONITORED)
        self.objective.setCurrentText("val_accuracy")
        self.objective.setToolTip("The validation metric each trial reports per epoch; the "
                                  "pruner judges it and the sampler optimizes its best value")
        self.objective.currentTextChanged.connect(self._objective_changed)
        self.direction = self._combo(DIRECTIONS, "Whether a larger or a smaller objective "
                                                 "is better")
        self.sampler = self._combo(SAMPLERS, "Optuna's sampler: TPE (default), random, "
                                             "grid (over choices), CMA-ES, a Gaussian "
                                             "process, or quasi-Monte Carlo")
        self.pruner = self._combo(PRUNERS, "Optuna's pruner: stops trials whose epochs fall "
                                           "behind the others'")
        self.n_trials = QSpinBox()
        self.n_trials.setRange(1, 1_000_000)
        self.n_trials.setValue(20)
        self.n_trials.setToolTip("Trials of the whole study, across every worker (and every "
                                 "machine joined to it)")
        self.timeout = QDoubleSpinBox()
        self.timeout.setRange(0, 1e7)
        self.timeout.setDecimals(0)
        self.timeout.setSuffix(" s")
        self.timeout.setSpecialValueText("none")
        self.timeout.setToolTip("Start no trial after this many seconds (none: run all the "
                                "trials)")
        self.workers = QSpinBox()
        self.workers.setRange(1, max(os.cpu_count() or 1, 1) * 4)
        self.workers.setToolTip("Trial processes on this machine, each training one trial")
        self.seed = QSpinBox()
        self.seed.setRange(NO_SEED, 2**31 - 1)
        self.seed.setValue(NO_SEED)
        self.seed.setSpecialValueText("random")
        self.seed.setToolTip("The sampler's seed, to repeat a search")
        self.study = QLineEdit()
        self.study.setToolTip("The study's name in its storage: trials are added to a study "
                              "of this name if one exists")
        self.storage = QLineEdit()
        self.storage.setToolTip("A SQLAlchemy URL, e.g. postgresql://user@host/db for workers "
                                "on several machines; empty: search.sqlite in the workspace")
        for edit in (self.study, self.storage):
            edit.textChanged.connect(self.changed)
        settings = QFormLayout()
        settings.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        for label, widget in (("Objective", self.objective), ("Direction", self.direction),
                              ("Sampler", self.sampler), ("Pruner", self.pruner),
                              ("Trials", self.n_trials), ("Timeout", self.timeout),
                              ("Workers", self.workers), ("Seed", self.seed),
                              ("Study", self.study), ("Storage", self.storage)):
            settings.addRow(label, widget)

        self.table = QTableWidget(0, len(HEADERS))
        self.table.setHorizontalHeaderLabels(HEADERS)
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.Interactive)
        header.setSectionResizeMode(CHOICES, QHeaderView.Stretch)
        self.table.setColumnWidth(KEY, 170)
        for column, width in ((KIND, 72), (LOW, 80), (HIGH, 80), (STEP, 56), (LOG, 36)):
            self.table.setColumnWidth(column, width)
        header.setMinimumSectionSize(30)
        add = QPushButton("Add row")
        add.setToolTip("Search over another config key")
        add.clicked.connect(self.add_row)
        remove = QPushButton("Remove row")
        remove.clicked.connect(self.remove_selected)
        buttons = QHBoxLayout()
        buttons.addWidget(QLabel("Space"))
        buttons.addStretch(1)
        buttons.addWidget(add)
        buttons.addWidget(remove)
        settings_box = QWidget()
        settings_box.setLayout(settings)
        settings_box.setMaximumWidth(380)
        space = QVBoxLayout()
        space.addLayout(buttons)
        space.addWidget(self.table, 1)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(settings_box, 2)
        layout.addLayout(space, 5)

    def _combo(self, items, tip: str) -> QComboBox:
        combo = QComboBox()
        combo.addItems(items)
        combo.setToolTip(tip)
        combo.currentIndexChanged.connect(self.changed)
        return combo

    def _objective_changed(self, text: str) -> None:
        self.direction.setCurrentText("minimize" if text in MINIMIZED else "maximize")
        self.changed.emit()

    # --- rows ----------------------------------------------------------------------
    def add_row(self, key: str = "", param: Param | None = None) -> int:
        row = self.table.rowCount()
        self.table.insertRow(row)
        keys = QComboBox()
        keys.setEditable(True)
        keys.addItems(all_keys())
        keys.setCurrentIndex(-1)
        keys.setCurrentText(key)
        keys.lineEdit().setPlaceholderText("optim.lr")
        keys.textActivated.connect(self._key_chosen)
        kind = QComboBox()
        kind.addItems(KINDS)
        kind.currentTextChanged.connect(self._kind_changed)
        log = QCheckBox()
        log.setToolTip("Sample on a log scale (a range of positive values)")
        self.table.setCellWidget(row, KEY, keys)
        self.table.setCellWidget(row, KIND, kind)
        for column in (LOW, HIGH, STEP, CHOICES):
            edit = QLineEdit()
            edit.textChanged.connect(self.changed)
            self.table.setCellWidget(row, column, edit)
        self.table.setCellWidget(row, LOG, log)
        if param is None and key:
            param = suggested_param(self._config(), key)
        self.set_row(row, param or Param())
        self.changed.emit()
        return row

    def cell(self, row: int, column: int):
        return self.table.cellWidget(row, column)

    def set_row(self, row: int, param: Param) -> None:
        self.cell(row, KIND).setCurrentText(param.kind)
        for column, value in ((LOW, param.low), (HIGH, param.high), (STEP, param.step)):
            self.cell(row, column).setText("" if value is None else repr(value))
        self.cell(row, LOG).setChecked(param.log)
        self.cell(row, CHOICES).setText(format_choices(param.choices))
        self._enable(row)

    def remove_selected(self) -> None:
        rows = sorted({i.row() for i in self.table.selectedIndexes()}, reverse=True)
        for row in rows or [self.table.rowCount() - 1]:
            if row >= 0:
                self.table.removeRow(row)
        self.changed.emit()

    def _row_of(self, widget: QWidget, column: int) -> int:
        return next(r for r in range(self.table.rowCount()) if self.cell(r, column) is widget)

    def _key_chosen(self, key: str) -> None:
        row = self._row_of(self.sender(), KEY)
        if key in all_keys():
            self.set_row(row, suggested_param(self._config(), key))
        self.changed.emit()

    def _kind_changed(self, _kind: str) -> None:
        self._enable(self._row_of(self.sender(), KIND))
        self.changed.emit()

    def _enable(self, row: int) -> None:
        choice = self.cell(row, KIND).currentText() == "choice"
        for column in (LOW, HIGH, STEP, LOG):
            self.cell(row, column).setEnabled(not choice)
        self.cell(row, CHOICES).setEnabled(choice)
        # hints in the fields that apply only: a greyed hint read as a value to fill in
        self.cell(row, STEP).setPlaceholderText("" if choice else "any")
        self.cell(row, CHOICES).setPlaceholderText("32, 64, 128  or  [64], [128, 64]"
                                                   if choice else "")

    # --- the spec ----------------------------------------------------------------------
    def spec(self) -> SearchSpec:
        """The form as a SearchSpec; SpecError names each row that cannot be read."""
        space, errors = {}, []
        for row in range(self.table.rowCount()):
            key = self.cell(row, KEY).currentText().strip()
            if not key:
                errors.append(f"row {row + 1} of the space has no config key: pick one, "
                              f"e.g. optim.lr, or remove the row")
                continue
            if key in space:
                errors.append(f'search.space."{key}" appears twice: keep one row per key')
                continue
            try:
                space[key] = self._param(row, key)
            except SpecError as exc:
                errors.extend(exc.messages)
        if errors:
            raise SpecError(errors)
        return SearchSpec(objective=self.objective.currentText().strip(),
                          direction=self.direction.currentText(),
                          sampler=self.sampler.currentText(), pruner=self.pruner.currentText(),
                          n_trials=self.n_trials.value(), timeout=self.timeout.value(),
                          workers=self.workers.value(),
                          seed=None if self.seed.value() == NO_SEED else self.seed.value(),
                          storage=self.storage.text().strip(), study=self.study.text().strip(),
                          heartbeat=self._heartbeat, space=space)

    def _param(self, row: int, key: str) -> Param:
        kind = self.cell(row, KIND).currentText()
        if kind == "choice":
            return Param("choice", choices=parse_choices(self.cell(row, CHOICES).text(), key))
        cast = int if kind == "int" else float
        values = {}
        for column, name in ((LOW, "low"), (HIGH, "high"), (STEP, "step")):
            text = self.cell(row, column).text().strip()
            if not text:
                values[name] = None
                continue
            try:
                values[name] = cast(text)
            except ValueError:
                raise SpecError([f'search.space."{key}": {name} {text!r} is not '
                                 f'{"a whole number" if cast is int else "a number"}']) from None
        return Param(kind, values["low"], values["high"], self.cell(row, LOG).isChecked(),
                     values["step"])

    def set_spec(self, spec: SearchSpec) -> None:
        self._heartbeat = spec.heartbeat  # not in the form; kept for the file
        self.objective.setCurrentText(spec.objective)
        self.direction.setCurrentText(spec.direction)
        self.sampler.setCurrentText(spec.sampler)
        self.pruner.setCurrentText(spec.pruner)
        self.n_trials.setValue(spec.n_trials)
        self.timeout.setValue(spec.timeout or 0)
        self.workers.setValue(spec.workers)
        self.seed.setValue(NO_SEED if spec.seed is None else spec.seed)
        self.study.setText(spec.study)
        self.storage.setText(spec.storage)
        self.table.setRowCount(0)
        for key, param in spec.space.items():
            self.add_row(key, param)

    def set_read_only(self, read_only: bool) -> None:
        """While a search runs its settings are fixed: the form shows what it runs."""
        for widget in self.findChildren(QWidget):
            if isinstance(widget, QComboBox | QLineEdit | QSpinBox | QDoubleSpinBox | QCheckBox
                          | QPushButton):
                widget.setEnabled(not read_only)
        if not read_only:
            for row in range(self.table.rowCount()):
                self._enable(row)
        self.table.setFocusPolicy(Qt.NoFocus if read_only else Qt.StrongFocus)
