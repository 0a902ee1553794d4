"""View ▸ Messages: every report of this session, newest first, with its time, level and the
action that produced it; it follows the log while open, and copies as plain text."""

from __future__ import annotations

import qtawesome as qta
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QTableWidgetItem,
    QVBoxLayout,
)

from .message_bar import STYLES, Message, MessageLog
from .tables import report_table


class MessageHistory(QDialog):
    """A non-modal list of the log's messages; Copy (or Ctrl+C) copies the selected rows,
    or all of them when none is selected."""

    COLUMNS = ("Time", "Level", "From", "Message")

    def __init__(self, log: MessageLog, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Messages")
        self.resize(900, 420)
        self.log = log
        self.rows: list[Message] = []  # newest first, as the table shows them
        self.table = report_table(self.COLUMNS, {3: QHeaderView.Stretch},
                                  default=QHeaderView.ResizeToContents)
        self.table.setWordWrap(True)
        self.empty = QLabel("No messages yet in this session.")
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        self.copy_button = buttons.addButton("Copy", QDialogButtonBox.ActionRole)
        self.copy_button.setToolTip("Copy the selected messages (all, if none is selected) "
                                    "as text")
        self.copy_button.clicked.connect(self.copy)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.empty)
        layout.addWidget(self.table, 1)
        layout.addWidget(buttons)
        for message in log.messages:
            self._add(message)
        log.posted.connect(self._add)

    def _add(self, message: Message) -> None:
        self.rows.insert(0, message)
        self.table.insertRow(0)
        icon, colour, _background = STYLES[message.level]
        level = QTableWidgetItem(qta.icon(icon, color=colour), message.level)
        cells = (QTableWidgetItem(f"{message.time:%H:%M:%S}"), level,
                 QTableWidgetItem(message.source or "Torchwork"), QTableWidgetItem(message.text))
        cells[0].setToolTip(f"{message.time:%Y-%m-%d %H:%M:%S}")
        cells[3].setToolTip(message.text)
        for col, item in enumerate(cells):
            item.setTextAlignment(Qt.AlignLeft | Qt.AlignVCenter)
            self.table.setItem(0, col, item)
        self.table.resizeRowToContents(0)
        self.empty.hide()

    def selected(self) -> list[Message]:
        rows = sorted(index.row() for index in self.table.selectionModel().selectedRows())
        return [self.rows[r] for r in rows] or list(self.rows)

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.log.as_text(reversed(self.selected())))

    def keyPressEvent(self, event) -> None:
        if event.matches(QKeySequence.Copy):
            self.copy()
        else:
            super().keyPressEvent(event)
