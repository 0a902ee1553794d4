"""Editors for RunConfig fields, each built only from the field's type and metadata.

A new option in engine/config.py gets its editor here without an edit: the type
picks the widget, the metadata gives the label, tooltip, range and choices.
Text that does not parse is reported through the engine's own coercion, so the
form says exactly what a TOML file or a ``--set`` override would say.

Every editor has the same small interface, so the panel never asks which kind
it holds: ``value()`` (typed, or raises ConfigError), ``set_value(v)`` (silent:
it never emits ``changed``), ``changed``, ``set_error(messages)`` and
``set_read_only(flag)``.
"""

from __future__ import annotations

import re
from typing import Any, get_args, get_origin

from PySide6.QtCore import QEvent, QObject, QRect, QSignalBlocker, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from engine.config import ConfigError, coerce, field_default, field_meta, field_type

# Choice fields whose free-form value names a file: key -> (value prefix, file filter).
# The engine's metadata has no notion of "a path", so the one browse button is declared here.
# key -> (prefix of the value, file filter, what the … button's tooltip says)
FILE_PICKERS = {
    "model.arch": ("custom:", "Python files (*.py)",
                   "Choose a Python file exposing build_model(input_shape, num_outputs)"),
    "model.init": ("", "Safetensors (*.safetensors)",
                   "Choose weights to start from: a safetensors export or compressed model"),
    "distill.teacher": ("", "Safetensors (*.safetensors)",
                        "Choose a teacher exported as safetensors (or type a run id)"),
    "data.dataset": ("table:", "Tables (*.csv *.tsv *.parquet)",
                     "Choose a table file (CSV, TSV, Parquet) to train on"),
    "data.test_path": ("", "Tables (*.csv *.tsv *.parquet)",
                       "Choose a test table with the training table's columns"),
}

ERROR_PROPERTY = "fieldError"
ERROR_COLOR = "#e5534b"
# Scoped to the editor so it works without the app theme; a dynamic property, not a
# per-state stylesheet, so the theme's own look of the control is kept when valid.
# A spin box is not listed: a stylesheet border makes Fusion drop its arrows (_ErrorFrame).
_ERROR_STYLE = (f'QLineEdit[{ERROR_PROPERTY}="true"], QComboBox[{ERROR_PROPERTY}="true"], '
                f'QCheckBox[{ERROR_PROPERTY}="true"] '
                f"{{ border: 1px solid {ERROR_COLOR}; border-radius: 3px; }}\n"
                f'QCheckBox[{ERROR_PROPERTY}="true"] {{ padding: 2px; }}\n'
                f"QLabel#fieldErrorMessage {{ color: {ERROR_COLOR}; }}")

_INT32 = (-(2**31), 2**31 - 1)


def format_float(value: float) -> str:
    """Shortest text that reads back as exactly this float ('0.0003', '1e-5')."""
    text = repr(float(value))
    mantissa, sep, exponent = text.partition("e")
    if not sep:
        return text
    sign = "-" if exponent.startswith("-") else ""
    return f"{mantissa}e{sign}{exponent.lstrip('+-').lstrip('0') or '0'}"


def allowed_text(key: str) -> str:
    """What a field accepts, in words, for its tooltip ('' when the type says it all)."""
    meta, tp = field_meta(key), field_type(key)
    if meta["choices"]:
        text = "One of: " + ", ".join(meta["choices"])
        return text + (f", or {meta['pattern_hint']}" if meta["pattern_hint"] else "")
    if get_origin(tp) is list:
        kind = {int: "integers", float: "numbers", str: "names"}[get_args(tp)[0]]
        lo, hi = meta["item_min"], meta["item_max"]
        ceiling = f"{'<' if meta['item_max_exclusive'] else '≤'} {hi:,}" if hi is not None else ""
        each = (f", each {lo} ≤ value {ceiling}" if lo is not None and hi is not None
                else f", each ≥ {lo}" if lo is not None
                else f", each {ceiling}" if hi is not None else "")
        least, most = meta["min_items"], meta["max_items"]
        count = (f"; exactly {least} values" if least is not None and least == most
                 else f"; at most {most} values" if most is not None else "")
        return f"Comma-separated {kind}{each}{count}, e.g. {_list_example(key)}"
    lo, hi = meta["min"], meta["max"]
    if lo is None and hi is None:
        return ""
    left = f"{lo} {'<' if meta['min_exclusive'] else '≤'} " if lo is not None else ""
    right = f" {'<' if meta['max_exclusive'] else '≤'} {hi}" if hi is not None else ""
    return f"Allowed: {left}value{right}"


def tooltip_text(key: str) -> str:
    """Help text, what is allowed, and the key to use in TOML files and --set overrides."""
    parts = [field_meta(key)["help"], allowed_text(key), f"Key: {key}"]
    return "\n\n".join(p for p in parts if p)


def _list_example(key: str) -> str:
    """What a list's field shows while empty: its hint (column names, say), its default,
    or an example of its item's kind."""
    hint = field_meta(key)["pattern_hint"]
    if hint:
        return hint
    default = field_default(key)
    if not default:  # an empty default shows nothing to copy: one of the item's kind
        return {int: "1, 2", float: "0.5, 1.0", str: "0, 2"}[get_args(field_type(key))[0]]
    return ", ".join(_format_item(v) for v in default)


def _format_item(value: Any) -> str:
    return format_float(value) if isinstance(value, float) else str(value)


class _NoWheelUnlessFocused:
    """Mixin: a scroll over an unfocused control scrolls the form instead of changing it."""

    def wheelEvent(self, event):  # Qt override
        if self.hasFocus():
            super().wheelEvent(event)
        else:
            event.ignore()


class _ComboBox(_NoWheelUnlessFocused, QComboBox):
    pass


class _FieldSteps:
    """Mixin: the arrows and keys step within the field's range; typing may leave it.

    The spin box itself spans the whole type, so a value typed out of range (batch
    size 0) stays as typed and the engine's validation names it, instead of the box
    silently clamping it to the nearest allowed value.
    """

    field_range: tuple[int, int] = _INT32

    def stepBy(self, steps: int) -> None:  # Qt override
        lo, hi = self.field_range
        target = min(max(self.value() + steps * self.singleStep(), lo), hi)
        self.setValue(target)
        self.selectAll()

    def stepEnabled(self):  # Qt override
        lo, hi = self.field_range
        flags = QAbstractSpinBox.StepEnabledFlag.StepNone
        if self.value() > lo:
            flags |= QAbstractSpinBox.StepEnabledFlag.StepDownEnabled
        if self.value() < hi:
            flags |= QAbstractSpinBox.StepEnabledFlag.StepUpEnabled
        return flags


class _SpinBox(_FieldSteps, _NoWheelUnlessFocused, QSpinBox):
    pass


class _WideSpinBox(_FieldSteps, _NoWheelUnlessFocused, QDoubleSpinBox):
    """Integer spin box for ranges past 32 bits (seeds, step limits): exact up to 2**53."""


class _ErrorFrame(QWidget):
    """The error border drawn over a spin box, whose arrows a stylesheet border would drop."""

    def __init__(self, control: QWidget):
        super().__init__(control)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.hide()
        control.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # Qt override
        if event.type() == QEvent.Type.Resize:
            self.setGeometry(watched.rect())
        return False

    def paintEvent(self, _event) -> None:  # Qt override
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(QColor(ERROR_COLOR), 1))
        painter.drawRoundedRect(self.rect().adjusted(0, 0, -1, -1), 3, 3)


class _WrappedLabel(QLabel):
    """A word-wrapped label, as wide as its parent, as tall as its text at that width.

    QFormLayout sizes rows from a wrapped label's size hint, which is guessed for
    some other width: long messages were clipped and short ones left a gap. The
    parent's width is used because a label still hidden has a stale one.
    """

    def setText(self, text: str) -> None:  # Qt override
        super().setText(text)
        self._fit()

    def resizeEvent(self, event):  # Qt override
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        margins = self.contentsMargins()
        width = self.parentWidget().contentsRect().width() - margins.left() - margins.right()
        if width <= 0 or not self.text():
            return
        flags = Qt.TextFlag.TextWordWrap | Qt.AlignmentFlag.AlignLeft
        text_height = self.fontMetrics().boundingRect(QRect(0, 0, width, 1 << 20), flags,
                                                      self.text()).height()
        height = text_height + margins.top() + margins.bottom()
        if height != self.maximumHeight():
            self.setFixedHeight(height)


class FieldEditor(QWidget):
    """One RunConfig field: its control, optional extras beside it, its error line below."""

    changed = Signal()

    def __init__(self, key: str, control: QWidget, parent: QWidget | None = None):
        super().__init__(parent)
        self.key = key
        self.meta = field_meta(key)
        self.control = control
        self.setStyleSheet(_ERROR_STYLE)
        self._tooltip = tooltip_text(key)
        self.setToolTip(self._tooltip)
        control.setAccessibleName(self.meta["label"])

        # A stylesheet border drops the native frame's padding; keep the row from shrinking.
        control.setMinimumHeight(control.sizeHint().height())

        self._row = QHBoxLayout()
        self._row.setContentsMargins(0, 0, 0, 0)
        self._row.setSpacing(4)
        self._row.addWidget(control, 0 if isinstance(control, QCheckBox) else 1)

        self._errors = ""
        self._frame = _ErrorFrame(control) if isinstance(control, QAbstractSpinBox) else None
        self._message = _WrappedLabel(self)
        self._message.setObjectName("fieldErrorMessage")
        self._message.setWordWrap(True)
        self._message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        font = self._message.font()
        font.setPointSizeF(font.pointSizeF() * 0.9)
        self._message.setFont(font)
        self._message.hide()
        if isinstance(control, QCheckBox):  # so its error border hugs the box, not the row
            self._row.addStretch(1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(self._row)
        layout.addWidget(self._message)
        self.setFocusProxy(control)

    def value(self) -> Any:
        """The typed value; raises ConfigError (the engine's message) for unparsable text."""
        raise NotImplementedError

    def set_value(self, value: Any) -> None:
        """Show a value without emitting ``changed``."""
        with QSignalBlocker(self.control):
            self._show(value)

    def _show(self, value: Any) -> None:
        raise NotImplementedError

    def error(self) -> str:
        """The messages marking this editor, one per line ('' when it is not marked)."""
        return self._errors

    def has_error(self) -> bool:
        return bool(self.control.property(ERROR_PROPERTY))

    def set_error(self, messages: list[str], inline: list[str] | None = None) -> None:
        """Mark the control for ``messages`` ([] clears it) and show ``inline`` beneath it.

        All messages go into the tooltip; ``inline`` (all of them by default) lets a
        rule naming several keys be spelled out once rather than under each key.
        """
        inline = messages if inline is None else inline
        text, below = "\n".join(messages), "\n".join(inline)
        if text == self._errors and below == self._message.text():
            return
        self._errors = text
        self.control.setProperty(ERROR_PROPERTY, bool(messages))
        self.control.style().unpolish(self.control)
        self.control.style().polish(self.control)
        if self._frame is not None:
            self._frame.setGeometry(self.control.rect())
            self._frame.setVisible(bool(messages))
        self.control.updateGeometry()  # the border changes the size hint
        self.setToolTip(f"{text}\n\n{self._tooltip}" if text else self._tooltip)
        self._message.setText(below)
        self._message.setVisible(bool(below))

    def add_file_picker(self, set_text) -> None:
        """A … button beside the fields that name a file; the chosen path goes to
        ``set_text`` (with the field's prefix, e.g. custom:)."""
        if self.key not in FILE_PICKERS:
            return
        self._set_picked = set_text
        self.browse = QToolButton()
        self.browse.setText("…")
        self.browse.setToolTip(FILE_PICKERS[self.key][2])
        self.browse.clicked.connect(self._browse)
        self._row.addWidget(self.browse)

    def add_extra(self, widget: QWidget) -> None:
        """A widget beside the control (a button that finds a value for it), enabled and
        disabled with the field."""
        self._row.addWidget(widget)

    def _browse(self) -> None:
        prefix, file_filter, _tip = FILE_PICKERS[self.key]
        path, _ = QFileDialog.getOpenFileName(self, self.meta["label"], "", file_filter)
        if path:
            self._set_picked(prefix + path)

    def set_read_only(self, read_only: bool) -> None:
        for i in range(self._row.count()):
            widget = self._row.itemAt(i).widget()
            if widget is not None:
                widget.setEnabled(not read_only)


class ChoiceEditor(FieldEditor):
    """A combo of the allowed values; editable when a pattern allows others (cuda:1, custom:)."""

    def __init__(self, key: str, parent: QWidget | None = None):
        combo = _ComboBox()
        super().__init__(key, combo, parent)
        self.combo = combo
        combo.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        combo.addItems(list(self.meta["choices"]))
        self._extra = None  # a loaded value outside the choices of a non-editable combo
        if self.meta["pattern"]:
            combo.setEditable(True)
            combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
            combo.lineEdit().setPlaceholderText(self.meta["pattern_hint"] or "")
            combo.currentTextChanged.connect(self.changed)
        else:
            combo.currentIndexChanged.connect(self.changed)
        self.add_file_picker(self.combo.setEditText)

    def value(self) -> str:
        return self.combo.currentText().strip()

    def _show(self, value: Any) -> None:
        text = str(value)
        if self._extra is not None:
            self.combo.removeItem(self.combo.findText(self._extra))
            self._extra = None
        index = self.combo.findText(text)
        if index >= 0:
            self.combo.setCurrentIndex(index)
        elif self.combo.isEditable():
            self.combo.setEditText(text)
        else:
            # Shown as it is, so the form never silently changes a loaded value;
            # validation then names it and lists what is allowed.
            self._extra = text
            self.combo.addItem(text)
            self.combo.setCurrentIndex(self.combo.count() - 1)



class TextEditor(FieldEditor):
    """Free text (a file path or a run id); empty means the option is off."""

    def __init__(self, key: str, parent: QWidget | None = None):
        self.edit = QLineEdit()
        super().__init__(key, self.edit, parent)
        self.edit.setPlaceholderText(self.meta["pattern_hint"] or "empty: off")
        self.edit.setClearButtonEnabled(True)
        self.edit.textChanged.connect(self.changed)
        self.add_file_picker(self.edit.setText)

    def value(self) -> str:
        return self.edit.text().strip()

    def _show(self, value: Any) -> None:
        self.edit.setText(str(value))
        self.edit.setCursorPosition(0)


class BoolEditor(FieldEditor):
    def __init__(self, key: str, parent: QWidget | None = None):
        self.check = QCheckBox()
        # Room for the error border and padding: a text-less box caches its bare size hint.
        self.check.setMinimumWidth(self.check.sizeHint().width() + 6)
        super().__init__(key, self.check, parent)
        self.check.toggled.connect(self.changed)

    def value(self) -> bool:
        return self.check.isChecked()

    def _show(self, value: Any) -> None:
        self.check.setChecked(bool(value))


class IntEditor(FieldEditor):
    """A spin box whose arrows keep to the field's range; a value typed or loaded outside
    it is kept as it is and marked with the engine's message, never silently changed."""

    def __init__(self, key: str, parent: QWidget | None = None):
        meta = field_meta(key)
        lo = _INT32[0] if meta["min"] is None else int(meta["min"]) + bool(meta["min_exclusive"])
        hi = _INT32[1] if meta["max"] is None else int(meta["max"]) - bool(meta["max_exclusive"])
        if _INT32[0] <= lo and hi <= _INT32[1]:
            spin, self._limits = _SpinBox(), _INT32
        else:
            spin, self._limits = _WideSpinBox(), (-(2**53), 2**53)
            spin.setDecimals(0)
        super().__init__(key, spin, parent)
        self.spin = spin
        spin.field_range = (lo, hi)
        spin.setRange(*self._limits)
        spin.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        spin.setAccelerated(True)
        # the text, not the value: an emptied box is a problem to show, not the last value
        spin.textChanged.connect(self.changed)

    def value(self) -> int:
        text = self.spin.cleanText().strip()
        try:
            return int(text)
        except ValueError:
            raise ConfigError(coerce_message(self.key, text)) from None

    def _show(self, value: Any) -> None:
        self.spin.setValue(min(max(int(value), self._limits[0]), self._limits[1]))


class FloatEditor(FieldEditor):
    """Free text, so 3e-4 can be typed and every float is shown without rounding."""

    def __init__(self, key: str, parent: QWidget | None = None):
        self.edit = QLineEdit()
        super().__init__(key, self.edit, parent)
        self.edit.setPlaceholderText("e.g. " + format_float(field_default(key)))
        self.edit.textChanged.connect(self.changed)

    def value(self) -> float:
        text = self.edit.text().strip()
        try:
            return float(text)
        except ValueError:
            raise ConfigError(coerce_message(self.key, text)) from None

    def _show(self, value: Any) -> None:
        self.edit.setText(format_float(value))
        self.edit.setCursorPosition(0)


class ListEditor(FieldEditor):
    """Numbers (or names) separated by commas or spaces; brackets as in TOML are accepted too.
    Names with commas between them may hold spaces (a column "bill length")."""

    def __init__(self, key: str, parent: QWidget | None = None):
        self.edit = QLineEdit()
        super().__init__(key, self.edit, parent)
        self.item_type = get_args(field_type(key))[0]
        self.edit.setPlaceholderText("e.g. " + _list_example(key))
        self.edit.textChanged.connect(self.changed)

    def value(self) -> list:
        text = self.edit.text().strip()
        inner = text[1:-1] if text.startswith("[") and text.endswith("]") else text
        if self.item_type is str and "," in inner:
            names = [p.strip().strip("'\"") for p in inner.split(",")]
            return coerce(self.key, [n for n in names if n])
        parts = [p for p in re.split(r"[,\s]+", inner.strip()) if p]
        try:
            items = [p.strip("'\"") if self.item_type is str
                     else float(p) if self.item_type is float else _int_or_float(p)
                     for p in parts]
            return coerce(self.key, items)
        except (ValueError, ConfigError):
            raise ConfigError(coerce_message(self.key, text)) from None

    def _show(self, value: Any) -> None:
        self.edit.setText(", ".join(_format_item(v) for v in value))


def coerce_message(key: str, text: str) -> str:
    """The engine's type message for text that does not parse ("... must be a number")."""
    try:
        coerce(key, text)
    except ConfigError as exc:
        return exc.messages[0]
    return f"{key} cannot take {text!r}"  # pragma: no cover (text is never a valid list)


def _int_or_float(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)  # 2.0 is an integer to the engine, 2.5 is not


def make_editor(key: str, parent: QWidget | None = None) -> FieldEditor:
    """The editor for a RunConfig field, chosen from its type and metadata alone."""
    meta, tp = field_meta(key), field_type(key)
    if meta["choices"]:
        return ChoiceEditor(key, parent)
    if get_origin(tp) is list:
        return ListEditor(key, parent)
    editors = {bool: BoolEditor, int: IntEditor, float: FloatEditor, str: TextEditor}
    if tp not in editors:
        raise TypeError(f"no editor for {key} of type {tp!r}: "
                        f"add one to app/widgets/config_form.py")
    return editors[tp](key, parent)
