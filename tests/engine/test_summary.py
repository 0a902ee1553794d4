"""Model summary (engine.summary, `torchwork summary`): FLOPs as torch's FlopCounterMode counts
them, parameters trainable and frozen, output shapes and activation bytes, custom models."""

import json

import pytest
import torch
from safetensors.torch import save_model
from torch.utils.flop_counter import FlopCounterMode

from engine.cli import main
from engine.config import ConfigError
from engine.data import load_dataset
from engine.models import build_model
from engine.summary import summarize, table_text
from engine.training.setup import num_outputs
from tests.conftest import tiny

BUILT_IN = {
    "mlp": {"data.dataset": "moons", "model.hidden": [16, 8]},
    "cnn": {"data.dataset": "digits", "model.channels": [4, 8]},
    "resnet": {"data.dataset": "digits", "model.channels": [4, 8]},
}


def built_in(arch: str, **overrides):
    return tiny(**{"model.arch": arch, "data.batch_size": 16, **BUILT_IN[arch], **overrides})


def real_model(cfg):
    data = load_dataset(cfg)
    model = build_model(cfg, tuple(data.input_shape), num_outputs(cfg, data.num_classes))
    return model.train(), torch.randn(cfg.data.batch_size, *data.input_shape)


@pytest.mark.parametrize("arch", list(BUILT_IN))
def test_flops_agree_with_flop_counter_mode_for_the_built_in_models(arch):
    cfg = built_in(arch)
    summary = summarize(cfg)
    model, x = real_model(cfg)
    with FlopCounterMode(display=False) as forward:
        model(x)
    with FlopCounterMode(display=False) as step:
        model(x).sum().backward()
    assert summary.forward_flops == forward.get_total_flops() > 0
    assert summary.train_step_flops == step.get_total_flops() > summary.forward_flops
    assert sum(row.flops for row in summary.layers) == summary.forward_flops
    # each layer's own count is FlopCounterMode's count for that module
    counts = {name: sum(ops.values()) for name, ops in forward.get_flop_counts().items()}
    root = type(model).__name__
    for row in summary.layers:
        if row.leaf:
            assert row.flops == counts.get(f"{root}.{row.name}", 0), row.name
    assert summary.method == "fake"


@pytest.mark.parametrize("arch", list(BUILT_IN))
def test_parameters_are_the_models_own(arch):
    cfg = built_in(arch)
    summary = summarize(cfg)
    model, _ = real_model(cfg)
    total = sum(p.numel() for p in model.parameters())
    assert summary.total_params == summary.trainable_params == total
    assert sum(r.trainable for r in summary.layers) == total
    assert summary.size_bytes() == {"fp32": 4 * total, "bf16": 2 * total, "fp16": 2 * total,
                                    "int8": total}


def test_frozen_layers_are_counted_apart_and_leave_the_backward_smaller():
    plain = summarize(built_in("cnn"))
    frozen = summarize(built_in("cnn", **{"model.freeze": ["0"]}))
    conv = sum(p.numel() for p in real_model(built_in("cnn"))[0][0].parameters())
    first = {r.name: r for r in frozen.layers}["0"]
    assert first.type == "Conv2d" and first.frozen == conv > 0 and first.trainable == 0
    assert frozen.frozen_params == conv
    assert frozen.total_params == plain.total_params
    assert frozen.trainable_params == plain.trainable_params - conv
    assert frozen.forward_flops == plain.forward_flops
    assert frozen.backward_flops < plain.backward_flops  # no weight gradient for the first conv


def test_a_model_started_from_a_file_is_summarized_with_its_weights_frozen(tmp_path):
    cfg = built_in("mlp")
    model, _ = real_model(cfg)
    save_model(model, str(tmp_path / "w.safetensors"))
    summary = summarize(built_in("mlp", **{"model.init": str(tmp_path / "w.safetensors"),
                                           "model.freeze": ["0"]}))
    assert summary.method == "real"
    assert summary.frozen_params == 2 * 16 + 16
    assert summary.total_params == sum(p.numel() for p in model.parameters())


def test_output_shapes_and_activation_bytes_of_a_known_model():
    summary = summarize(built_in("mlp", **{"model.dropout": 0.0}))  # moons: 2 inputs, 2 classes
    rows = {r.name: r for r in summary.layers}
    assert summary.input_shape == [2] and summary.batch_size == 16
    assert [(r.name, r.type, r.output_shape) for r in summary.layers] == [
        ("", "Sequential", [16, 2]), ("0", "Linear", [16, 16]), ("1", "ReLU", [16, 16]),
        ("2", "Linear", [16, 8]), ("3", "ReLU", [16, 8]), ("4", "Linear", [16, 2])]
    assert rows["0"].trainable == 2 * 16 + 16 and rows["0"].flops == 2 * 16 * 2 * 16
    assert rows["0"].activation_bytes == 16 * 16 * 4
    assert rows[""].activation_bytes is None  # the model's output is its last layer's
    assert summary.activation_bytes == 4 * 16 * (16 + 16 + 8 + 8 + 2)


def test_activations_follow_the_mixed_precision():
    full = summarize(built_in("mlp"))
    half = summarize(built_in("mlp", **{"precision.amp": "bf16"}))
    linear = {r.name: r for r in half.layers}["0"]
    assert half.activation_dtype == "bfloat16"
    assert linear.activation_bytes == 16 * 16 * 2
    assert half.activation_bytes == full.activation_bytes // 2


def test_the_batch_is_the_configured_one_up_to_the_training_rows():
    assert summarize(built_in("mlp", **{"data.batch_size": 64})).layers[1].output_shape[0] == 64
    capped = summarize(built_in("mlp", **{"data.batch_size": 4096}))
    assert capped.batch_size == capped.layers[1].output_shape[0] < 250


CUSTOM = """import torch
from torch import nn

class Net(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.body = nn.Linear(n_in, 12)
        self.head = nn.Linear(12, n_out)

    def forward(self, x):
        h = self.body(x.flatten(1))
        {line}
        return self.head(torch.relu(h))

def build_model(input_shape, num_outputs):
    return Net(input_shape[0], num_outputs)
"""


@pytest.mark.parametrize("line, method", [("pass", "fake"),
                                          ("h = h * (1.0 if h.sum().item() < 1e9 else 0.0)",
                                           "real")])
def test_a_custom_model_file_works(tmp_path, line, method):
    path = tmp_path / "net.py"
    path.write_text(CUSTOM.format(line=line))
    summary = summarize(tiny(**{"model.arch": f"custom:{path}", "data.batch_size": 16}))
    assert summary.method == method  # .item() reads a value: fake tensors have none
    rows = {r.name: r for r in summary.layers}
    assert rows[""].type == "Net" and rows["body"].output_shape == [16, 12]
    assert rows["head"].output_shape == [16, 2]
    assert summary.forward_flops == 2 * 16 * (2 * 12 + 12 * 2)
    assert summary.total_params == (2 * 12 + 12) + (12 * 2 + 2)


def test_a_config_the_run_refuses_is_refused_with_its_message():
    with pytest.raises(ConfigError, match="model.freeze: 'nope' matches no parameter"):
        summarize(built_in("mlp", **{"model.freeze": ["nope"]}))


def write(tmp_path, cfg):
    path = tmp_path / "run.toml"
    cfg.save(path)
    return str(path)


def test_cli_json_is_one_object_and_the_table_has_the_totals(tmp_path, capsys):
    path = write(tmp_path, built_in("cnn"))
    assert main(["summary", path, "--json", "--set", "data.batch_size=8"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["batch_size"] == 8 and result["layers"][1]["output_shape"] == [8, 4, 8, 8]
    assert result["total_params"] == sum(r["trainable"] + r["frozen"] for r in result["layers"])
    assert result["forward_flops"] == sum(r["flops"] for r in result["layers"])
    assert set(result["size_bytes"]) == {"fp32", "bf16", "fp16", "int8"}
    assert main(["summary", path]) == 0
    text = capsys.readouterr().out
    assert text == table_text(summarize(built_in("cnn")).to_dict()) + "\n"
    assert "Conv2d" in text and f"Parameters: {result['total_params']:,}" in text


BROKEN = {
    "nothing": ("x = 1\n", 2, "defines no build_model function"),
    "batch": (CUSTOM.format(line="assert x.shape[0] <= 2, 'only two at a time'"), 1,
              "a forward pass at batch 16 failed (AssertionError: only two at a time)"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_cli_bad_model_is_one_clear_line(tmp_path, capsys, case):
    source, code, message = BROKEN[case]
    (tmp_path / "net.py").write_text(source)
    path = write(tmp_path, tiny(**{"model.arch": f"custom:{tmp_path / 'net.py'}",
                                   "data.batch_size": 16}))
    assert main(["summary", path]) == code
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("torchwork summary: model.arch=")
    assert message in lines[0] and captured.out == ""


def test_model_init_naming_a_run_is_found_in_the_workspace_given(tmp_path, workspace_dir,
                                                                  capsys):
    from engine.workspace import Workspace

    trained = write(tmp_path, tiny(**{"train.max_steps": 2}))
    assert main(["run", trained, "--json"]) == 0
    with Workspace(workspace_dir) as ws:
        run = ws.list_runs()[0].id
    capsys.readouterr()
    path = write(tmp_path, tiny(**{"model.init": str(run), "model.freeze": ["0"]}))
    assert main(["summary", path, "--json", "--workspace", str(workspace_dir)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["method"] == "real" and result["frozen_params"] == 2 * 16 + 16
    assert main(["summary", path, "--workspace", str(tmp_path / "empty")]) == 2
    assert "model.init=" in capsys.readouterr().err
