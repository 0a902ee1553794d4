"""engine.models: built-in architectures, custom model files, and the output-shape check."""

import textwrap

import pytest
import torch
from torch import nn

from engine.config import ARCHS, RunConfig
from engine.models import ARCHITECTURES, ModelError, build_model
from engine.models.resnet import BasicBlock, ResidualMLPBlock

IMAGE = (1, 8, 8)
TABULAR = (13,)


def config(**values) -> RunConfig:
    cfg = RunConfig()
    for key, value in values.items():
        cfg.set(key.replace("__", "."), value)
    return cfg


def count(model: nn.Module, kind: type) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


def test_registry_offers_exactly_the_archs_the_config_accepts():
    assert set(ARCHITECTURES) == set(ARCHS)


@pytest.mark.parametrize("arch, shape", [("mlp", TABULAR), ("mlp", IMAGE), ("cnn", IMAGE),
                                         ("resnet", TABULAR), ("resnet", IMAGE),
                                         ("cnn", (3, 16, 12))])
def test_each_arch_builds_with_the_right_output_and_trains(arch, shape):
    model = build_model(config(model__arch=arch, model__batch_norm=True, model__dropout=0.1),
                        shape, 7)
    assert model.training
    out = model(torch.randn(5, *shape))
    assert out.shape == (5, 7)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_mlp_layers_follow_hidden_batch_norm_dropout_and_activation():
    plain = build_model(config(model__hidden=[32, 16, 8]), TABULAR, 3)
    assert [m.out_features for m in plain.modules() if isinstance(m, nn.Linear)] == [32, 16, 8, 3]
    assert count(plain, nn.BatchNorm1d) == count(plain, nn.Dropout) == 0
    assert count(plain, nn.ReLU) == 3
    full = build_model(config(model__hidden=[32, 16, 8], model__batch_norm=True,
                              model__dropout=0.25, model__activation="gelu"), TABULAR, 3)
    assert count(full, nn.BatchNorm1d) == 3
    assert [m.p for m in full.modules() if isinstance(m, nn.Dropout)] == [0.25] * 3
    assert count(full, nn.GELU) == 3 and count(full, nn.ReLU) == 0


@pytest.mark.parametrize("name, kind", [("relu", nn.ReLU), ("gelu", nn.GELU), ("silu", nn.SiLU),
                                        ("tanh", nn.Tanh), ("leaky_relu", nn.LeakyReLU)])
@pytest.mark.parametrize("arch, shape", [("mlp", TABULAR), ("cnn", IMAGE), ("resnet", IMAGE),
                                         ("resnet", TABULAR)])
def test_activation_option_is_used(name, kind, arch, shape):
    model = build_model(config(model__arch=arch, model__activation=name), shape, 2)
    assert count(model, kind) >= 2
    others = {nn.ReLU, nn.GELU, nn.SiLU, nn.Tanh, nn.LeakyReLU} - {kind}
    assert not any(isinstance(m, tuple(others)) for m in model.modules())


def test_cnn_stages_follow_channels_and_never_pool_below_2x2():
    model = build_model(config(model__arch="cnn", model__channels=[4, 8, 16, 32]), IMAGE, 10)
    assert [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)] == [4, 8, 16, 32]
    assert count(model, nn.MaxPool2d) == 2  # 8x8 -> 4x4 -> 2x2, then no further pooling
    head = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert head[0].in_features == 32 * 2 * 2 and head[0].out_features == 128


def test_cnn_batch_norm_and_dropout_options_add_those_layers():
    plain = build_model(config(model__arch="cnn"), IMAGE, 10)
    assert count(plain, nn.BatchNorm2d) == count(plain, nn.Dropout) == 0
    full = build_model(config(model__arch="cnn", model__batch_norm=True, model__dropout=0.3),
                       IMAGE, 10)
    assert count(full, nn.BatchNorm2d) == 2 and count(full, nn.Dropout) == 2


def test_cnn_refuses_tabular_input_and_points_to_other_archs():
    with pytest.raises(ModelError, match=r"model\.arch='cnn' needs image input.*\(13,\).*'mlp' "
                                         r"or 'resnet'"):
        build_model(config(model__arch="cnn"), TABULAR, 3)


def test_image_resnet_has_a_block_per_channel_entry_with_projections_where_width_changes():
    model = build_model(config(model__arch="resnet", model__channels=[16, 16, 32]), IMAGE, 10)
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 3
    assert isinstance(blocks[0].shortcut, nn.Identity)  # same width, full resolution
    assert blocks[1].conv1.stride == (2, 2)  # 8x8 -> 4x4: a strided 1x1 projection
    assert isinstance(blocks[1].shortcut[0], nn.Conv2d)
    assert blocks[2].shortcut[0].out_channels == 32
    assert count(model, nn.AdaptiveAvgPool2d) == 1


def test_tabular_resnet_blocks_follow_hidden_and_batch_norm_option():
    model = build_model(config(model__arch="resnet", model__hidden=[32, 32, 16]), TABULAR, 1)
    blocks = [m for m in model.modules() if isinstance(m, ResidualMLPBlock)]
    assert len(blocks) == 3
    assert isinstance(blocks[1].shortcut, nn.Identity)
    assert isinstance(blocks[2].shortcut, nn.Linear) and blocks[2].shortcut.out_features == 16
    assert count(model, nn.LayerNorm) == 4 and count(model, nn.BatchNorm1d) == 0
    bn = build_model(config(model__arch="resnet", model__hidden=[32], model__batch_norm=True,
                            model__dropout=0.2), TABULAR, 1)
    assert count(bn, nn.BatchNorm1d) == 2 and count(bn, nn.LayerNorm) == 0
    assert count(bn, nn.Dropout) == 1


@pytest.mark.parametrize("arch", ["cnn", "resnet"])
def test_conv_models_give_the_same_result_in_channels_last(arch):
    model = build_model(config(model__arch=arch, model__batch_norm=True), (3, 8, 8), 4).eval()
    x = torch.randn(6, 3, 8, 8)
    expected = model(x)
    model = model.to(memory_format=torch.channels_last)
    out = model(x.to(memory_format=torch.channels_last))
    assert torch.allclose(out, expected, atol=1e-5)


def test_initial_weights_follow_the_seed_without_touching_the_global_rng():
    state = torch.get_rng_state()
    a = build_model(config(train__seed=5), TABULAR, 3).state_dict()
    assert torch.equal(torch.get_rng_state(), state)
    b = build_model(config(train__seed=5), TABULAR, 3).state_dict()
    c = build_model(config(train__seed=6), TABULAR, 3).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["0.weight"], c["0.weight"])  # tabular MLP: no Flatten first


def test_unknown_arch_is_a_model_error_listing_the_choices():
    cfg = RunConfig()
    cfg.model.arch = "transformer"
    with pytest.raises(ModelError, match=r"'mlp', 'cnn', 'resnet' or custom:.*'transformer'"):
        build_model(cfg, TABULAR, 3)


def test_model_error_is_a_value_error():
    assert issubclass(ModelError, ValueError)


# --- custom model files ------------------------------------------------------

GOOD = """
from __future__ import annotations
from dataclasses import dataclass
import torch.nn as nn

@dataclass
class Spec:  # needs the module registered while it loads
    width: int = 8

CALLS = []

def build_model(input_shape, num_outputs):
    CALLS.append((input_shape, num_outputs))
    return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0], Spec().width),
                         nn.Linear(Spec().width, num_outputs))
"""


def custom(tmp_path, source: str, name: str = "net.py") -> str:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return f"custom:{path}"


def test_custom_file_builds_the_model_it_defines(tmp_path):
    arch = custom(tmp_path, GOOD)
    model = build_model(config(model__arch=arch), TABULAR, 4)
    assert model(torch.randn(3, 13)).shape == (3, 4)
    assert [m.out_features for m in model if isinstance(m, nn.Linear)] == [8, 4]


def test_custom_path_is_relative_to_the_current_directory(tmp_path, monkeypatch):
    custom(tmp_path, GOOD, "models/net.py")
    monkeypatch.chdir(tmp_path)
    assert build_model(config(model__arch="custom:models/net.py"), TABULAR, 2)


def test_two_custom_files_with_the_same_name_stay_apart(tmp_path):
    wide = custom(tmp_path / "a", GOOD.replace("width: int = 8", "width: int = 30"))
    narrow = custom(tmp_path / "b", GOOD)
    assert build_model(config(model__arch=wide), TABULAR, 2)[1].out_features == 30
    assert build_model(config(model__arch=narrow), TABULAR, 2)[1].out_features == 8


def test_missing_custom_file_shows_the_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    expected = str(tmp_path.resolve() / "nope.py")
    with pytest.raises(ModelError) as info:
        build_model(config(model__arch="custom:nope.py"), TABULAR, 2)
    assert "model.arch='custom:nope.py'" in str(info.value)
    assert f"{expected} not found" in str(info.value)


@pytest.mark.parametrize("source, message", [
    ("def build_model(input_shape, num_outputs)\n    return None\n",
     r"loading .*net\.py failed with SyntaxError"),
    ("import torchwork_no_such_module\n",
     r"loading .*failed with ModuleNotFoundError: No module named 'torchwork_no_such_module'"),
    ("import torch\n",
     r"defines no build_model function: add 'def build_model\(input_shape, num_outputs\)'"),
    ("def build_model(input_shape, num_outputs):\n    raise RuntimeError('bad width')\n",
     r"build_model\(\(13,\), 3\) in .*net\.py raised RuntimeError: bad width"),
    ("def build_model(input_shape, num_outputs):\n    return 42\n",
     r"returned int, not a torch\.nn\.Module"),
    ("import torch.nn as nn\ndef build_model(input_shape, num_outputs):\n"
     "    return nn.Linear(99, num_outputs)\n",
     r"forward pass of a zero batch of shape \(2, 13\) failed with RuntimeError"),
])
def test_each_custom_failure_names_the_arch_and_the_fix(tmp_path, source, message):
    arch = custom(tmp_path, source)
    with pytest.raises(ModelError, match=message) as info:
        build_model(config(model__arch=arch), TABULAR, 3)
    assert str(info.value).startswith(f"model.arch={arch!r}: ")


def test_wrong_output_shape_is_refused(tmp_path):
    arch = custom(tmp_path, "import torch.nn as nn\n"
                            "def build_model(input_shape, num_outputs):\n"
                            "    return nn.Linear(input_shape[0], 5)\n")
    with pytest.raises(ModelError) as info:
        build_model(config(model__arch=arch), TABULAR, 10)
    assert str(info.value) == (f"model.arch={arch!r}: output has shape (2, 5), expected (2, 10) "
                               f"for 10 outputs")


def test_the_check_leaves_the_model_in_training_mode():
    model = build_model(config(model__dropout=0.5), TABULAR, 3)
    assert model.training and all(m.training for m in model.modules())


def test_a_model_fits_pruned_weights_and_refuses_foreign_ones():
    from engine.models.fit import fit_to_state

    cfg = RunConfig()
    cfg.set("model.hidden", [16, 8])
    narrow = RunConfig()
    narrow.set("model.hidden", [5, 3])
    small = build_model(narrow, (4,), 3)
    model = fit_to_state(build_model(cfg, (4,), 3), small.state_dict())
    model.load_state_dict(small.state_dict())
    assert model[0].out_features == 5 and model[2].in_features == 5
    x = torch.randn(6, 4)
    assert torch.equal(model(x), small(x))
    deeper = RunConfig()
    deeper.set("model.hidden", [16, 8, 4])
    with pytest.raises(ModelError, match="do not belong to this architecture .* has unknown"):
        fit_to_state(build_model(cfg, (4,), 3), build_model(deeper, (4,), 3).state_dict())


def test_model_init_starts_a_run_from_a_file_and_keeps_its_zeros(tmp_path):
    from safetensors.torch import save_model

    from engine.models.fit import start_from

    cfg = RunConfig()
    cfg.set("model.hidden", [16])
    source = build_model(cfg, (4,), 3)
    with torch.no_grad():
        source[0].weight[:, :2] = 0
    path = tmp_path / "w.safetensors"
    save_model(source, str(path), metadata={"torchwork": '{"keep_zeros": ["0.weight"]}'})
    model = build_model(cfg, (4,), 3)
    report = start_from(model, path, input_shape=(4,), outputs=3)
    assert sorted(report.loaded) == ["0.bias", "0.weight", "2.bias", "2.weight"]
    assert not report.fresh and not report.resized
    assert torch.equal(model[0].weight, source[0].weight)
    loss = model(torch.randn(8, 4)).sum()
    loss.backward()
    torch.optim.SGD(model.parameters(), lr=1.0).step()
    assert bool((model[0].weight[:, :2] == 0).all())  # a mask keeps the pruned weights at zero
    with pytest.raises(ModelError, match="model.init=.*nope.safetensors not found"):
        start_from(model, tmp_path / "nope.safetensors")
