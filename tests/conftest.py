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
