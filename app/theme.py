"""Light, dark and system themes: one Fusion palette per theme, and plot colours to match.

Fusion draws the same on every platform, so a palette is all a theme needs,
and it looks right in both schemes without per-widget style sheets.

A switch at run time must reach widgets built under the old theme. Two things
do not follow ``QApplication.setPalette`` on their own, so both are handled here
once rather than in each widget: a widget under a style sheet keeps the palette
the sheet resolved from the previous theme (``apply`` re-polishes them), and an
icon rendered with a colour keeps that colour (``icon`` reads it when painted).
"""

from __future__ import annotations

import qtawesome as qta
from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QIconEngine, QPainter, QPalette, QPixmap
from PySide6.QtWidgets import QApplication, QProxyStyle, QStyle, QWidget

from app.widgets import elision

THEMES = ("system", "light", "dark")

_DARK = {
    QPalette.Window: "#25272b", QPalette.WindowText: "#e6e6e6", QPalette.Base: "#1d1f22",
    QPalette.AlternateBase: "#2b2e33", QPalette.ToolTipBase: "#2f3237",
    QPalette.ToolTipText: "#e6e6e6", QPalette.Text: "#e6e6e6", QPalette.Button: "#2f3237",
    QPalette.ButtonText: "#e6e6e6", QPalette.BrightText: "#ff6b6b", QPalette.Link: "#6ab0ff",
    QPalette.Highlight: "#3d7bd9", QPalette.HighlightedText: "#ffffff",
    QPalette.PlaceholderText: "#8a8f98", QPalette.Mid: "#3a3d42", QPalette.Dark: "#151618",
    QPalette.Light: "#3a3d42",
}
_LIGHT = {
    QPalette.Window: "#f3f4f6", QPalette.WindowText: "#1f2328", QPalette.Base: "#ffffff",
    QPalette.AlternateBase: "#f6f8fa", QPalette.ToolTipBase: "#ffffff",
    QPalette.ToolTipText: "#1f2328", QPalette.Text: "#1f2328", QPalette.Button: "#f6f8fa",
    QPalette.ButtonText: "#1f2328", QPalette.BrightText: "#d1242f", QPalette.Link: "#0969da",
    QPalette.Highlight: "#2f6fd6", QPalette.HighlightedText: "#ffffff",
    QPalette.PlaceholderText: "#6e7781", QPalette.Mid: "#d0d7de", QPalette.Dark: "#8c959f",
    QPalette.Light: "#ffffff",
}
# The ring of an unchecked radio button or check box, >= 3:1 against the window (WCAG's
# contrast for controls): Fusion draws it as the window colour darker(140), which on the
# dark window is near black on near black
_INDICATOR_RING = {True: "#8a8f98", False: "#6e7781"}


def system_is_dark() -> bool:
    hints = QGuiApplication.styleHints()
    return hints.colorScheme() == Qt.ColorScheme.Dark


def resolve(theme: str) -> bool:
    """True when ``theme`` ("system", "light" or "dark") means dark here and now."""
    return system_is_dark() if theme == "system" else theme == "dark"


def apply(app: QApplication, theme: str, window: QWidget | None = None) -> bool:
    """Apply a theme to the whole application; returns whether it is dark. ``window``:
    the top-level window already built, whose style-sheet widgets are polished again."""
    dark = resolve(theme)
    app.setStyle(_Style(QColor(_INDICATOR_RING[dark])))
    palette = QPalette()
    for role, colour in (_DARK if dark else _LIGHT).items():
        palette.setColor(role, QColor(colour))
    for role in (QPalette.Text, QPalette.ButtonText, QPalette.WindowText):
        palette.setColor(QPalette.Disabled, role, QColor("#6b7079" if dark else "#a0a7b0"))
    app.setPalette(palette)
    if window is not None:
        _repolish_style_sheet_widgets(window)
    return dark


def _repolish_style_sheet_widgets(window: QWidget) -> None:
    """Qt's style-sheet style answers the palette change with the palette it resolved
    before it, so editors in the form stayed black after Dark -> Light; polishing again
    resolves the sheet against the new application palette. Only the window's own tree:
    QApplication.allWidgets() also lists widgets of closed windows being torn down, and
    polishing one of those crashed."""
    for widget in (window, *window.findChildren(QWidget)):
        if widget.testAttribute(Qt.WidgetAttribute.WA_StyleSheet):
            style = widget.style()
            style.unpolish(widget)
            style.polish(widget)


class _Style(QProxyStyle):
    """Fusion, with elision tooltips on every item view and combo box, and with the radio
    and check box indicators ringed in a colour that stands out from the window in either
    theme. Fusion takes the ring from the palette's Window colour (darker by 140%); the
    indicator alone is drawn with a Window colour that yields the ring, so everything else
    about it (fill, check mark, focus, hover) stays Fusion's. Check boxes in item views are
    drawn through this too (Fusion draws them as PE_IndicatorCheckBox)."""

    INDICATORS = (QStyle.PrimitiveElement.PE_IndicatorRadioButton,
                  QStyle.PrimitiveElement.PE_IndicatorCheckBox)

    def __init__(self, ring: QColor):
        super().__init__("Fusion")
        self.window_for_ring = ring.lighter(140)

    def drawPrimitive(self, element, option, painter, widget=None):
        if element in self.INDICATORS:
            option = type(option)(option)
            option.palette.setColor(QPalette.ColorRole.Window, self.window_for_ring)
        super().drawPrimitive(element, option, painter, widget)

    def styleHint(self, hint, option=None, widget=None, returnData=None):
        """No icons on dialog buttons (Close, Cancel, OK), as on Windows and macOS: the
        platform's are drawn for a light window and were a dark glyph on a dark button."""
        if hint == QStyle.StyleHint.SH_DialogButtonBox_ButtonsHaveIcons:
            return 0
        return super().styleHint(hint, option, widget, returnData)

    def polish(self, target):
        """Qt polishes every widget through the application's style: the one place where each
        table, list and combo box gets tooltips for its cut-off texts (app.widgets.elision)."""
        if isinstance(target, QWidget):
            elision.watch(target)
        return super().polish(target)


def icon_colour(dark: bool) -> str:
    return "#d7dbe0" if dark else "#394049"


def palette_is_dark() -> bool:
    return QApplication.palette().color(QPalette.ColorRole.Window).lightness() < 128


class _ThemedIconEngine(QIconEngine):
    """Paints a qtawesome glyph in the theme's icon colour of the moment: qtawesome fixes
    an icon's colour when it is made (and caches it), so icons made under one theme
    vanished against the other."""

    def __init__(self, name: str):
        super().__init__()
        self.name = name

    def paint(self, painter: QPainter, rect: QRect, mode: QIcon.Mode, state: QIcon.State):
        colour = icon_colour(palette_is_dark())
        glyph = qta.icon(self.name, color=colour, color_disabled="#8c959f")
        glyph.paint(painter, rect, Qt.AlignmentFlag.AlignCenter, mode, state)

    def pixmap(self, size: QSize, mode: QIcon.Mode, state: QIcon.State) -> QPixmap:
        pixmap = QPixmap(size)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        self.paint(painter, QRect(0, 0, size.width(), size.height()), mode, state)
        painter.end()
        return pixmap

    def clone(self) -> QIconEngine:
        return _ThemedIconEngine(self.name)


def icon(name: str) -> QIcon:
    """A qtawesome icon (e.g. ``"mdi6.refresh"``) that follows theme switches by itself."""
    return QIcon(_ThemedIconEngine(name))
