import gc

import pytest
from pytestqt.qtbot import QtBot

# Widgets a test hands to qtbot.addWidget, held strongly until they are deleted (see
# _delete_test_widgets_now). pytest-qt keeps only a weak reference: a test's window that
# sits in a reference cycle could be taken by the garbage collector after the test
# returns but before pytest-qt closes it, while it is still on screen. The collector then
# clears its pyqtgraph items' Python halves in any order while Qt still paints their C++
# halves, and the first paint segfaults inside shiboken (the 'Internal C++ object
# already deleted' error of a plot curve's boundingRect, reported from a virtual call).
_KEPT: list = []
_add_widget = QtBot.addWidget


def _add_widget_and_keep(self, widget, *, before_close_func=None):
    _KEPT.append(widget)
    _add_widget(self, widget, before_close_func=before_close_func)


QtBot.addWidget = _add_widget_and_keep


@pytest.fixture(autouse=True)
def _delete_test_widgets_now(qapp):
    """Widgets a test leaves (qtbot closes them and deletes them later) are deleted at its
    end, not during the next test's event loop: a window destroyed then closes its combo
    boxes' popups, a close event that reached the next test's window (its deferred docks
    were built before its first frame, a sweep chart's hover went unseen). Only then are
    their Python objects let go (_KEPT), so Qt, not the garbage collector, ends them."""
    yield
    from PySide6.QtCore import QEvent
    from PySide6.QtWidgets import QApplication

    QApplication.sendPostedEvents(None, QEvent.DeferredDelete)
    _KEPT.clear()
    # Collect the test's garbage now, while no thread of the next test runs and no event
    # loop spins: one CI run segfaulted in a collection that started inside the next
    # test's waitSignal while its study reader thread was in SQLAlchemy.
    gc.collect()


@pytest.fixture
def make_window(qtbot, tmp_path):
    """``make(config, workspace=, settings_file=)``: a shown MainWindow on its own settings
    file (tmp_path/ws by default) whose confirmations all answer yes; its run is stopped and
    waited for at the test's end."""
    from PySide6.QtCore import QSettings

    from app.main_window import MainWindow

    windows = []

    def make(config=None, workspace=None, settings_file="settings.ini"):
        settings = QSettings(str(tmp_path / settings_file), QSettings.IniFormat)
        window = MainWindow(config, workspace_dir=workspace or tmp_path / "ws",
                            settings=settings)
        window.confirm = lambda title, text: True
        qtbot.addWidget(window)
        window.show()
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.bridge.stop()
        window.bridge.wait()
