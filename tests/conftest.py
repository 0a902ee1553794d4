import os

import pytest

from engine.config import RunConfig

# Qt tests run without a display; set before any QApplication exists.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def tiny(**overrides) -> RunConfig:
    """A run that trains in well under a second on the CPU: 2-D moons, a small MLP."""
    cfg = RunConfig()
    base = {"data.dataset": "moons", "data.n_samples": 250, "data.batch_size": 32,
            "model.arch": "mlp", "model.hidden": [16], "optim.name": "adam",
            "optim.lr": 0.01, "train.epochs": 3, "train.log_every": 2, "train.device": "cpu",
            "train.checkpoint_every": 1}
    base.update(overrides)
    for key, value in base.items():
        cfg.set(key, value)
    cfg.validate()
    return cfg


@pytest.fixture
def tiny_config():
    return tiny


@pytest.fixture
def workspace_dir(tmp_path, monkeypatch):
    folder = tmp_path / "ws"
    monkeypatch.setenv("TORCHWORK_WORKSPACE", str(folder))
    return folder


MODEL_TEMPLATE = """import torch
class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(2, 2)
        self.calls = 0
    def forward(self, x):
        self.calls += self.training
        out = self.fc(x)
        {body}
        return out
def build_model(input_shape, num_outputs):
    return Net()
"""


@pytest.fixture
def faulty_model(tmp_path):
    """A custom model file for the 2-feature tiny config whose forward runs ``body``.

    ``body`` sees ``self.calls`` (training forward passes so far) and ``out``;
    returns the model.arch value that loads it.
    """
    def make(body: str, name: str = "faulty_net.py") -> str:
        path = tmp_path / name
        path.write_text(MODEL_TEMPLATE.format(body=body))
        return f"custom:{path}"

    return make


def pytest_sessionfinish(session, exitstatus):
    """Leave the interpreter's shutdown no Qt widget to destroy. pyqtgraph's context menus
    (a QMenu per plot and view box, owned by Python and without a parent) outlive the
    windows of the app tests: a few hundred by the end. Left alone, they are destroyed
    while Python tears its modules down, in no fixed order with the QApplication and
    shiboken's wrappers; one CI run segfaulted there, after every test had passed. Here
    they are closed and deleted while everything is still whole, and collected."""
    import gc
    import sys

    widgets = sys.modules.get("PySide6.QtWidgets")
    app = widgets.QApplication.instance() if widgets is not None else None
    if app is None:
        return
    import shiboken6
    from PySide6.QtCore import QEvent

    for widget in app.topLevelWidgets():
        if shiboken6.isValid(widget):  # closing one may have deleted another
            widget.close()
        if shiboken6.isValid(widget):
            widget.deleteLater()
    app.sendPostedEvents(None, QEvent.DeferredDelete)
    app.processEvents()
    gc.collect()
    app.sendPostedEvents(None, QEvent.DeferredDelete)
