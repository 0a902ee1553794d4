"""Data-parallel training under torchrun (CPU, gloo): the same weights as one process with
the whole batch, one writer, and decisions (NaN, stop) that reach every rank."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
import torch
from torch import nn

from engine.cli import main
from engine.config import ConfigError, RunConfig
from engine.distributed import DataParallel, strategy_of
from engine.distributed.launch import exit_code
from engine.training import Trainer
from engine.training.checkpoint import load_checkpoint
from engine.training.loader import BatchLoader
from engine.workspace import Workspace

ROOT = Path(__file__).parents[2]
# 819 training samples: the last batch of 64 has 51, split 26 / 25 between the ranks
SMALL = {"data.dataset": "synthetic", "data.n_samples": 1024, "data.n_features": 16,
         "data.n_classes": 3, "data.batch_size": 32, "model.arch": "mlp", "model.hidden": [32],
         "optim.name": "sgd", "optim.lr": 0.05, "optim.momentum": 0.9, "train.epochs": 2,
         "train.device": "cpu", "train.seed": 0}


def small_config(**changes) -> RunConfig:
    cfg = RunConfig()
    for key, value in {**SMALL, **changes}.items():
        cfg.set(key, value)
    return cfg


def torchwork(args, workspace, env_extra=None, **popen):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TORCHWORK_WORKSPACE": str(workspace),
           "TORCHWORK_COLLECTIVE_TIMEOUT_S": "60", "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-m", "app", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def events(text):
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def one_process(cfg: RunConfig) -> Trainer:
    trainer = Trainer(cfg)
    assert trainer.run().status == "completed"
    return trainer


def two_process_run(tmp_path, cfg: RunConfig):
    path = tmp_path / "run.toml"
    cfg.save(path)
    ws = tmp_path / "ws"
    proc = torchwork(["run", str(path), "--nproc-per-node", "2", "--json"], ws)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    return ws, events(out)


def assert_same_weights(ws, expected: dict):
    with Workspace(ws) as store:
        runs = store.list_runs()
        assert len(runs) == 1  # rank 1 made no run of its own
        run = runs[0]
        assert run.status == "completed"
        state = load_checkpoint(run.dir / "checkpoints" / "last.pt", map_location="cpu")
        rows = store.step_metrics(run.id)
    for name, value in expected.items():
        torch.testing.assert_close(state["model"][name], value, rtol=1e-4, atol=1e-5)
    return run, rows


def test_two_processes_of_batch_b_train_as_one_process_of_batch_2b(tmp_path):
    ws, out = two_process_run(tmp_path, small_config())
    single = one_process(small_config(**{"data.batch_size": 64}))
    run, rows = assert_same_weights(ws, single.model.state_dict())
    # one JSON stream (rank 0's) and one set of rows, with the whole batch's figures
    assert [e["event"] for e in out].count("run_started") == 1
    assert out[0]["total_steps"] == 2 * 13 and out[-1]["steps"] == 26
    assert list(rows["step"]) == sorted(set(rows["step"]))
    assert len(list((run.dir / "tb").glob("events.out.tfevents.*"))) == 1
    # validation is sharded, and its metrics are those of the whole split
    epochs = [e for e in out if e["event"] == "epoch"]
    assert epochs[-1]["val_accuracy"] == pytest.approx(single.validate()["val_accuracy"])
    assert epochs[-1]["val_loss"] == pytest.approx(single.validate()["val_loss"], rel=1e-4)


@pytest.mark.slow
def test_gradient_accumulation_under_ddp_matches_one_process(tmp_path):
    ws, _ = two_process_run(tmp_path, small_config(**{"train.grad_accum_steps": 3}))
    single = one_process(small_config(**{"data.batch_size": 64, "train.grad_accum_steps": 3}))
    assert_same_weights(ws, single.model.state_dict())


NET = """
import os
import signal
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn


class Net(nn.Module):
    def __init__(self, features, outputs):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(features, 16), nn.ReLU(),
                                  nn.Linear(16, outputs))
        self.calls = 0

    def forward(self, x):
        out = self.body(x)
        if self.training:
            self.calls += 1
{hook}
        return out


def build_model(input_shape, num_outputs):
    return Net(int(torch.tensor(input_shape).prod()), num_outputs)
"""


def custom_net(tmp_path: Path, hook: str) -> str:
    """A small MLP in a file of its own, whose training forward runs ``hook`` (Python source
    that reads ``self.calls``, the training forwards so far, and may change ``out``); the
    value for model.arch."""
    path = tmp_path / "net.py"
    path.write_text(NET.format(hook=textwrap.indent(textwrap.dedent(hook).strip(), " " * 12)))
    return f"custom:{path}"


@pytest.mark.slow
def test_a_nan_on_one_rank_stops_every_rank_with_the_message(tmp_path):
    arch = custom_net(tmp_path, """
        if self.calls >= 7 and dist.is_initialized() and dist.get_rank() == 1:
            out = out * float("nan")""")
    cfg = small_config(**{"model.arch": arch,
                          "train.log_every": 5, "train.epochs": 50})
    path = tmp_path / "run.toml"
    cfg.save(path)
    proc = torchwork(["run", str(path), "--nproc-per-node", "2", "--json"], tmp_path / "ws")
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 1, err
    finished = events(out)[-1]
    assert finished["status"] == "failed" and finished["failed_at"] == 7
    assert "loss became nan at step 7" in finished["error"]
    assert "Traceback" not in err


def rank_process(launcher: subprocess.Popen, rank: str, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in psutil.Process(launcher.pid).children(recursive=True):
            try:
                if child.environ().get("RANK") == rank:
                    return child
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        time.sleep(0.2)
    raise AssertionError(f"no process of rank {rank}")


@pytest.mark.slow
def test_a_stop_on_one_rank_stops_every_rank_at_the_same_step(tmp_path):
    path = tmp_path / "run.toml"
    small_config(**{"train.epochs": 100000, "train.log_every": 1}).save(path)
    proc = torchwork(["run", str(path), "--nproc-per-node", "2", "--json"], tmp_path / "ws")
    line = proc.stdout.readline()
    while '"event": "step"' not in line:
        assert line, proc.stderr.read()
        line = proc.stdout.readline()
    rank_process(proc, "1").send_signal(signal.SIGTERM)  # rank 0 is told nothing
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    finished = events(out)[-1]
    assert finished["status"] == "stopped" and finished["checkpoint"]
    with Workspace(tmp_path / "ws") as store:
        run = store.list_runs()[0]
        assert run.status == "stopped"
        saved = load_checkpoint(run.dir / "checkpoints" / "last.pt", map_location="cpu")
    assert saved["progress"]["step"] == finished["steps"]


def test_each_rank_gets_a_disjoint_share_of_the_batch_one_process_would_train():
    x, y = torch.arange(103).float().unsqueeze(1), torch.arange(103)
    whole = BatchLoader(x, y, 20, shuffle=True, seed=3)
    shards = [BatchLoader(x, y, 10, shuffle=True, seed=3, rank=r, world=2) for r in (0, 1)]
    assert len(shards[0]) == len(whole) == 6
    for (_, batch), (_, a), (_, b) in zip(whole.epoch(2), shards[0].epoch(2),
                                          shards[1].epoch(2)):
        assert torch.equal(torch.cat([a, b]), batch)
    assert shards[0].samples_in(0, 6) == 103 and shards[1].samples_in(5, 6) == 3
    # a resume part-way through the epoch starts at the same whole batch
    assert torch.equal(next(shards[1].epoch(2, 4))[1], list(shards[1].epoch(2))[4][1])


def test_a_last_batch_too_small_to_share_is_left_out_on_every_rank():
    x, y = torch.zeros(41, 1), torch.arange(41)  # 41 = 2 batches of 20, then 1 sample
    shards = [BatchLoader(x, y, 10, shuffle=True, rank=r, world=2) for r in (0, 1)]
    assert [len(list(s.epoch(1))) for s in shards] == [2, 2] and len(shards[0]) == 2


def test_strategy_auto_is_ddp_only_under_torchrun_with_several_processes(monkeypatch):
    cfg = small_config()
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert strategy_of(cfg) == "none"
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert strategy_of(cfg) == "ddp"
    cfg.set("train.strategy", "fsdp")
    assert strategy_of(cfg) == "fsdp"
    cfg.set("train.strategy", "none")
    assert strategy_of(cfg) == "none"
    monkeypatch.setenv("WORLD_SIZE", "1")  # ddp or fsdp in one process: trains as one
    for strategy in ("ddp", "fsdp"):
        cfg.set("train.strategy", strategy)
        assert strategy_of(cfg) == "none"


def test_nccl_on_the_cpu_is_refused_with_the_fix(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match=r"train.backend='nccl' needs CUDA devices .*'gloo'"):
        Trainer(small_config(**{"train.backend": "nccl"}))


def test_sync_batchnorm_on_is_refused_on_the_cpu_before_joining_a_group(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match=r"train.sync_batchnorm='on' needs CUDA devices "
                                          r".*use 'auto' or 'off'"):
        Trainer(small_config(**{"train.sync_batchnorm": "on", "model.batch_norm": True}))
    assert not torch.distributed.is_initialized()


def test_sync_batchnorm_converts_the_batchnorm_layers_of_a_cuda_run_only():
    def bn_model():
        return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))

    model, notes = bn_model(), []
    weight = model[1].weight
    synced = DataParallel(0, 2, torch.device("cuda", 0), None).sync_batchnorm(model, "auto",
                                                                              notes)
    assert isinstance(synced[1], nn.SyncBatchNorm) and synced[1].weight is weight
    assert synced.state_dict().keys() == bn_model().state_dict().keys()  # checkpoints as before
    assert "SyncBatchNorm" in notes[0]
    on_cpu = DataParallel(0, 2, torch.device("cpu"), None)
    model, notes = bn_model(), []
    assert on_cpu.sync_batchnorm(model, "auto", notes) is model
    assert "each process keeps its own BatchNorm statistics" in notes[0]
    model, notes = bn_model(), []
    cuda = DataParallel(0, 2, torch.device("cuda", 0), None)
    assert cuda.sync_batchnorm(model, "off", notes) is model and not notes
    plain = nn.Sequential(nn.Linear(4, 2))
    assert cuda.sync_batchnorm(plain, "auto", notes) is plain and not notes


@pytest.mark.cuda
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs (nccl)")
def test_with_sync_batchnorm_two_gpus_of_batch_b_train_as_one_of_batch_2b(tmp_path):
    gpu = {"train.device": "cuda", "model.batch_norm": True}
    ws, _ = two_process_run(tmp_path, small_config(**gpu))
    single = one_process(small_config(**{**gpu, "data.batch_size": 64}))
    with Workspace(ws) as store:
        run = store.list_runs()[0]
    state = load_checkpoint(run.dir / "checkpoints" / "last.pt", map_location="cpu")
    for name, value in single.model.state_dict().items():
        torch.testing.assert_close(state["model"][name].cpu(), value.cpu(), rtol=1e-3,
                                   atol=1e-4)


def test_nproc_per_node_refuses_a_one_process_strategy(tmp_path, capsys):
    path = tmp_path / "run.toml"
    small_config(**{"train.strategy": "none"}).save(path)
    assert main(["run", str(path), "--nproc-per-node", "2"]) == 2
    assert "set train.strategy='ddp'" in capsys.readouterr().err


def test_the_launch_exit_code_is_rank_0s():
    class Failure:
        def __init__(self, code):
            self.exitcode = code

    assert exit_code({1: Failure(130), 0: Failure(130)}) == 130
    assert exit_code({1: Failure(1), 0: Failure(2)}) == 2
    assert exit_code({1: Failure(-9)}) == 1


@pytest.mark.slow
def test_a_rank_that_stops_answering_ends_the_run_instead_of_hanging_it(tmp_path):
    path = tmp_path / "run.toml"
    small_config(**{"train.epochs": 100000, "train.log_every": 1}).save(path)
    proc = torchwork(["run", str(path), "--nproc-per-node", "2", "--json"], tmp_path / "ws",
                     env_extra={"TORCHWORK_COLLECTIVE_TIMEOUT_S": "5"})
    line = proc.stdout.readline()
    while '"event": "step"' not in line:
        assert line, proc.stderr.read()
        line = proc.stdout.readline()
    silent = rank_process(proc, "1")
    silent.send_signal(signal.SIGSTOP)  # alive, but never answers again
    lines = [line]
    while '"event": "run_finished"' not in lines[-1]:  # rank 0 gives up and says why
        lines.append(proc.stdout.readline())
        assert lines[-1], proc.stderr.read()
    # torchrun's agent then stops the hung rank: SIGTERM, and SIGKILL 30 s later (a stopped
    # process takes only the second); the test spares itself the wait
    silent.kill()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    finished = events("".join(lines) + out)[-1]
    assert finished["status"] == "failed" and "Timed out" in finished["error"]
    assert finished["error"].startswith("rank 1 stopped answering (died or hangs: no word "
                                        "from it within 15 s")
    assert "rank 0 saw: RuntimeError: " in finished["error"]


def test_a_cross_validation_group_is_refused_on_several_processes(tmp_path, capsys,
                                                                   monkeypatch):
    path = tmp_path / "run.toml"
    small_config(**{"train.cv_folds": 3}).save(path)
    assert main(["run", str(path), "--nproc-per-node", "2"]) == 2
    monkeypatch.setenv("WORLD_SIZE", "2")  # started by torchrun itself: no group per rank
    assert main(["run", str(path), "--workspace", str(tmp_path / "ws")]) == 2
    assert capsys.readouterr().err.count("set train.cv_fold to train one fold") == 2
    assert not (tmp_path / "ws" / "runs").exists() or not any((tmp_path / "ws" / "runs").iterdir())


def test_under_torchrun_a_one_process_strategy_is_refused(tmp_path, capsys, monkeypatch):
    path = tmp_path / "run.toml"
    small_config(**{"train.strategy": "none"}).save(path)
    monkeypatch.setenv("WORLD_SIZE", "2")
    ws = str(tmp_path / "ws")
    assert main(["run", str(path), "--workspace", ws]) == 2
    err = capsys.readouterr().err
    assert "each would train the whole run; set train.strategy='ddp'" in err


def test_only_a_collective_failure_names_the_ranks_that_never_reported_it(monkeypatch):
    from engine.distributed import group

    monkeypatch.setattr(group, "ROLL_CALL_S", 0.3)
    rank0 = group.DataParallel(0, 3, torch.device("cpu"), None)
    rank0.store = torch.distributed.HashStore()
    rank0.store.set("torchwork/failed/2", "1")  # rank 2 failed too; rank 1 said nothing
    timeout = RuntimeError("[../gloo/transport/tcp/unbound_buffer.cc:81] Timed out waiting")
    said = rank0.name_the_silent(timeout, "RuntimeError: Timed out waiting")
    assert said.startswith("rank 1 stopped answering (died or hangs")
    assert said.endswith("rank 0 saw: RuntimeError: Timed out waiting")
    # a failure of this rank's own (a bug, a bad file) is not blamed on a rank still waiting
    assert rank0.name_the_silent(ValueError("bad"), "ValueError: bad") == "ValueError: bad"
