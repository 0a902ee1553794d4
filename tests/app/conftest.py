import pytest


@pytest.fixture(autouse=True)
def _delete_test_widgets_now(qapp):
    """Widgets a test leaves (qtbot closes them and deletes them later) are deleted at its
    end, not during the next test's event loop: a window destroyed then closes its combo
    boxes' popups, a close event that reached the next test's window (its deferred docks
    were built before its first frame, a sweep chart's hover went unseen)."""
    yield
    from PySide6.QtCore import QEvent
    from PySide6.QtWidgets import QApplication

    QApplication.sendPostedEvents(None, QEvent.DeferredDelete)
