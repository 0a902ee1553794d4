"""The window's messages: one log every panel posts to, and non-modal bars that show it.

A report must reach the user where they are: the docks are tabs of one area,
so a report posted to the Training dock's bar went unseen while the
Compression or Profiler tab was in front. Every dock's bar is a view of the
window's one ``MessageLog``: a message for the whole window (an export's
verification, a failed run) shows in every bar; a dock's own (a trace that
could not be read) only in that dock's. Nothing is lost when a bar is
replaced or dismissed: the log keeps each message with its time, level and
the action that produced it, for View ▸ Messages (app/widgets/message_history.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import qtawesome as qta
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton, QVBoxLayout, QWidget

from app import theme

STYLES = {
    "error": ("mdi6.alert-circle", "#d1242f", "rgba(209, 36, 47, 0.12)"),
    "warning": ("mdi6.alert", "#bf8700", "rgba(191, 135, 0, 0.12)"),
    "info": ("mdi6.information", "#2f6fd6", "rgba(47, 111, 214, 0.12)"),
}
LEVELS = tuple(STYLES)
WINDOW = ""  # the scope of a message for the whole window: every bar shows it


@dataclass(frozen=True, eq=False)
class Message:
    """One report: ``source`` names the action or panel that produced it."""
    time: datetime
    level: str  # error | warning | info
    text: str
    source: str
    scope: str = WINDOW  # WINDOW, or the one dock whose bar shows it

    def as_line(self) -> str:
        """The message as one line of plain text (Copy in the history)."""
        return (f"{self.time:%Y-%m-%d %H:%M:%S}  {self.level.upper():7}  "
                f"{self.source or '-'}: {self.text}")


class MessageLog(QObject):
    """Every message of the window, oldest first; the bars and the history follow it."""

    posted = Signal(object)  # Message
    dismissed = Signal(object)  # Message: hidden in every bar (kept in the log)

    LIMIT = 1000  # a long session keeps its last thousand reports

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.messages: list[Message] = []

    def post(self, text: str, level: str = "error", source: str = "",
             scope: str = WINDOW) -> Message:
        if level not in STYLES:
            raise ValueError(f"message level must be one of {', '.join(LEVELS)} (got {level!r})")
        message = Message(datetime.now(), level, text, source, scope)
        self.messages.append(message)
        del self.messages[:-self.LIMIT]
        self.posted.emit(message)
        return message

    def dismiss(self, message: Message) -> None:
        self.dismissed.emit(message)

    def as_text(self, messages=None) -> str:
        return "\n".join(m.as_line() for m in (self.messages if messages is None else messages))


class MessageBar(QFrame):
    """Shows the newest message for its dock (``scope``) or for the whole window, with
    its level's icon and colour, until it is dismissed or replaced.

    A bar made without a ``log`` keeps one of its own (a panel used alone). Its
    ``show_message`` posts to the log: with ``everywhere`` (or from a bar whose
    scope is the whole window) the message shows in every bar of the log.
    """

    historyRequested = Signal()

    def __init__(self, log: MessageLog | None = None, scope: str = WINDOW, source: str = "",
                 parent=None):
        super().__init__(parent)
        self.setObjectName("MessageBar")
        self.log = log if log is not None else MessageLog(self)
        self.scope, self.source = scope, source
        self.current: Message | None = None
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        layout.setSpacing(8)
        self.icon = QLabel()
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.history_button = self._button("mdi6.history", "Earlier messages (View ▸ Messages)")
        self.history_button.clicked.connect(self.historyRequested)
        self.close_button = self._button("mdi6.close", "Dismiss")
        self.close_button.clicked.connect(self.dismiss)
        layout.addWidget(self.icon, 0, Qt.AlignTop)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.history_button, 0, Qt.AlignTop)
        layout.addWidget(self.close_button, 0, Qt.AlignTop)
        self.log.posted.connect(self._on_posted)
        self.log.dismissed.connect(self._on_dismissed)
        self.hide()

    def _button(self, icon: str, tip: str) -> QToolButton:
        button = QToolButton()
        button.setIcon(theme.icon(icon))
        button.setAutoRaise(True)
        button.setToolTip(tip)
        return button

    @property
    def kind(self) -> str:
        return self.current.level if self.current is not None else ""

    def show_message(self, text: str, kind: str = "error", source: str = "",
                     everywhere: bool = False) -> Message:
        """Post ``text`` (of level ``kind``, produced by ``source``: the bar's own source
        if not given) to the log; it shows here, and in every bar if ``everywhere``."""
        return self.log.post(text, kind, source or self.source,
                             WINDOW if everywhere else self.scope)

    def message(self) -> str:
        return self.text.text() if self.isVisible() else ""

    def dismiss(self) -> None:
        """Hide the message on show, in every bar that shows it."""
        if self.current is not None:
            self.log.dismiss(self.current)
        self.hide()

    def clear_own(self) -> None:
        """Hide a message of this dock's own (a message for the whole window stays)."""
        if self.current is not None and self.current.scope == self.scope != WINDOW:
            self.dismiss()

    def _on_posted(self, message: Message) -> None:
        if message.scope not in (WINDOW, self.scope):
            return
        self.current = message
        icon, colour, background = STYLES[message.level]
        self.icon.setPixmap(qta.icon(icon, color=colour).pixmap(20, 20))
        self.text.setText(message.text)
        self.setToolTip(f"{message.source or 'Torchwork'}, {message.time:%H:%M:%S}")
        self.setStyleSheet(f"#MessageBar {{ background: {background}; border: 1px solid "
                           f"{colour}; border-radius: 4px; }}")
        self.show()

    def _on_dismissed(self, message: Message) -> None:
        if message is self.current:
            self.current = None
            self.hide()



def with_bar(widget: QWidget, bar: MessageBar) -> QWidget:
    """``widget`` under a message bar: the content of a dock whose panel has no bar of its own."""
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(6, 6, 6, 0)  # as the panels with a bar of their own
    layout.setSpacing(0)
    layout.addWidget(bar)
    layout.addWidget(widget, 1)
    return box
