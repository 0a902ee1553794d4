"""Damaged and hostile files: a checkpoint that lacks or mangles a part, bytes that are no
checkpoint, pickles that would run code, and an export whose header names code to run.

Each gets one line that names the file and what is wrong, from every command that reads it
(resume, export, compression, distillation), and no code a file names ever runs.
"""

import os
import pickle
import zipfile

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from engine.cli import main
from engine.compression.teacher import load_teacher
from engine.config import ConfigError
from engine.export import ExportInputError, export_model, load_run_model, rebuild_from_safetensors
from engine.models.fit import META_KEY
from engine.training import CheckpointError, Trainer
from engine.training.checkpoint import WEIGHTS, load_checkpoint
from tests.conftest import tiny

# --- a run to damage ------------------------------------------------------------------


def train(folder, **overrides):
    """Train a tiny run into workspace ``folder``; its checkpoint path and config file."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"run{len(list(folder.glob('*.toml')))}.toml"
    tiny(**{"train.epochs": 2, **overrides}).save(path)
    assert main(["run", str(path), "--workspace", str(folder / "ws"), "--max-steps", "9",
                 "--json"]) == 0
    return sorted((folder / "ws" / "runs").glob("*/checkpoints/last.pt"))[-1], path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    checkpoint, config = train(tmp_path_factory.mktemp("hostile"))
    return checkpoint, torch.load(checkpoint, weights_only=True), config


@pytest.fixture
def mangled(trained, tmp_path):
    """mangled(change) -> path of a copy of the run's checkpoint with ``change(state)`` applied."""
    def make(change, name="last.pt"):
        state = {k: (dict(v) if isinstance(v, dict) else v) for k, v in trained[1].items()}
        change(state)
        out = tmp_path / name
        torch.save(state, out)
        return out
    return make


def setter(part, key, value):
    def change(state):
        state[part][key] = value
    return change


def dropper(part, key=None):
    def change(state):
        if key is None:
            del state[part]
        else:
            del state[part][key]
    return change


def replacer(part, value):
    def change(state):
        state[part] = value
    return change


MANGLES = {  # id: (change, what the message must name)
    "no progress": (dropper("progress"), "lacks 'progress'"),
    "no rng": (dropper("rng"), "lacks 'rng'"),
    "no model": (dropper("model"), "lacks 'model'"),
    "rng not a dict": (replacer("rng", [1, 2]), "mangled 'rng'"),
    "rng.torch of the wrong size": (setter("rng", "torch", torch.zeros(10, dtype=torch.uint8)),
                                    "mangled 'rng.torch'"),
    "rng.python a string": (setter("rng", "python", "seed"), "mangled 'rng.python'"),
    "rng.numpy floats": (setter("rng", "numpy", torch.zeros(624)), "mangled 'rng.numpy'"),
    "rng.numpy too short": (setter("rng", "numpy", torch.zeros(3, dtype=torch.int64)),
                            "mangled 'rng.numpy'"),
    "rng.numpy_pos a string": (setter("rng", "numpy_pos", "624"), "mangled 'rng.numpy_pos'"),
    "no rng.python": (dropper("rng", "python"), "mangled 'rng.python'"),
    "step a string": (setter("progress", "step", "9"), "mangled 'progress.step'"),
    "step a tensor": (setter("progress", "step", torch.tensor(9)), "mangled 'progress.step'"),
    "step negative": (setter("progress", "step", -1), "mangled 'progress.step'"),
    "epoch a float": (setter("progress", "epoch", 2.0), "mangled 'progress.epoch'"),
    "batch_in_epoch a bool": (setter("progress", "batch_in_epoch", True),
                              "mangled 'progress.batch_in_epoch'"),
    "wall_s a string": (setter("progress", "wall_s", "1s"), "mangled 'progress.wall_s'"),
    "no progress.epoch": (dropper("progress", "epoch"), "mangled 'progress.epoch'"),
    "model a list": (replacer("model", [torch.zeros(2)]), "mangled 'model'"),
    "a weight a string": (setter("model", "0.weight", "w"), "mangled 'model.0.weight'"),
    "optimizer a string": (replacer("optimizer", "adam"), "mangled 'optimizer'"),
    "optimizer without groups": (dropper("optimizer", "param_groups"),
                                 "mangled 'optimizer.param_groups'"),
    "handlers a list": (replacer("handlers", []), "mangled 'handlers'"),
    "config not text": (replacer("config", {"model": "mlp"}), "mangled 'config'"),
    "version a string": (replacer("version", "1"), "mangled format version"),
}
EXPORT_NEEDS = ("no progress", "no model", "step a string", "step a tensor", "model a list",
                "a weight a string", "version a string")


def assert_one_line(message, path, part):
    assert str(path) in message and part in message, message
    assert "\n" not in message and "Traceback" not in message
    assert "start the run again" in message or "use an earlier checkpoint" in message


@pytest.mark.parametrize("case", MANGLES)
def test_resume_names_the_missing_or_mangled_part(case, trained, mangled):
    change, part = MANGLES[case]
    if case == "a weight a string":
        assert "0.weight" in trained[1]["model"]  # the key the case mangles
    path = mangled(change)
    trainer = Trainer(tiny(**{"train.epochs": 2}))
    rng_before = torch.get_rng_state()
    with pytest.raises(CheckpointError) as info:
        trainer.load_checkpoint(path)
    assert_one_line(str(info.value), path, part)
    assert torch.equal(torch.get_rng_state(), rng_before)  # refused whole, nothing applied


@pytest.mark.parametrize("part, value", [("wait", "2"), ("best_epoch", -1), ("best", "0.3"),
                                         ("best_weights", [1, 2])])
def test_a_mangled_early_stopping_state_is_named_at_resume(tmp_path, part, value):
    config = {"train.epochs": 3, "regularization.early_stopping_patience": 5}
    checkpoint, _ = train(tmp_path, **config)
    state = torch.load(checkpoint, weights_only=True)
    assert state["handlers"]["early_stopping"]["best_weights"]  # the part is there to mangle
    state["handlers"]["early_stopping"][part] = value
    torch.save(state, checkpoint)
    with pytest.raises(CheckpointError) as info:
        Trainer(tiny(**config)).load_checkpoint(checkpoint)
    message = str(info.value)
    assert f"early_stopping.{part} must be" in message and str(checkpoint) in message
    assert "\n" not in message


@pytest.mark.parametrize("case", EXPORT_NEEDS)
def test_export_reads_through_the_same_check(case, mangled):
    change, part = MANGLES[case]
    path = mangled(change)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, map_location="cpu", need=WEIGHTS)
    assert_one_line(str(info.value), path, part)


def test_export_needs_only_the_weights(mangled):
    path = mangled(replacer("rng", None))  # resume would refuse it; export does not need it
    assert load_checkpoint(path, need=WEIGHTS)["progress"]["step"] == 9
    with pytest.raises(CheckpointError, match="mangled 'rng'"):
        load_checkpoint(path)


# --- every command gives the one line -------------------------------------------------


@pytest.fixture
def damaged_run(tmp_path):
    """A fresh run whose last.pt lacks 'progress': (workspace, config file, checkpoint)."""
    checkpoint, config = train(tmp_path)
    state = torch.load(checkpoint, weights_only=True)
    del state["progress"]
    torch.save(state, checkpoint)
    return tmp_path / "ws", config, checkpoint


def one_error_line(capsys, command):
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"torchwork {command}: ") and "\n" not in err, err
    return err


@pytest.mark.parametrize("command, code", [
    (["resume", "1"], 1),
    (["export", "1", "--out", "{tmp}/m.safetensors"], 2),
    (["compress", "1", "--prune", "none", "--quantize", "torch"], 2),
])
def test_cli_says_what_is_missing_in_one_line(command, code, damaged_run, tmp_path, capsys):
    ws, _, checkpoint = damaged_run
    capsys.readouterr()
    argv = [a.format(tmp=tmp_path) for a in command] + ["--workspace", str(ws)]
    assert main(argv) == code
    err = one_error_line(capsys, command[0])
    assert str(checkpoint) in err and "lacks 'progress'" in err


def test_run_teacher_with_a_damaged_checkpoint_is_refused(damaged_run, capsys):
    ws, config, checkpoint = damaged_run
    capsys.readouterr()
    assert main(["run", str(config), "--workspace", str(ws), "--set",
                 "distill.teacher=1"]) == 2
    err = one_error_line(capsys, "run")
    assert str(checkpoint) in err and "lacks 'progress'" in err


# --- bytes that are no checkpoint, pickles that would run code ------------------------


def write_zip(path):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "not a model")


NOT_CHECKPOINTS = {  # id: (write the file, how the message starts)
    "random bytes": (lambda p, good: p.write_bytes(bytes(range(256)) * 8),
                     "{path} is not a checkpoint (not a PyTorch file: neither"),
    "a text file": (lambda p, good: p.write_text("epochs = 3\nlr = 0.1\n"),
                    "{path} is not a checkpoint (not a PyTorch file: neither"),
    "a zip that is no torch file": (lambda p, good: write_zip(p),
                                    "{path} is not a checkpoint (not a PyTorch file: a zip"),
    "an empty file": (lambda p, good: p.write_bytes(b""),
                      "{path} is not a checkpoint (not a PyTorch file: the file is empty"),
    "a truncated checkpoint": (lambda p, good: p.write_bytes(good.read_bytes()[:2000]),
                               "checkpoint {path} is unreadable or truncated (a zip archive "
                               "whose end is missing"),
}


@pytest.mark.parametrize("case", NOT_CHECKPOINTS)
def test_bytes_that_are_no_checkpoint_are_called_that(case, trained, tmp_path):
    path = tmp_path / "last.pt"
    write, start = NOT_CHECKPOINTS[case]
    write(path, trained[0])
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert message.startswith(start.format(path=path)), message
    assert "unpickle" not in message and "\n" not in message


class RunsCode:
    """Unpickling this calls os.system: what a hostile checkpoint does."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class Custom:
    pass


@pytest.mark.parametrize("protocol", [0, 2, pickle.DEFAULT_PROTOCOL])
def test_a_pickle_that_would_run_code_is_refused_and_never_runs(protocol, tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "last.pt"
    path.write_bytes(pickle.dumps(RunsCode(marker), protocol=protocol))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "refused: loading it would unpickle arbitrary Python objects" in message
    # what it wanted, not torch's advice to load it with weights_only=False
    assert "it names " in message or "pickle instructions" in message, message
    assert "weights_only" not in message and "\n" not in message
    assert not marker.exists()


def test_a_torch_file_of_a_custom_class_is_refused_and_named(tmp_path):
    path = tmp_path / "last.pt"
    torch.save({"format": "torchwork-checkpoint", "model": Custom()}, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "refused" in message and "it names " in message and "Custom" in message
    assert "\n" not in message


# --- code named by an export's header never runs implicitly ---------------------------

NET = """import torch
{marker}
def build_model(input_shape, num_outputs):
    return torch.nn.Sequential(torch.nn.Linear(input_shape[0], 8), torch.nn.ReLU(),
                               torch.nn.Linear(8, num_outputs))
"""


@pytest.fixture(scope="module")
def custom_export(tmp_path_factory):
    """An export of a run with a custom model file, its header edited to name another file
    whose import writes a marker: (export, the named file, the marker)."""
    folder = tmp_path_factory.mktemp("trust")
    net = folder / "net.py"
    net.write_text(NET.format(marker=""))
    marker = folder / "ran"
    evil = folder / "evil.py"
    evil.write_text(NET.format(marker=f"open({str(marker)!r}, 'w').close()"))
    train(folder, **{"model.arch": f"custom:{net}"})
    loaded = load_run_model(folder / "ws", 1)
    honest = folder / "honest.safetensors"
    report = export_model(loaded.model, loaded.example, "safetensors", honest, meta=loaded.meta)
    assert report.max_abs_diff == 0  # a run's own custom model still exports and verifies
    with safe_open(str(honest), framework="pt") as fh:
        header = fh.metadata()
    header[META_KEY] = header[META_KEY].replace(str(net), str(evil))
    edited = folder / "edited.safetensors"
    save_file(load_file(str(honest)), str(edited), metadata=header)
    assert str(evil) in header[META_KEY] and not marker.exists()
    return edited, evil, marker


def test_a_header_naming_code_is_refused_with_the_way_to_allow_it(custom_export):
    path, evil, marker = custom_export
    with pytest.raises(ExportInputError) as info:
        rebuild_from_safetensors(path)
    message = str(info.value)
    assert str(evil) in message and "model_file=" in message and "\n" not in message
    assert not marker.exists()


def test_a_teacher_export_naming_code_is_refused(custom_export, tmp_path):
    path, evil, marker = custom_export
    with pytest.raises(ConfigError) as info:
        load_teacher(str(path), student_arch="mlp")
    assert str(evil) in str(info.value) and "model.arch" in str(info.value)
    assert not marker.exists()
    config = tmp_path / "student.toml"
    tiny(**{"distill.teacher": str(path), "train.epochs": 1}).save(config)
    assert main(["run", str(config), "--workspace", str(tmp_path / "ws")]) == 2
    assert not marker.exists()


def test_code_runs_only_when_the_caller_names_the_file(custom_export):
    path, evil, marker = custom_export
    model, _ = rebuild_from_safetensors(path, model_file=evil)
    assert marker.exists()
    marker.unlink()
    teacher, _ = load_teacher(str(path), student_arch=f"custom:{evil}")
    assert marker.exists()
    x = torch.zeros(3, 2)
    assert torch.equal(teacher(x), model(x))
