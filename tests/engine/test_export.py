"""Export: each format round-trips and verifies; damaged, mismatched or failing exports are
refused and leave nothing behind; `torchwork export` exit codes."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from safetensors.torch import save_model
from torch import nn

from engine.cli import main
from engine.export import (
    FORMATS,
    ExportInputError,
    VerificationError,
    build_from_meta,
    export_model,
    load_run_model,
    read_safetensors_meta,
    rebuild_from_safetensors,
    verify,
)
from engine.export import formats as export_formats
from engine.export import verification as export_verification
from engine.workspace import Workspace
from tests.conftest import tiny

SUFFIX = {"safetensors": ".safetensors", "pt2": ".pt2", "onnx": ".onnx"}
CNN = {"data.dataset": "digits", "model.arch": "cnn", "model.channels": [4],
       "model.hidden": [16], "model.batch_norm": True, "train.epochs": 1,
       "train.max_steps": 4}


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A workspace with two trained runs: 1 is the tiny MLP on moons, 2 a small digits CNN."""
    folder = tmp_path_factory.mktemp("export") / "ws"
    for i, overrides in enumerate(({}, CNN)):
        path = folder.parent / f"run{i}.toml"
        tiny(**overrides).save(path)
        assert main(["run", str(path), "--workspace", str(folder)]) == 0
    return folder


@pytest.fixture(scope="module")
def mlp(ws):
    return load_run_model(ws, 1)


@pytest.fixture(scope="module")
def cnn(ws):
    return load_run_model(ws, "0002-digits-cnn")


@pytest.fixture(scope="module")
def exported(request, tmp_path_factory):
    """exported(which, fmt) -> report: each run's export in each format, written once."""
    folder = tmp_path_factory.mktemp("exported")
    done = {}

    def get(which, fmt):
        if (which, fmt) not in done:
            loaded = request.getfixturevalue(which)
            out = folder / which / f"model{SUFFIX[fmt]}"
            done[which, fmt] = export_model(loaded.model, loaded.example, fmt, out,
                                            meta=loaded.meta)
        return done[which, fmt]

    return get


def out_path(tmp_path, fmt, name="model"):
    return tmp_path / "exports" / f"{name}{SUFFIX[fmt]}"


def reload_outputs(path, fmt, x):
    """Outputs of the file as a user outside Torchwork's verification would get them."""
    if fmt == "safetensors":
        model, _ = rebuild_from_safetensors(path)
        with torch.no_grad():
            return model(x)
    if fmt == "pt2":
        with torch.no_grad():
            return torch.export.load(path).module()(x)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"input": x.numpy()})[0])


def test_loaded_run_holds_trained_weights_and_held_out_rows(mlp, ws):
    with Workspace(ws) as w:
        run = w.get_run(1)
    state = torch.load(run.checkpoint, weights_only=True)["model"]
    for name, value in mlp.model.state_dict().items():
        assert torch.equal(value, state[name])
    assert not mlp.model.training
    assert torch.equal(mlp.example, mlp.bundle.x_val[:len(mlp.example)])
    train_rows = {tuple(r) for r in mlp.bundle.x_train.tolist()}
    assert not any(tuple(r) in train_rows for r in mlp.example.tolist())
    assert mlp.meta["input_shape"] == [2] and mlp.meta["num_outputs"] == 2
    assert mlp.meta["run"] == {"id": 1, "name": "moons-mlp", "step": run.steps}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("which", ["mlp", "cnn"])
def test_each_format_round_trips_and_verifies(fmt, which, request, exported):
    loaded = request.getfixturevalue(which)
    report = exported(which, fmt)
    out = report.path
    assert out.name == f"model{SUFFIX[fmt]}" and report.format == fmt
    assert report.extra_files == [] and report.size_bytes == out.stat().st_size > 0
    assert report.batch == len(loaded.example)
    assert 0 <= report.max_abs_diff <= report.tolerance
    assert not [p for p in out.parent.iterdir() if p.suffix not in SUFFIX.values()]  # no staging
    # another batch size than the one traced: the batch dimension is dynamic
    x = loaded.bundle.x_val[-3:]
    with torch.no_grad():
        want = loaded.model(x)
    torch.testing.assert_close(reload_outputs(out, fmt, x), want, atol=1e-5, rtol=1e-5)


def test_safetensors_carries_what_rebuilds_and_feeds_the_model(cnn, exported):
    model, meta = rebuild_from_safetensors(exported("cnn", "safetensors").path)
    prep = meta["preprocessing"]
    assert meta["rebuild"] == "config" and meta["input_shape"] == [1, 8, 8]
    assert prep["class_names"] == [str(i) for i in range(10)]
    # the stored scaling turns raw pixels into exactly the rows the model was validated on
    raw = np.asarray(cnn.bundle.x_val[:4].reshape(4, -1).double())
    raw = raw * np.asarray(prep["feature_std"]) + np.asarray(prep["feature_mean"])
    again = (raw - np.asarray(prep["feature_mean"])) / np.asarray(prep["feature_std"])
    x = torch.from_numpy(again).float().reshape(-1, *meta["input_shape"])
    torch.testing.assert_close(x, cnn.bundle.x_val[:4], atol=1e-5, rtol=0)
    with torch.no_grad():
        assert torch.equal(model(x), cnn.model(x))


def test_pt2_and_onnx_carry_the_metadata(mlp, exported):
    onnx_out, pt2_out = exported("mlp", "onnx").path, exported("mlp", "pt2").path
    props = {p.key: p.value for p in onnx.load(str(onnx_out)).metadata_props}
    assert json.loads(props["torchwork"])["config"] == mlp.config.to_toml()
    extra = {"torchwork.json": ""}
    torch.export.load(pt2_out, extra_files=extra)
    assert json.loads(extra["torchwork.json"])["input_shape"] == [2]


@pytest.mark.parametrize("fmt", FORMATS)
def test_truncated_file_fails_verification_clearly(fmt, mlp, exported, tmp_path):
    out = tmp_path / f"damaged{SUFFIX[fmt]}"
    data = exported("mlp", fmt).path.read_bytes()
    out.write_bytes(data[:len(data) // 2])
    with pytest.raises(VerificationError, match="damaged") as err:
        verify(out, fmt, mlp.model, mlp.example)
    assert out.name in str(err.value)


def test_weights_of_another_architecture_do_not_fit(mlp, tmp_path):
    out = out_path(tmp_path, "safetensors")
    export_model(mlp.model, mlp.example, "safetensors", out, meta=mlp.meta)
    meta = read_safetensors_meta(out)
    deeper = build_from_meta({**meta, "config": tiny(**{"model.hidden": [24, 24]}).to_toml()})
    save_model(deeper, str(out), metadata={"torchwork": json.dumps(meta)})
    with pytest.raises(VerificationError, match="do not fit the model its config builds"):
        verify(out, "safetensors", mlp.model, mlp.example)
    # a wider layer does fit (as pruned channels do), but the file is still another model
    wider = build_from_meta({**meta, "config": tiny(**{"model.hidden": [24]}).to_toml()})
    save_model(wider, str(out), metadata={"torchwork": json.dumps(meta)})
    with pytest.raises(VerificationError, match="does not reproduce the model"):
        verify(out, "safetensors", mlp.model, mlp.example)


@pytest.mark.parametrize("fmt", FORMATS)
def test_file_of_another_model_fails_verification(fmt, mlp, tmp_path):
    other = build_from_meta(mlp.meta).eval()  # same architecture, untrained weights
    out = out_path(tmp_path, fmt)
    export_model(other, mlp.example, fmt, out, meta=mlp.meta)
    with pytest.raises(VerificationError, match="does not reproduce the model"):
        verify(out, fmt, mlp.model, mlp.example)


class Noisy(nn.Module):
    """A model whose output changes on every call: no export of it can verify."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)

    def forward(self, x):
        return self.fc(x) + torch.rand_like(x)


@pytest.mark.parametrize("fmt", FORMATS)
def test_failed_verification_leaves_nothing_and_keeps_the_old_file(fmt, mlp, tmp_path):
    out = out_path(tmp_path, fmt)
    out.parent.mkdir()
    out.write_bytes(b"the previous export")
    with pytest.raises(VerificationError):
        export_model(Noisy(), mlp.example, fmt, out, overwrite=True)
    assert out.read_bytes() == b"the previous export"
    assert [p.name for p in out.parent.iterdir()] == [out.name]


def test_existing_file_is_refused_unless_overwriting(mlp, tmp_path):
    out = out_path(tmp_path, "safetensors")
    out.parent.mkdir()
    out.write_bytes(b"keep me")
    with pytest.raises(ExportInputError, match="already exists"):
        export_model(mlp.model, mlp.example, "safetensors", out, meta=mlp.meta)
    assert out.read_bytes() == b"keep me"
    report = export_model(mlp.model, mlp.example, "safetensors", out, meta=mlp.meta,
                          overwrite=True)
    assert report.size_bytes == out.stat().st_size and out.read_bytes() != b"keep me"


def test_onnx_external_data_is_kept_beside_and_reported(mlp, tmp_path, monkeypatch):
    monkeypatch.setattr(export_formats, "ONNX_EXTERNAL_DATA_BYTES", 0)
    # wide enough that its weights are not inlined as small tensors
    wide = build_from_meta({**mlp.meta, "config": tiny(**{"model.hidden": [160]}).to_toml()})
    out = out_path(tmp_path, "onnx")
    report = export_model(wide.eval(), mlp.example, "onnx", out)
    assert report.extra_files and all(p.parent == out.parent for p in report.extra_files)
    assert report.size_bytes == sum(p.stat().st_size for p in [out, *report.extra_files])
    verify(out, "onnx", wide, mlp.example)  # loads the data from its new place
    for p in report.extra_files:
        p.unlink()
    with pytest.raises(VerificationError, match="external data"):
        verify(out, "onnx", wide, mlp.example)


def test_pruned_model_rebuilds_from_its_config_in_its_pruned_sizes(cnn, tmp_path):
    from engine.compression.prune import prune_model

    pruned = prune_model(cnn.model, "structured", 0.5, example=cnn.example).model
    out = out_path(tmp_path, "safetensors")
    report = export_model(pruned, cnn.example, "safetensors", out, meta=cnn.meta)
    assert not any("Weights only" in n for n in report.notes)
    rebuilt, meta = rebuild_from_safetensors(out)
    assert meta["rebuild"] == "config"
    assert rebuilt[0].out_channels == pruned[0].out_channels < cnn.model[0].out_channels
    assert torch.allclose(rebuilt(cnn.example), pruned(cnn.example), atol=1e-6)


def test_weights_of_another_architecture_are_exported_as_weights_only(mlp, tmp_path):
    deeper = build_from_meta({**mlp.meta, "config": tiny(**{"model.hidden": [8, 8]}).to_toml()})
    out = out_path(tmp_path, "safetensors")
    report = export_model(deeper.eval(), mlp.example, "safetensors", out, meta=mlp.meta)
    assert any("Weights only" in n and "differ from what its config builds" in n
               for n in report.notes)
    assert read_safetensors_meta(out)["rebuild"] is None
    with pytest.raises(ExportInputError, match="cannot be rebuilt from a config"):
        rebuild_from_safetensors(out)


def test_runs_that_cannot_be_exported(ws, tmp_path):
    with pytest.raises(ExportInputError, match="no run 99"):
        load_run_model(ws, 99)
    other = tmp_path / "ws"
    with Workspace(other) as w:
        run = w.create_run(tiny())
    with pytest.raises(ExportInputError, match="has no checkpoint yet"):
        load_run_model(other, run.id)


def test_cli_offers_the_formats_of_the_api():
    from engine.commands import export as command

    assert command.FORMATS == FORMATS


def test_cli_exports_and_reports(ws, tmp_path, capsys):
    out = tmp_path / "m.pt2"
    assert main(["export", "1", "--workspace", str(ws), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert str(out) in text and "held-out batch of 50" in text and "max abs difference" in text
    assert main(["export", "1", "--workspace", str(ws), "--out", str(out), "--json",
                 "--force", "--format", "pt2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["run"]["id"] == 1 and report["size_bytes"] == out.stat().st_size
    assert report["max_abs_diff"] <= report["tolerance"]


@pytest.mark.parametrize("args, message", [
    (["7", "--out", "new.pt2"], "no run 7"),
    (["1", "--out", "taken.pt2"], "already exists: pass --force"),
    (["1", "--out", "model.bin"], "cannot tell the format"),
])
def test_cli_bad_input_exits_2(args, message, ws, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "taken.pt2").write_bytes(b"x")
    assert main(["export", *args, "--workspace", str(ws)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("torchwork export: ") and message in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.pt2"]


def test_cli_failed_verification_exits_1(ws, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(export_verification.TOLERANCE, "pt2", -1.0)  # nothing can pass
    out = tmp_path / "m.pt2"
    assert main(["export", "2", "--workspace", str(ws), "--out", str(out)]) == 1
    assert "does not reproduce the model" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_run_trained_with_a_relative_workspace_exports_from_elsewhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tiny(**{"train.epochs": 1}).save("run.toml")
    assert main(["run", "run.toml", "--workspace", "ws"]) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    loaded = load_run_model(tmp_path / "ws", 1)
    assert loaded.step == 7 and not loaded.model.training
