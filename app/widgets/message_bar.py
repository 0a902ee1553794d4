"""A non-modal message strip above the plots: errors stay readable while the window stays usable."""

from __future__ import annotations

import qtawesome as qta
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton

from app import theme

_STYLES = {
    "error": ("mdi6.alert-circle", "#d1242f", "rgba(209, 36, 47, 0.12)"),
    "warning": ("mdi6.alert", "#bf8700", "rgba(191, 135, 0, 0.12)"),
    "info": ("mdi6.information", "#2f6fd6", "rgba(47, 111, 214, 0.12)"),
}


class MessageBar(QFrame):
    """Shows one message with its kind's icon and colour until closed or replaced."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("MessageBar")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        layout.setSpacing(8)
        self.icon = QLabel()
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextSelectableByMouse)
        close = QToolButton()
        close.setIcon(theme.icon("mdi6.close"))
        close.setAutoRaise(True)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.hide)
        layout.addWidget(self.icon, 0, Qt.AlignTop)
        layout.addWidget(self.text, 1)
        layout.addWidget(close, 0, Qt.AlignTop)
        self.kind = ""
        self.hide()

    def show_message(self, text: str, kind: str = "error") -> None:
        icon, colour, background = _STYLES[kind]
        self.kind = kind
        self.icon.setPixmap(qta.icon(icon, color=colour).pixmap(20, 20))
        self.text.setText(text)
        self.setStyleSheet(f"#MessageBar {{ background: {background}; border: 1px solid "
                           f"{colour}; border-radius: 4px; }}")
        self.show()

    def message(self) -> str:
        return self.text.text() if self.isVisible() else ""
