"""The button row of the app's dialogs: the action named by what it does, and Cancel."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QPushButton


def ok_cancel(dialog: QDialog, action: str) -> tuple[QDialogButtonBox, QPushButton]:
    """An OK/Cancel row whose OK reads ``action`` ("Start", "Export") and accepts
    ``dialog``; Cancel rejects it. Returns the row and its action button."""
    buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
    ok = buttons.button(QDialogButtonBox.Ok)
    ok.setText(action)
    buttons.accepted.connect(dialog.accept)
    buttons.rejected.connect(dialog.reject)
    return buttons, ok
