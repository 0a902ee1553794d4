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
