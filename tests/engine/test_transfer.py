"""Transfer learning: a run started from another run or export on other data, frozen layers,
and the slower learning rate of the loaded layers under every optimizer and schedule."""

import json

import pytest
import torch
from safetensors.torch import save_model

from engine.cli import main
from engine.config import ConfigError, RunConfig
from engine.models import ModelError, build_model
from engine.run_builder import build_trainer
from engine.workspace import Workspace


def digits_mlp(**overrides) -> RunConfig:
    cfg = RunConfig()
    for key, value in {"data.dataset": "digits", "model.arch": "mlp", "model.hidden": [32, 16],
                       "train.epochs": 1, "train.device": "cpu", "train.log_every": 5,
                       **overrides}.items():
        cfg.set(key, value)
    cfg.validate()
    return cfg


def three_classes(**overrides) -> RunConfig:
    """Generated data with digits' 64 inputs but 3 classes: a new head, the same hidden layers."""
    return digits_mlp(**{"data.dataset": "synthetic", "data.n_features": 64,
                         "data.n_classes": 3, "data.n_samples": 300, **overrides})


@pytest.fixture
def digits_run(tmp_path, workspace_dir):
    """A trained digits MLP run (10 classes) of the test's workspace: its id."""
    path = tmp_path / "digits.toml"
    digits_mlp(**{"train.max_steps": 5}).save(path)
    assert main(["run", str(path), "--json"]) == 0
    with Workspace(workspace_dir) as ws:
        return ws.list_runs()[0].id


def source_state(workspace_dir, run_id):
    from engine.export import load_run_model

    return load_run_model(workspace_dir, run_id).model.state_dict()


def test_a_run_on_three_classes_starts_from_a_digits_run(digits_run, tmp_path, workspace_dir,
                                                         capsys):
    capsys.readouterr()
    path = tmp_path / "ft.toml"
    three_classes(**{"model.init": str(digits_run)}).save(path)
    assert main(["run", str(path), "--json", "--set", "train.max_steps=1"]) == 0
    started = json.loads(capsys.readouterr().out.splitlines()[0])
    notes = "\n".join(started["notes"])
    # digits' MLP flattens its 8x8 images first (layer 0): its Linear layers are 1, 3, 5
    assert "loaded the matching 4 tensors from run 1" in notes
    assert "0 (weight, bias), 2 (weight, bias)" in notes
    assert "re-initialised 4.weight (shape mismatch: saved (10, 16), this model (3, 16))" in notes
    assert "re-initialised 4.bias (shape mismatch: saved (10,), this model (3,))" in notes
    assert "1.weight -> 0.weight" in notes
    with Workspace(workspace_dir) as ws:
        run = ws.get_run(started["run_id"])
        log = (run.dir / "log.txt").read_text()
    assert "model.init: re-initialised 4.weight (shape mismatch" in log
    assert "model.init: loaded the matching 4 tensors" in log


def test_loaded_layers_hold_the_source_weights_and_the_head_starts_fresh(digits_run,
                                                                          workspace_dir):
    saved = source_state(workspace_dir, digits_run)
    cfg = three_classes(**{"model.init": str(digits_run)})
    with Workspace(workspace_dir) as ws:
        trainer = build_trainer(cfg, ws)
    model = trainer.model
    assert torch.equal(model[0].weight, saved["1.weight"])
    assert torch.equal(model[2].bias, saved["3.bias"])
    fresh = build_trainer(three_classes()).model  # the same run from a random start
    assert torch.equal(model[4].weight, fresh[4].weight)
    assert not torch.equal(model[0].weight, fresh[0].weight)


def test_a_cnn_export_with_other_classes_gives_its_conv_layers_to_a_digits_cnn(tmp_path):
    cfg = digits_mlp(**{"model.arch": "cnn", "model.channels": [4, 8], "model.hidden": [16],
                        "train.max_steps": 3})
    source = build_model(cfg, (1, 8, 8), 5)  # trained elsewhere on 5 classes
    path = tmp_path / "five.safetensors"
    save_model(source, str(path))
    cfg.set("model.init", str(path))
    trainer = build_trainer(cfg)
    notes = "\n".join(trainer.notes)
    assert "loaded the matching 6 tensors" in notes
    assert "0 (weight, bias), 3 (weight, bias), 7 (weight, bias)" in notes  # convs + hidden
    assert "re-initialised 9.weight (shape mismatch: saved (5, 16), this model (10, 16))" in notes
    assert torch.equal(trainer.model[3].weight, source[3].weight)
    assert trainer.run().status == "completed"


def test_a_source_of_another_architecture_is_refused(tmp_path):
    other = torch.nn.Sequential(torch.nn.Conv1d(3, 3, 2))
    path = tmp_path / "other.safetensors"
    save_model(other, str(path))
    with pytest.raises(ModelError, match=r"model.init: none of the 2 tensors in .*other"
                                         r".safetensors fits this model"):
        build_trainer(three_classes(**{"model.init": str(path)}))


def test_an_unknown_run_or_a_run_without_workspace_is_named(workspace_dir):
    cfg = three_classes(**{"model.init": "0042-nope"})
    with Workspace(workspace_dir) as ws, pytest.raises(ConfigError, match="model.init='0042-nope'"):
        build_trainer(cfg, ws)
    with pytest.raises(ConfigError, match="names a run, but this run has no workspace"):
        build_trainer(cfg)


def test_frozen_layers_do_not_change_while_the_rest_trains():
    cfg = three_classes(**{"model.batch_norm": True, "model.freeze": ["0", "1"],
                           "train.epochs": 2})
    trainer = build_trainer(cfg)
    model = trainer.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert trainer.run().status == "completed"
    after = model.state_dict()
    for name in ("0.weight", "1.weight", "1.bias", "1.running_mean", "1.running_var"):
        assert torch.equal(after[name], before[name]), name  # batch-norm statistics too
    for name in ("3.weight", "4.running_mean", "6.weight"):
        assert not torch.equal(after[name], before[name]), name
    assert "model.freeze: 0, 1 stay fixed (3 tensors)" in trainer.notes


def test_a_freeze_prefix_matching_nothing_names_it_and_the_layers():
    with pytest.raises(ModelError, match=r"model.freeze: 'features' matches no parameter of "
                                         r"this model; its top-level layers are 0 \(Linear\), "
                                         r"2 \(Linear\), 4 \(Linear\)"):
        build_trainer(three_classes(**{"model.freeze": ["0", "features"]}))
    with pytest.raises(ModelError, match="freezes every parameter"):
        build_trainer(three_classes(**{"model.freeze": ["0", "2", "4"]}))


def test_freeze_names_read_from_the_command_line_and_files():
    cfg = three_classes().with_overrides(["model.freeze=0,2"])
    assert cfg.model.freeze == ["0", "2"]
    assert three_classes().with_overrides(["model.freeze=0"]).model.freeze == ["0"]
    assert RunConfig.from_toml("[model]\nfreeze = [0, 'head']\n").model.freeze == ["0", "head"]
    with pytest.raises(ConfigError, match="model.freeze must list layer names"):
        three_classes(**{"model.freeze": [""]})


def scaled_run(tmp_path, optim: str, schedule: str, scale=0.25, **more):
    cfg = digits_mlp(**{"model.hidden": [16]})
    source = build_model(cfg, (1, 8, 8), 5)
    path = tmp_path / "src.safetensors"
    save_model(source, str(path))
    overrides = {"model.init": str(path), "optim.name": optim, "optim.lr": 0.01,
                 "optim.backbone_lr_scale": scale, "schedule.name": schedule,
                 "schedule.min_lr": 0.001, "schedule.step_size": 1, "schedule.gamma": 0.5,
                 "schedule.milestones": [1, 2], "schedule.patience": 0, "train.epochs": 3,
                 **more}
    for key, value in overrides.items():
        cfg.set(key, value)
    cfg.validate()
    return build_trainer(cfg)


OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")
SCHEDULES = ("constant", "step", "multistep", "exponential", "cosine", "warmup_cosine",
             "onecycle", "plateau")


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("optim", OPTIMIZERS)
def test_loaded_layers_train_at_the_scaled_rate_through_every_schedule(tmp_path, optim,
                                                                       schedule):
    trainer = scaled_run(tmp_path, optim, schedule, **{"schedule.warmup_steps":
                                                       0 if schedule == "plateau" else 3})
    opt, model = trainer.optimizer, trainer.model
    head = {id(p) for p in model[3].parameters()}  # the 10-class head starts fresh
    kinds = [id(g["params"][0]) in head for g in opt.param_groups]
    assert kinds[0] and not kinds[-1]  # the fresh layers' rate is the one the run reports
    seen = set()
    for _ in range(trainer.total_steps):
        head_lr = [g["lr"] for g, fresh in zip(opt.param_groups, kinds) if fresh]
        body_lr = [g["lr"] for g, fresh in zip(opt.param_groups, kinds) if not fresh]
        assert body_lr == pytest.approx([0.25 * lr for lr in head_lr], rel=1e-9)
        seen.add(round(head_lr[0], 12))
        opt.step()
        if trainer.plateau:
            trainer.scheduler.step(1.0)  # never better: the rate falls to its floor
        elif trainer.scheduler is not None:
            trainer.scheduler.step()
    assert len(seen) > (1 if schedule != "constant" else 0)
    if schedule in ("cosine", "warmup_cosine", "plateau"):  # each group at its own floor
        assert [g["lr"] for g in opt.param_groups][-1] == pytest.approx(0.25 * 0.001)


def test_the_backbone_moves_at_the_scaled_step(tmp_path):
    """With plain SGD a step is -lr * grad: the loaded layers move a quarter as far."""
    trainer = scaled_run(tmp_path, "sgd", "constant", **{"optim.momentum": 0.0})
    model = trainer.model
    before = [p.detach().clone() for p in model.parameters()]
    x, y = trainer.data.x_train[:32], trainer.data.y_train[:32]
    trainer.loss_fn(model(x), y).backward()
    grads = [p.grad.clone() for p in model.parameters()]
    trainer.optimizer.step()
    moved = [b - p.detach() for b, p in zip(before, model.parameters())]
    assert torch.allclose(moved[0], 0.01 * 0.25 * grads[0])  # loaded Linear 1
    assert torch.allclose(moved[-1], 0.01 * grads[-1])  # the head


def test_lbfgs_refuses_a_backbone_rate_but_freezes(tmp_path):
    with pytest.raises(ConfigError, match="optim.backbone_lr_scale must be 1 with "
                                          "optim.name='lbfgs'"):
        scaled_run(tmp_path, "lbfgs", "constant")
    trainer = scaled_run(tmp_path, "lbfgs", "constant", scale=1.0,
                         **{"model.freeze": ["1"], "train.max_steps": 3})
    first = trainer.model[1].weight.detach().clone()
    assert trainer.run().status == "completed"
    assert torch.equal(trainer.model[1].weight, first)


def test_a_fine_tuning_run_resumes_with_its_two_rates(tmp_path):
    trainer = scaled_run(tmp_path, "adamw", "cosine", **{"train.epochs": 2,
                                                         "optim.weight_decay": 0.01})
    trainer.enable_checkpoints(tmp_path / "ck")
    trainer.stop("user")
    trainer.run()
    again = scaled_run(tmp_path, "adamw", "cosine", **{"train.epochs": 2,
                                                       "optim.weight_decay": 0.01})
    again.load_checkpoint(tmp_path / "ck" / "last.pt")
    assert again.run().status == "completed"
    lrs = [g["lr"] for g in again.optimizer.param_groups]
    assert len(lrs) == 4 and lrs[2] == pytest.approx(0.25 * lrs[0])


def test_profiling_a_fine_tuning_run_finds_its_source_run(digits_run, tmp_path, workspace_dir,
                                                          capfd):
    path = tmp_path / "ft.toml"
    three_classes(**{"model.init": str(digits_run)}).save(path)
    assert main(["profile", str(path), "--steps", "1"]) == 0
    assert "Step-time breakdown (ms)" in capfd.readouterr().out


@pytest.mark.slow
def test_a_digits_cnn_fine_tunes_on_a_generated_image_folder(tmp_path, workspace_dir, capsys):
    """The issue's case: a trained digits CNN (10 classes, 8x8 grey) starts a run on a
    folder of three classes of pictures: its convolutions load, its head starts fresh,
    and the fine-tuned model learns the folder."""
    from tests.engine.image_folders import make_folder

    source = tmp_path / "digits-cnn.toml"
    digits_mlp(**{"model.arch": "cnn", "model.channels": [4, 8], "model.hidden": [16],
                  "train.max_steps": 20}).save(source)
    assert main(["run", str(source)]) == 0
    folder = make_folder(tmp_path / "shades", per_class=12, classes=("dark", "mid", "light"))
    tuned = tmp_path / "shades.toml"
    digits_mlp(**{"data.dataset": f"images:{folder}", "data.image_size": 8,
                  "data.channels": 1, "model.arch": "cnn", "model.channels": [4, 8],
                  "model.hidden": [16], "model.init": "1", "model.freeze": ["0"],
                  "optim.lr": 0.01, "train.epochs": 15}).save(tuned)
    capsys.readouterr()
    assert main(["run", str(tuned), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    notes = "\n".join(lines[0]["notes"])
    assert "loaded the matching 6 tensors from run 1" in notes
    assert "re-initialised 9.weight (shape mismatch: saved (10, 16), this model (3, 16))" in notes
    assert lines[-1]["status"] == "completed"
    epochs = [line for line in lines if line["event"] == "epoch"]
    assert epochs[-1]["val_accuracy"] >= 0.8
    with Workspace(workspace_dir) as ws:
        first = source_state(workspace_dir, 1)
        tuned_state = source_state(workspace_dir, ws.list_runs()[0].id)
    assert torch.equal(tuned_state["0.weight"], first["0.weight"])  # frozen: unchanged
