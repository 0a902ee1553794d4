"""The run-configuration panel: every RunConfig option, grouped as the engine groups them.

The panel is a view of one RunConfig. The groups and their order come from
``form_groups()``, each editor from its field's metadata, and every problem
shown is the engine's own validation message: every editor whose key a message
names is marked, and the message is written under the first of them (the one
it is about); so a new option or rule needs no edit here.

A row shows only while its option applies (the field's ``relevant_when``, as the
engine evaluates it) or while a message names it, and the rows are re-evaluated
after every edit, so choosing SGD brings momentum in and Adam takes it away.
"""

from __future__ import annotations

import html
import re

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QFormLayout,
    QFrame,
    QGroupBox,
    QLabel,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from app.panels.data_preview import DataPreview
from app.panels.tuning import TuningAids
from app.widgets.config_form import ERROR_COLOR, FieldEditor, make_editor
from engine.config import ConfigError, RunConfig, all_keys, field_meta, form_groups

# Longest keys first, so a key that is a prefix of another never claims its match.
_KEY_PATTERN = re.compile(r"(?<![\w.])("
                          + "|".join(re.escape(k) for k in sorted(all_keys(), key=len,
                                                                   reverse=True))
                          + r")(?!\w)")


def keys_named(message: str) -> list[str]:
    """The dotted keys a validation message names, in order, each once."""
    return list(dict.fromkeys(_KEY_PATTERN.findall(message)))


def _weight(weight: QFont.Weight) -> QFont:
    """A font that sets only its weight, inheriting everything else from the parent."""
    font = QFont()
    font.setWeight(weight)
    return font


class ConfigPanel(QWidget):
    """Edits a RunConfig; reports each change and whether the run could start from it.

    Signals: ``configChanged(RunConfig)`` after each edit by the user (not while
    ``set_config`` fills the form); ``validityChanged(valid, reason)`` whenever
    validity or the first problem changes, ``reason`` being that problem or "";
    ``configSet(RunConfig)`` after ``set_config`` (a file opened, a run shown).
    """

    configChanged = Signal(object)
    validityChanged = Signal(bool, str)
    configSet = Signal(object)  # a whole configuration was put in the form (set_config)

    def __init__(self, config: RunConfig | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self._base = RunConfig()  # values kept for editors whose text does not parse
        self._editors: dict[str, FieldEditor] = {}
        self._rows: dict[str, QFormLayout] = {}
        self._boxes: dict[QGroupBox, list[str]] = {}
        self._validity: tuple[bool, str] | None = None
        self._read_only = False
        self._clean: tuple | None = None  # the form as last loaded, saved or started
        self.preview = DataPreview()  # under the Data group's fields
        self.preview.valueChosen.connect(self.set_value)

        content = QWidget()
        column = QVBoxLayout(content)
        column.setContentsMargins(8, 8, 8, 8)
        column.setSpacing(10)
        labels: list[QLabel] = []
        for group, keys in form_groups().items():
            column.addWidget(self._group_box(group, keys, labels))
        column.addStretch(1)
        self.tuning = TuningAids(self)  # Find LR…, Find batch size… beside their fields
        # One label width for all groups, so every field column starts at the same x.
        width = max(label.sizeHint().width() for label in labels)
        for label in labels:
            label.setMinimumWidth(width)

        self._scroll = QScrollArea()
        self._scroll.setWidgetResizable(True)
        self._scroll.setFrameShape(QFrame.Shape.NoFrame)
        self._scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._scroll.setWidget(content)
        # With no horizontal scroll bar, a dock narrower than the form would cut the
        # fields (and their arrows) off at the right: it can be no narrower.
        self._scroll.setMinimumWidth(content.minimumSizeHint().width()
                                     + self._scroll.verticalScrollBar().sizeHint().width())

        self._summary = QLabel()
        self._summary.setWordWrap(True)
        self._summary.setContentsMargins(8, 4, 8, 6)
        self._summary.linkActivated.connect(self._summary_link)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self._scroll, 1)
        layout.addWidget(self._summary)
        layout.insertWidget(1, self.tuning.label)  # the memory forecast, under the form

        self.set_config(config if config is not None else RunConfig())

    def _group_box(self, title: str, keys: list[str], labels: list[QLabel]) -> QGroupBox:
        box = QGroupBox(title.replace("&", "&&"))  # a literal "&", not a mnemonic
        # Bold titles for scanning; fonts that set only the weight keep the theme's family/size.
        box.setFont(_weight(QFont.Weight.Bold))
        normal = _weight(QFont.Weight.Normal)
        form = QFormLayout(box)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.DontWrapRows)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        form.setHorizontalSpacing(12)
        form.setVerticalSpacing(6)
        for key in keys:
            editor = make_editor(key)
            editor.changed.connect(self._on_edit)
            label = QLabel(field_meta(key)["label"])
            label.setFont(normal)
            editor.setFont(normal)
            label.setToolTip(editor.toolTip())
            label.setBuddy(editor.control)
            form.addRow(label, editor)
            labels.append(label)
            self._editors[key] = editor
            self._rows[key] = form
        if "data.dataset" in keys:
            self.preview.setFont(normal)
            form.addRow(self.preview)
        self._boxes[box] = keys
        return box

    # --- the config ---------------------------------------------------------
    def config(self) -> RunConfig:
        """The values in the form, valid or not; an unparsable field keeps its last set value."""
        cfg = self._base.copy()
        for key, editor in self._editors.items():
            try:
                cfg.set(key, editor.value())
            except ConfigError:
                pass
        return cfg

    def set_config(self, cfg: RunConfig) -> None:
        """Show every value of ``cfg``; emits no configChanged, only a validity change."""
        self._base = cfg.copy()
        for key, editor in self._editors.items():
            editor.set_value(cfg.get(key))
        self._refresh()
        self.mark_clean()
        self.tuning.refresh()
        self.configSet.emit(cfg)

    def set_value(self, key: str, value) -> None:
        """Set one value as if the user had edited it (emits configChanged), e.g. the target
        column chosen in the data preview."""
        if self._read_only:
            return
        self._editors[key].set_value(value)
        self._on_edit()

    def apply_theme(self, dark: bool) -> None:
        self.preview.apply_theme(dark)

    def errors(self) -> list[str]:
        """Every problem: text that does not parse, the engine's validation messages, then
        files the run would read that are not there (checked now: files come and go)."""
        cfg = self.config()
        return self._parse_errors(cfg) + cfg.errors() + cfg.file_errors()

    def check(self) -> list[str]:
        """Validate again now (a file may have gone since the last edit), mark what is wrong
        and return every problem; what Start asks before it starts."""
        self._refresh()
        return self.errors()

    # --- unsaved edits --------------------------------------------------------
    def _state(self) -> tuple:
        cfg = self.config()
        return cfg.to_dict(), tuple(self._parse_errors(cfg))

    def mark_clean(self) -> None:
        """The form as it is now counts as saved (after a load, a save or a run start)."""
        self._clean = self._state()

    def is_modified(self) -> bool:
        """Whether the values differ from the last load, save or run start."""
        return self._state() != self._clean

    def is_shown(self, key: str) -> bool:
        """Whether the row of ``key`` is on show (its option applies, or a message names it)."""
        return not self._editors[key].isHidden()

    def is_valid(self) -> bool:
        return not self.errors()

    def editor(self, key: str) -> FieldEditor:
        """The editor of one dotted key, e.g. to focus it from an error shown elsewhere."""
        return self._editors[key]

    # --- read-only while a run is going -------------------------------------
    def set_read_only(self, read_only: bool) -> None:
        self._read_only = read_only
        for editor in self._editors.values():
            editor.set_read_only(read_only)
        self.preview.set_read_only(read_only)

    def is_read_only(self) -> bool:
        return self._read_only

    def _summary_link(self, _link: str) -> None:
        self.show_first_error()

    def show_first_error(self) -> None:
        """Scroll to the first marked editor and focus it."""
        for editor in self._editors.values():
            if editor.has_error():
                self._scroll.ensureWidgetVisible(editor)
                editor.control.setFocus(Qt.FocusReason.OtherFocusReason)
                return

    # --- validation -----------------------------------------------------------
    def _parse_errors(self, cfg: RunConfig) -> list[str]:
        """Text that does not parse, in the rows whose option applies (the others are unread)."""
        messages = []
        for key, editor in self._editors.items():
            if not cfg.applies(key):
                continue
            try:
                editor.value()
            except ConfigError as exc:
                messages.extend(exc.messages)
        return messages

    def _on_edit(self) -> None:
        self.configChanged.emit(self._refresh())

    def _refresh(self) -> RunConfig:
        """Mark every editor a current message names and report validity if it changed."""
        cfg = self.config()
        messages = self._parse_errors(cfg) + cfg.errors() + cfg.file_errors()
        marks: dict[str, list[str]] = {key: [] for key in self._editors}
        inline: dict[str, list[str]] = {key: [] for key in self._editors}
        for message in messages:
            named = [key for key in keys_named(message) if key in marks]
            for key in named:
                marks[key].append(message)
            if named:  # spelled out under the key it is about; the others get border and tooltip
                inline[named[0]].append(message)
        for key, editor in self._editors.items():
            editor.set_error(marks[key], inline[key])
        self._show_relevant(cfg, marks)
        self.preview.show_for(cfg)
        self._show_summary(messages)
        validity = (not messages, messages[0] if messages else "")
        if validity != self._validity:
            self._validity = validity
            self.validityChanged.emit(*validity)
        return cfg

    def _show_relevant(self, cfg: RunConfig, marks: dict[str, list[str]]) -> None:
        """Show the rows whose option applies or carries a message; a group with none hides."""
        for key, form in self._rows.items():
            shown = cfg.applies(key) or bool(marks[key])
            if shown == self._editors[key].isHidden():
                form.setRowVisible(self._editors[key], shown)
        for box, keys in self._boxes.items():
            box.setVisible(any(not self._editors[k].isHidden() for k in keys))

    def _show_summary(self, messages: list[str]) -> None:
        if not messages:
            self._summary.setText("Configuration is valid.")
            self._summary.setStyleSheet("")
            self._summary.setEnabled(False)  # the palette's muted text: nothing to act on
            return
        count = "1 problem" if len(messages) == 1 else f"{len(messages)} problems"
        self._summary.setEnabled(True)
        self._summary.setStyleSheet(f"color: {ERROR_COLOR};")
        self._summary.setText(f"<b>{count}:</b> {html.escape(messages[0])} "
                              f'<a href="#first" style="color: {ERROR_COLOR};">Show</a>')
