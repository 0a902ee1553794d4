"""The full text of a cut-off table cell or column title, list item, combo box or line
edit, as its tooltip.

One event filter serves every item view (tables, lists, trees, a combo's popup
list) and its header, every combo box and every line edit (its text, or its
placeholder while empty) of the application: the theme's style installs it on
each widget as Qt polishes it (app.theme), so no view has to remember to. On a
tooltip request it measures the text against the room the style gives it and,
only when it does not fit, shows the whole text (above the item's own tooltip,
if it has one). A text that fits gets no tooltip of its own making.

A combo's popup is already as wide as its widest item (QComboBox sizes it so,
up to the screen's width); where the screen is narrower, the popup's list is an
item view like any other.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QModelIndex, QObject, QRect, Qt
from PySide6.QtGui import QFontMetrics, QTextLayout, QTextOption
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHeaderView,
    QLineEdit,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionComboBox,
    QStyleOptionFrame,
    QStyleOptionHeader,
    QStyleOptionViewItem,
    QToolTip,
    QWidget,
)

LINE_EDIT_MARGIN = 2  # QLineEdit's own horizontal margin inside its contents rectangle


def watch(widget: QWidget) -> None:
    """Give ``widget`` elision tooltips if it is an item view, combo box or line edit."""
    if isinstance(widget, QAbstractItemView):  # a header's sections too
        widget.viewport().installEventFilter(_filter())
    elif isinstance(widget, (QComboBox, QLineEdit)):
        widget.installEventFilter(_filter())


def elided_item_text(view: QAbstractItemView, index: QModelIndex) -> str | None:
    """The display text of ``index`` when ``view`` cannot show it whole, else None."""
    return _probe().elided_text(view, index)


def elided_combo_text(combo: QComboBox) -> str | None:
    """The current text of a (non-editable) combo box when it is cut off, else None."""
    text = combo.currentText()
    if not text or combo.isEditable():
        return None  # an editable combo's line edit scrolls its text
    option = QStyleOptionComboBox()
    combo.initStyleOption(option)
    room = combo.style().subControlRect(QStyle.ComplexControl.CC_ComboBox, option,
                                        QStyle.SubControl.SC_ComboBoxEditField, combo)
    width = room.width() - 2  # the label is drawn 1 px in from each side
    if not option.currentIcon.isNull():
        width -= option.iconSize.width() + 4
    return text if combo.fontMetrics().horizontalAdvance(text) > width else None


def elided_line_edit_text(edit: QLineEdit) -> str | None:
    """What a line edit shows (its text, or its placeholder while empty) when cut off."""
    text = edit.text() or edit.placeholderText()
    if not text or edit.echoMode() != QLineEdit.EchoMode.Normal:
        return None
    option = QStyleOptionFrame()
    edit.initStyleOption(option)
    room = edit.style().subElementRect(QStyle.SubElement.SE_LineEditContents, option, edit)
    margins = edit.textMargins()
    width = room.width() - margins.left() - margins.right() - 2 * LINE_EDIT_MARGIN
    return text if edit.fontMetrics().horizontalAdvance(text) > width else None


def elided_header_text(header: QHeaderView, section: int) -> str | None:
    """The title of a header's ``section`` when its width cuts it off, else None."""
    model = header.model()
    if model is None or section < 0:
        return None
    text = model.headerData(section, header.orientation(), Qt.ItemDataRole.DisplayRole)
    if text is None or not str(text):
        return None
    text = str(text)
    option = QStyleOptionHeader()
    option.initFrom(header)
    option.text, option.section, option.orientation = text, section, header.orientation()
    option.textAlignment = header.defaultAlignment()
    size = header.sectionSize(section)
    if header.orientation() == Qt.Orientation.Horizontal:
        option.rect = QRect(0, 0, size, header.height())
    else:
        option.rect = QRect(0, 0, header.width(), size)
    room = header.style().subElementRect(QStyle.SubElement.SE_HeaderLabel, option, header)
    if header.isSortIndicatorShown() and header.sortIndicatorSection() == section:
        arrow = header.style().subElementRect(QStyle.SubElement.SE_HeaderArrow, option, header)
        room.setWidth(room.width() - arrow.width())
    metrics = header.fontMetrics()
    return text if any(metrics.horizontalAdvance(line) > room.width()
                       for line in text.splitlines()) else None


def with_own_tip(text: str, own: str | None) -> str:
    """The full text, then the widget's own tooltip unless that already says it."""
    return text if not own or text in own else f"{text}\n\n{own}"


class _ElisionToolTips(QObject):
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        if event.type() != QEvent.Type.ToolTip:
            return False
        if isinstance(watched, QComboBox):
            text, own = elided_combo_text(watched), watched.toolTip()
        elif isinstance(watched, QLineEdit):
            text, own = elided_line_edit_text(watched), watched.toolTip()
        elif isinstance(watched.parent(), QHeaderView):
            header = watched.parent()
            section = header.logicalIndexAt(event.pos())
            text = elided_header_text(header, section)
            model = header.model()
            own = model.headerData(section, header.orientation(),
                                   Qt.ItemDataRole.ToolTipRole) if text and model else None
        else:
            view = watched.parent()
            if not isinstance(view, QAbstractItemView):
                return False
            index = view.indexAt(event.pos())
            text = elided_item_text(view, index) if index.isValid() else None
            own = index.data(Qt.ItemDataRole.ToolTipRole) if text else None
        if text is None:
            return False  # the widget's own tooltip, if any, as always
        QToolTip.showText(event.globalPos(), with_own_tip(text, own and str(own)), watched)
        return True


class _Probe(QStyledItemDelegate):
    """Builds an item's style option as a styled delegate would, to measure its text room
    (initStyleOption is reachable only from a subclass)."""

    def elided_text(self, view: QAbstractItemView, index: QModelIndex) -> str | None:
        option = QStyleOptionViewItem()
        option.initFrom(view)
        option.rect = view.visualRect(index)
        option.font = view.font()
        option.fontMetrics = QFontMetrics(option.font)
        option.textElideMode = view.textElideMode()
        option.decorationSize = view.iconSize() if view.iconSize().isValid() else \
            option.decorationSize
        if getattr(view, "wordWrap", lambda: False)():
            option.features |= QStyleOptionViewItem.ViewItemFeature.WrapText
        self.initStyleOption(option, index)
        text = option.text
        if not text or option.rect.isEmpty():
            return None
        style = view.style()
        rect = style.subElementRect(QStyle.SubElement.SE_ItemViewItemText, option, view)
        margin = style.pixelMetric(QStyle.PixelMetric.PM_FocusFrameHMargin, None, view) + 1
        width = rect.width() - 2 * margin
        metrics = QFontMetrics(option.font)
        if option.features & QStyleOptionViewItem.ViewItemFeature.WrapText:
            fits = _wrapped_height(text, option.font, width) <= rect.height()
        else:
            fits = all(metrics.horizontalAdvance(line) <= width for line in text.splitlines())
        return None if fits else text


def _wrapped_height(text: str, font, width: int) -> float:
    """Height of ``text`` laid out as Qt's item views wrap it (at words, or anywhere)."""
    layout = QTextLayout(text, font)
    wrap = QTextOption()
    wrap.setWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
    layout.setTextOption(wrap)
    layout.beginLayout()
    height = 0.0
    while True:
        line = layout.createLine()
        if not line.isValid():
            break
        line.setLineWidth(max(width, 1))
        height += line.height()
    layout.endLayout()
    return height


_shared: dict[str, QObject] = {}


def _filter() -> _ElisionToolTips:
    if "filter" not in _shared:
        _shared["filter"] = _ElisionToolTips()
    return _shared["filter"]


def _probe() -> _Probe:
    if "probe" not in _shared:
        _shared["probe"] = _Probe()
    return _shared["probe"]
