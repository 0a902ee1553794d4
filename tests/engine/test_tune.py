"""Tuners: the LR range test, the batch-size finder and the memory forecast (no Qt)."""

import json
import math

import numpy as np
import pytest
import torch

from engine.cli import main
from engine.config import ConfigError
from engine.experiments import batch_size as bsf
from engine.experiments.batch_size import SizeTrial, find_batch_size, summarize
from engine.experiments.lr_finder import lr_range_test, suggest
from engine.experiments.memory import forecast, step_memory
from engine.experiments.probe import StepProbe
from engine.training import Trainer


def snapshot(trainer):
    return ({k: v.clone() for k, v in trainer.model.state_dict().items()},
            trainer.optimizer.state_dict(), torch.get_rng_state().clone(),
            np.random.get_state()[1].copy())


def assert_same(before, after):
    (w0, o0, r0, n0), (w1, o1, r1, n1) = before, after
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    assert o0["param_groups"] == o1["param_groups"]
    assert o1["state"] == {}  # the copy's Adam moments never reached the run's optimizer
    assert torch.equal(r0, r1)
    assert (n0 == n1).all()


@pytest.mark.parametrize("tuner", ["lr", "batch-size"])
def test_tuners_leave_the_run_exactly_as_it_was(tiny_config, tuner):
    cfg = tiny_config(**{"model.dropout": 0.2})  # dropout draws from the RNG
    plain = Trainer(cfg)
    plain.run()
    tuned = Trainer(cfg)  # seeds the process's generators as the plain run's did
    before = snapshot(tuned)
    if tuner == "lr":
        lr_range_test(tuned, steps=30)
    else:
        find_batch_size(tuned, limit=64, steps=2)
    assert_same(before, snapshot(tuned))
    tuned.run()  # trains as if the tuner had never run
    a, b = plain.model.state_dict(), tuned.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("tuner", ["lr", "batch-size"])
def test_tuners_step_with_the_run_s_threads_and_put_the_process_s_back(tiny_config, tuner,
                                                                        monkeypatch):
    """A finder's throughput is the run's own: its steps take train.threads as the run's
    steps would; the process's thread count is back afterwards."""
    before = torch.get_num_threads()
    want = 1 if before != 1 else 2
    seen = []
    real_step = StepProbe.step

    def step(probe, x, y):
        seen.append(torch.get_num_threads())
        return real_step(probe, x, y)

    monkeypatch.setattr(StepProbe, "step", step)
    trainer = Trainer(tiny_config(**{"train.threads": want}))
    if tuner == "lr":
        lr_range_test(trainer, steps=20)
    else:
        find_batch_size(trainer, limit=16, steps=1)
    assert seen and set(seen) == {want}
    assert torch.get_num_threads() == before


def curve(spike_at=None, tail=True):
    lrs = np.logspace(-7, 1, 100)
    logs = np.log10(lrs)
    losses = 0.1 + 0.6 / (1 + np.exp(3 * (logs + 3)))  # falls fastest at lr = 1e-3
    if tail:
        losses = np.where(logs > -1, losses + 2 * (logs + 1) ** 2, losses)
    losses = losses + np.random.default_rng(0).normal(0, 0.005, len(lrs))
    if spike_at is not None:
        losses[spike_at] = 50.0
    return lrs, losses


@pytest.mark.parametrize("spike_at", [3, 40, 60, 95])
def test_suggestion_is_inside_the_descent_whatever_the_spikes_and_the_tail(spike_at):
    lrs, losses = curve()  # flat to 1e-5, falls to 1e-1, then diverges
    clean = suggest(lrs, losses).suggested_lr
    assert 10 ** -4.5 < clean < 10 ** -2
    spiked = suggest(*curve(spike_at))
    assert spiked.suggested_lr == pytest.approx(clean, rel=0.25)
    assert "longest descent" in spiked.reason and "minimum / 10" in spiked.reason
    assert "steepest descent at" in spiked.reason
    assert spiked.rule.startswith("middle of the longest descent")


def test_a_loss_that_never_falls_says_so():
    lrs = np.logspace(-7, 1, 60)
    sweep = suggest(lrs, 1 + lrs)
    assert "never fell" in sweep.reason
    assert sweep.suggested_lr == pytest.approx(lrs[0] / 10)


def test_a_diverging_sweep_stops_early_and_suggests_below_the_blow_up(tiny_config):
    trainer = Trainer(tiny_config(**{"optim.name": "sgd", "optim.lr": 0.1}))
    sweep = lr_range_test(trainer, start_lr=1e-4, end_lr=1e6, steps=80)
    assert sweep.stopped == "diverged" and len(sweep.lrs) < 80
    assert all(math.isfinite(v) for v in sweep.losses)
    assert sweep.suggested_lr < sweep.lrs[-1] / 10


def test_lbfgs_is_refused_with_the_key():
    class Fake:
        optimizer = torch.optim.LBFGS([torch.nn.Parameter(torch.zeros(1))])

    with pytest.raises(ConfigError, match="optim.name='lbfgs'"):
        StepProbe(Fake())


def test_knee_is_the_smallest_size_near_the_best():
    trials = [SizeTrial(8, 100.0, None), SizeTrial(16, 180.0, None), SizeTrial(32, 380.0, None),
              SizeTrial(64, 400.0, None), SizeTrial(128, 410.0, None)]
    found = summarize(trials, "data", "the training split has 200 samples")
    assert found.suggested == 32 and found.largest_fitting == 128
    assert "93%" in found.reason and "200 samples" in found.reason


def test_batch_search_stops_at_the_data_size(tiny_config):
    found = find_batch_size(Trainer(tiny_config()), steps=1)
    sizes = [t.batch_size for t in found.trials]
    assert sizes == [8, 16, 32, 64, 128] and found.stopped == "data"  # 200 training samples
    assert all(t.samples_per_s > 0 for t in found.trials)


def test_cuda_out_of_memory_ends_the_search_at_the_last_size_that_fit(tiny_config, monkeypatch):
    real = StepProbe.step

    def step(self, x, y):
        if len(y) >= 64:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real(self, x, y)

    monkeypatch.setattr(StepProbe, "step", step)
    found = find_batch_size(Trainer(tiny_config()), steps=1)
    assert found.stopped == "oom" and found.largest_fitting == 32
    assert found.trials[-1].samples_per_s is None  # the size that did not fit is shown


def test_cpu_search_stays_within_free_ram(tiny_config, monkeypatch):
    trainer = Trainer(tiny_config(**{"model.hidden": [256]}))
    # the parameters and a step at 8 samples fit, one at 128 needs more than this
    monkeypatch.setattr("engine.training.footprint.available_bytes", lambda: 100_000)
    tried = []
    monkeypatch.setattr(bsf, "_try_size", lambda t, size, steps: tried.append(size) or
                        SizeTrial(size, 1.0, None))
    found = find_batch_size(trainer, steps=1)
    assert found.stopped == "ram" and "free" in found.reason
    assert 8 in tried and max(tried) < 128


def test_forecast_counts_parameters_and_optimizer_state_exactly(tiny_config):
    cfg = tiny_config(**{"model.hidden": [64, 64], "optim.name": "adamw"})
    trainer = Trainer(cfg)
    params = sum(p.numel() * 4 for p in trainer.model.parameters())
    result = forecast(cfg, trainer.data)
    assert result.parts["Parameter"] == params
    assert result.parts["Optstate"] >= 2 * params  # AdamW's two moments (and its step counts)
    assert result.peak_bytes > params * 4  # params, grads, two moments, activations


def test_forecast_of_a_model_with_frozen_layers_leaves_out_their_grads_and_state(tiny_config):
    cfg = tiny_config(**{"model.hidden": [64, 64], "optim.name": "adamw"})
    whole = forecast(cfg, Trainer(cfg).data)
    cfg.model.freeze = ["0"]  # the first layer frozen: its weights stay, no grads or moments
    trainer = Trainer(cfg)
    frozen = sum(p.numel() * 4 for p in trainer.model.parameters() if not p.requires_grad)
    result = forecast(cfg, trainer.data)  # MemTracker refused the frozen weights' hooks
    assert frozen > 0 and result.peak_bytes < whole.peak_bytes
    assert result.parts["Optstate"] <= whole.parts["Optstate"] - 2 * frozen


def test_forecast_peak_grows_with_the_batch_and_largest_batch_fits_the_budget(tiny_config):
    cfg = tiny_config(**{"model.hidden": [512, 512]})
    trainer = Trainer(cfg)
    device = torch.device("cpu")
    small, big = (step_memory(cfg, trainer.data, device, b)["Total"] for b in (16, 4096))
    assert big > small
    budget = step_memory(cfg, trainer.data, device, 3000)["Total"]
    result = forecast(cfg, trainer.data, budget=budget)
    assert 2900 <= result.largest_batch
    fits = step_memory(cfg, trainer.data, device, result.largest_batch)["Total"]
    over = step_memory(cfg, trainer.data, device, int(result.largest_batch * 1.2) + 2)["Total"]
    assert fits <= budget < over
    tight = forecast(cfg, trainer.data, budget=small // 4)
    assert tight.largest_batch is None and "not even one sample" in tight.summary()


def test_tune_lr_json_is_one_object(tiny_config, tmp_path, capsys):
    path = tmp_path / "run.toml"
    tiny_config().save(path)
    assert main(["tune", "lr", str(path), "--steps", "30", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"suggested_lr", "rule", "reason", "lrs", "losses", "smoothed"} <= set(out)
    assert len(out["lrs"]) == len(out["losses"]) > 20


def test_tune_memory_and_batch_size_cli(tiny_config, tmp_path, capsys):
    path = tmp_path / "run.toml"
    tiny_config().save(path)
    assert main(["tune", "memory", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["peak_bytes"] > 0
    assert main(["tune", "batch-size", str(path), "--steps", "1", "--limit", "16"]) == 0
    assert "suggested data.batch_size" in capsys.readouterr().out


def test_tune_bad_input_is_one_line(tiny_config, tmp_path, capsys):
    path = tmp_path / "run.toml"
    tiny_config().save(path)
    assert main(["tune", "lr", str(path), "--set", "optim.lr=-1"]) == 2
    assert main(["tune", "lr", str(path), "--steps", "5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "optim.lr" in err[0] and "at least 20 steps" in err[1]


def test_a_model_failing_at_some_size_ends_the_search_and_the_forecast_in_one_line(
        tiny_config, faulty_model, tmp_path, capsys):
    arch = faulty_model("if x.shape[0] >= 64: raise RuntimeError('too big for me')")
    found = find_batch_size(Trainer(tiny_config(**{"model.arch": arch})), steps=1)
    assert found.stopped == "error" and found.largest_fitting == 32
    assert "batch 64 failed: RuntimeError: too big for me" in found.reason
    path = tmp_path / "run.toml"
    tiny_config(**{"model.arch": arch}).save(path)
    assert main(["tune", "memory", str(path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "could not run on fake tensors" in err[0]
    assert "too big for me" in err[0]
