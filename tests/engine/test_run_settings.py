"""The options that choose how torch does the same work: optim.implementation (fused,
foreach, for-loop), train.threads and precision.tf32. Each is set for the run only."""

import pytest
import torch

from engine.config import ConfigError, RunConfig
from engine.training import Trainer
from engine.training import events as ev


def weights(trainer):
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def max_diff(a, b):
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def group_flags(trainer):
    return {(g.get("fused"), g.get("foreach")) for g in trainer.optimizer.param_groups}


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd", "adagrad"])
def test_fused_optimizer_is_built_and_trains_as_the_for_loop(tiny_config, name):
    runs = {}
    for impl in ("for-loop", "foreach", "fused"):
        trainer = Trainer(tiny_config(**{"optim.name": name, "optim.implementation": impl,
                                         "train.epochs": 1}))
        runs[impl] = trainer
        assert trainer.run().status == "completed"
    assert group_flags(runs["fused"]) == {(True, None)}
    assert group_flags(runs["foreach"]) == {(None, True)}
    assert group_flags(runs["for-loop"]) == {(None, False)}
    # the same updates, to float rounding
    assert max_diff(weights(runs["fused"]), weights(runs["for-loop"])) < 1e-5
    assert max_diff(weights(runs["foreach"]), weights(runs["for-loop"])) < 1e-5


def test_auto_is_fused_where_torch_has_it_else_torch_s_choice(tiny_config):
    assert group_flags(Trainer(tiny_config())) == {(True, None)}  # Adam on the CPU
    assert group_flags(Trainer(tiny_config(**{"optim.name": "sgd"}))) == {(True, None)}
    rmsprop = Trainer(tiny_config(**{"optim.name": "rmsprop"}))  # no fused RMSprop
    assert group_flags(rmsprop) == {(None, None)}
    assert type(Trainer(tiny_config(**{"optim.name": "lbfgs"})).optimizer).__name__ == "LBFGS"


def test_fused_where_torch_has_none_is_refused_naming_the_key(tiny_config):
    with pytest.raises(ConfigError, match=r"optim.implementation='fused' but torch has no "
                                          r"fused rmsprop: use 'foreach'"):
        tiny_config(**{"optim.name": "rmsprop", "optim.implementation": "fused"})
    # fused Adagrad exists on the CPU only: a GPU run is refused before it starts
    cfg = tiny_config(**{"optim.name": "adagrad", "optim.implementation": "fused"})
    model = torch.nn.Linear(2, 2).to("meta")
    from engine.training.setup import build_optimizer

    with pytest.raises(ConfigError, match=r"no fused adagrad on meta: use 'foreach'"):
        build_optimizer(cfg, model)


def test_lbfgs_has_one_implementation(tiny_config):
    cfg = tiny_config(**{"optim.name": "lbfgs", "optim.implementation": "fused"})
    assert not cfg.applies("optim.implementation")  # hidden in the form, ignored
    assert "implementation" not in cfg.to_toml(changes_only=True)


def _threads_seen(trainer):
    seen = []
    trainer.on(ev.StepEnded, lambda e: seen.append(torch.get_num_threads()))
    return seen


def test_threads_hold_for_the_run_and_are_put_back(tiny_config):
    before = torch.get_num_threads()
    want = 1 if before > 1 else 2
    trainer = Trainer(tiny_config(**{"train.threads": want}))
    seen = _threads_seen(trainer)
    trainer.config.train.max_steps = 3
    trainer.run()
    assert seen and set(seen) == {want}
    assert torch.get_num_threads() == before
    trainer.config.train.max_steps = 6  # a later call (an A/B turn) sets them again
    trainer.run()
    assert set(seen) == {want} and len(seen) == 6
    assert torch.get_num_threads() == before


def test_threads_auto_leaves_torch_alone(tiny_config):
    before = torch.get_num_threads()
    trainer = Trainer(tiny_config(**{"train.max_steps": 3}))
    seen = _threads_seen(trainer)
    trainer.run()
    assert set(seen) == {before}


def test_threads_are_put_back_after_a_failed_run(tiny_config, tmp_path):
    before = torch.get_num_threads()
    trainer = Trainer(tiny_config(**{"train.threads": before + 1}))

    def boom(e):
        raise RuntimeError("planted")

    trainer.on(ev.StepEnded, boom)
    assert trainer.run().status == "failed"
    assert torch.get_num_threads() == before


def test_more_threads_than_cores_is_said_in_the_run_notes(tiny_config):
    import os

    cores = len(os.sched_getaffinity(0))
    trainer = Trainer(tiny_config(**{"train.threads": cores + 1}))
    started = []
    trainer.on(ev.RunStarted, started.append)
    trainer.config.train.max_steps = 1
    trainer.run()
    assert any(f"train.threads={cores + 1} is more than this machine's {cores} cores" in n
               for n in started[0].notes)
    assert not any("train.threads" in n for n in Trainer(tiny_config()).notes)


def test_tf32_on_the_cpu_is_ignored_with_a_note(tiny_config):
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    trainer = Trainer(tiny_config(**{"precision.tf32": "on"}))
    seen = []
    trainer.on(ev.StepEnded, lambda e: seen.append(torch.backends.cuda.matmul.allow_tf32))
    trainer.run()
    assert "precision.tf32='on' is ignored on cpu: TF32 is a mode of CUDA GPUs" in trainer.notes
    assert set(seen) == {matmul}
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == \
        (matmul, cudnn)


@pytest.mark.parametrize("mode", ["on", "off"])
def test_tf32_is_set_for_the_run_and_put_back(tiny_config, monkeypatch, mode):
    """The setting itself, without a GPU: a CUDA device as the settings see it."""
    from engine.training.setup import RunSettings

    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    settings = RunSettings(tiny_config(**{"precision.tf32": mode}), torch.device("cuda"))
    with settings.applied():
        assert torch.backends.cuda.matmul.allow_tf32 is (mode == "on")
        assert torch.backends.cudnn.allow_tf32 is (mode == "on")
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == \
        (matmul, cudnn)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_tf32_changes_the_run_matmuls_on_the_gpu(tiny_config):
    if torch.cuda.get_device_capability() < (8, 0):
        pytest.skip("TF32 needs compute capability 8.0")
    a = torch.randn(512, 512, device="cuda")
    exact = (a.double() @ a.double())
    errors = {}
    for mode in ("on", "off"):
        trainer = Trainer(tiny_config(**{"train.device": "cuda", "precision.tf32": mode}))
        got = []
        trainer.on(ev.StepEnded, lambda e, got=got: got.append(
            float(((a @ a).double() - exact).abs().max())))
        trainer.config.train.max_steps = 1
        trainer.run()
        errors[mode] = got[0]
    assert errors["on"] > 10 * errors["off"]  # TF32 keeps 10 bits of mantissa, fp32 23
    assert not torch.backends.cuda.matmul.allow_tf32  # torch's default, put back


def test_a_resume_steps_with_the_implementation_it_is_given_not_the_checkpoint_s(
        tiny_config, tmp_path, workspace_dir, monkeypatch):
    """torch's load_state_dict takes every group setting from the checkpoint: a run saved
    with a for-loop optimizer and resumed with `--set optim.implementation=fused` must step
    fused (and end where the uninterrupted run ends)."""
    from engine.cli import main
    from engine.workspace import Workspace

    path = tmp_path / "run.toml"
    cfg = tiny_config(**{"optim.implementation": "for-loop", "train.epochs": 3})
    cfg.save(path)
    assert main(["run", str(path), "--max-steps", "5"]) == 0
    with Workspace(workspace_dir) as ws:
        run = ws.list_runs()[0]
    flags = []
    real = Trainer.load_checkpoint

    def load_and_look(trainer, checkpoint):
        real(trainer, checkpoint)
        flags.append(group_flags(trainer))

    monkeypatch.setattr(Trainer, "load_checkpoint", load_and_look)
    assert main(["resume", str(run.id), "--set", "optim.implementation=fused",
                 "--max-steps", "0"]) == 0
    assert flags == [{(True, None)}]
    with Workspace(workspace_dir) as ws:
        resumed = ws.get_run(run.id)
        assert resumed.status == "completed"
        assert RunConfig.from_toml(resumed.config_toml).optim.implementation == "fused"
    straight = Trainer(cfg)
    assert straight.run().status == "completed"
    saved = torch.load(resumed.dir / "checkpoints" / "last.pt", weights_only=True)
    assert max_diff(saved["model"], weights(straight)) < 1e-5
