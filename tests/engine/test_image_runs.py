"""Runs on image folders end to end: `torchwork run`, streamed data, the preview command."""

import pytest
from PIL import Image

from engine.cli import main
from engine.config import RunConfig
from engine.training import Trainer
from engine.workspace import Workspace

from .image_folders import make_folder

CONFIG = """
[data]
dataset = "images:pets"
image_size = 12
channels = 3
batch_size = 8
val_fraction = 0.25

[model]
arch = "cnn"
channels = [8]
hidden = [16]

[optim]
lr = 0.01

[augment]
enabled = true

[train]
epochs = 4
device = "cpu"
"""


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHWORK_CACHE", str(tmp_path / "cache"))


def project(tmp_path):
    folder = tmp_path / "project"
    make_folder(folder / "pets", per_class=16)
    (folder / "run.toml").write_text(CONFIG)
    return folder


def test_torchwork_run_trains_on_a_folder_beside_its_config(tmp_path, monkeypatch,
                                                            workspace_dir, capsys):
    folder = project(tmp_path)
    monkeypatch.chdir(tmp_path)  # not the config's folder: the path resolves beside the config
    assert main(["run", str(folder / "run.toml")]) == 0
    with Workspace(workspace_dir) as ws:
        run = ws.list_runs()[0]
    assert run.status == "completed" and run.name == "pets-cnn"
    assert run.config.data.dataset == f"images:{(folder / 'pets').resolve()}"
    assert run.best_val < 0.6  # the classes differ in brightness: it learns them
    capsys.readouterr()
    # the export carries the normalization fitted on the training split, as plain JSON
    out = tmp_path / "model.safetensors"
    assert main(["export", str(run.id), "--format", "safetensors", "--out", str(out)]) == 0
    from engine.export import rebuild_from_safetensors

    _model, meta = rebuild_from_safetensors(out)
    image = meta["preprocessing"]["image"]
    assert meta["input_shape"] == [3, 12, 12] and image["size"] == 12
    assert len(image["mean"]) == 3 and all(0 < s < 1 for s in image["std"])


def test_a_missing_folder_is_one_clear_line(tmp_path, workspace_dir, capsys):
    folder = project(tmp_path)
    (folder / "run.toml").write_text(CONFIG.replace("images:pets", "images:cats"))
    assert main(["run", str(folder / "run.toml")]) == 2
    err = capsys.readouterr().err.strip()
    assert "cats not found: give a folder with one subfolder per class" in err
    assert "Traceback" not in err and len(err.splitlines()) == 1


@pytest.mark.slow
def test_streamed_with_workers_trains_like_in_memory(tmp_path):
    folder = project(tmp_path)
    cfg = RunConfig.load(folder / "run.toml")
    cfg.set("data.dataset", f"images:{folder / 'pets'}")
    cfg.set("augment.enabled", False)
    held = Trainer(cfg).run()
    cfg.set("data.image_loading", "stream")
    cfg.set("data.num_workers", 2)
    trainer = Trainer(cfg)
    assert trainer.train_loader.streamed
    streamed = trainer.run()
    assert streamed.status == "completed"
    assert streamed.best_val == pytest.approx(held.best_val, rel=1e-5)


def test_augment_preview_command_writes_the_grid(tmp_path, capsys):
    folder = project(tmp_path)
    out = tmp_path / "grid.png"
    assert main(["augment-preview", str(folder / "run.toml"), "--out", str(out),
                 "--count", "9"]) == 0
    assert Image.open(out).size == (3 * 14 + 2, 3 * 14 + 2)
    assert "augmentation on" in capsys.readouterr().out
    table = tmp_path / "table.toml"
    table.write_text('[data]\ndataset = "wine"\n')
    assert main(["augment-preview", str(table), "--out", str(out)]) == 2
    assert "is not image data" in capsys.readouterr().err


def test_the_example_folder_script_and_config_work_together(tmp_path):
    import importlib.util
    from pathlib import Path

    examples = Path(__file__).parents[2] / "examples"
    spec = importlib.util.spec_from_file_location("make_image_folder",
                                                  examples / "make_image_folder.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    folder = script.make_image_folder(tmp_path / "digits-images", count=120)
    modes = {Image.open(p).mode for p in folder.rglob("*.*")}
    sizes = {Image.open(p).size for p in folder.rglob("*.*")}
    assert modes == {"L", "RGB"} and len(sizes) > 5
    cfg = RunConfig.load(examples / "images-folder.toml")
    cfg.set("data.dataset", f"images:{folder}")
    from engine.data import load_dataset

    bundle = load_dataset(cfg)
    assert bundle.input_shape == (1, 16, 16) and bundle.class_names == [str(d) for d in range(10)]


def test_paths_of_a_config_resolve_beside_it(tmp_path, monkeypatch):
    from engine.run_files import resolve_beside

    folder = project(tmp_path)
    (folder / "net.py").write_text("")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "w.safetensors").write_bytes(b"")
    monkeypatch.chdir(elsewhere)
    cfg = RunConfig.load(folder / "run.toml")
    cfg.set("model.arch", "custom:net.py")
    cfg.set("model.init", "w.safetensors")  # not beside the config: the current folder's
    resolve_beside(cfg, folder / "run.toml")
    assert cfg.data.dataset == f"images:{(folder / 'pets').resolve()}"
    assert cfg.model.arch == f"custom:{(folder / 'net.py').resolve()}"
    assert cfg.model.init == str((elsewhere / "w.safetensors").resolve())
    cfg.set("data.dataset", "digits")  # a built-in set names no file
    resolve_beside(cfg, folder / "run.toml")
    assert cfg.data.dataset == "digits"
