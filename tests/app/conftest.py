import pytest

from app import gc_guard


@pytest.fixture(autouse=True, scope="session")
def collect_garbage_on_the_gui_thread(qapp):
    """As the window does (app/gc_guard.py): panels tested alone start worker threads too."""
    gc_guard.install(qapp)
