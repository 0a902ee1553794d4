"""Switching the theme at run time restyles what was built under the old one."""

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QLineEdit,
    QRadioButton,
    QSpinBox,
    QStyle,
    QStyleOptionButton,
)

from app import theme
from app.main_window import MainWindow


def luminance(colour: QColor) -> float:
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    return (0.2126 * channel(colour.redF()) + 0.7152 * channel(colour.greenF())
            + 0.0722 * channel(colour.blueF()))


def contrast(a: QColor, b: QColor) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.fixture
def window(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)
    window = MainWindow(None, workspace_dir=tmp_path / "ws", settings=settings)
    qtbot.addWidget(window)
    window.show()
    yield window
    window.bridge.stop()
    window.bridge.wait()
    window.set_theme("system")


def icon_contrast(button) -> float:
    """Contrast of the icon's most opaque pixel against the button's background."""
    image = button.icon().pixmap(16, 16).toImage()
    assert not image.isNull()
    pixels = (image.pixelColor(x, y) for x in range(image.width()) for y in range(image.height()))
    ink = max(pixels, key=lambda c: c.alpha())
    assert ink.alpha() > 0, "the icon draws nothing"
    return contrast(ink, button.palette().color(QPalette.Window))


def test_switching_themes_restyles_the_form_the_message_bar_and_the_icons(window, qtbot):
    window.messages.show_message("Something went wrong: check the file", "info")
    timeline = window.profiler.timeline
    buttons = (timeline.prev_button, timeline.next_button, timeline.fit_button)
    editors = window.findChildren(QLineEdit) + window.findChildren(QSpinBox)
    assert editors
    for name in ("light", "dark", "light", "system"):
        window.set_theme(name)
        QApplication.processEvents()
        app_palette = QApplication.palette()
        for editor in editors:
            palette = editor.palette()
            group = palette.currentColorGroup()  # a read-only editor reads as disabled
            for role in (QPalette.Base, QPalette.Text):
                assert palette.color(role) == app_palette.color(group, role), (name, role)

        bar = window.messages
        corner = bar.mapTo(window, bar.rect().topLeft())  # the bar's tint shows over the window
        background = window.grab().toImage().pixelColor(corner.x() + 4, corner.y() + 3)
        label = bar.text
        text = label.palette().color(label.foregroundRole())
        assert contrast(text, background) >= 4.5, (name, text.name(), background.name())

        for button in buttons:
            assert icon_contrast(button) >= 3, (name, button.toolTip())


@pytest.mark.parametrize("name", ["dark", "light"])
@pytest.mark.parametrize("kind", [QRadioButton, QCheckBox])
def test_an_unchecked_radio_button_or_check_box_stands_out_from_the_window(qtbot, name, kind):
    """Fusion rings the indicator in the window colour darker by 140%: in the dark theme a
    near-black ring on a near-black window, so an unchecked option could not be seen."""
    app = QApplication.instance()
    theme.apply(app, name)
    try:
        box = kind("an option")
        qtbot.addWidget(box)
        box.resize(box.sizeHint())
        option = QStyleOptionButton()
        box.initStyleOption(option)
        element = (QStyle.SubElement.SE_RadioButtonIndicator if kind is QRadioButton
                   else QStyle.SubElement.SE_CheckBoxIndicator)
        rect = box.style().subElementRect(element, option, box)
        image = box.grab().toImage()
        window = app.palette().color(QPalette.Window)
        ring = max(contrast(image.pixelColor(x, y), window)
                   for x in range(rect.left(), rect.right() + 1)
                   for y in range(rect.top(), rect.bottom() + 1))
        assert ring >= 3, (name, kind.__name__, ring)
    finally:
        theme.apply(app, "system")
