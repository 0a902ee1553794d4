"""Checkpoints of a process group (torch.distributed.checkpoint): every rank saves its part,
a save cut short keeps the last good checkpoint, a damaged shard is named, and a run resumes
exactly, on the same or another number of processes, and after an elastic restart.

Resuming on another number of processes keeps the global batch (data.batch_size is per
process: each rank trains its share of every batch), so the run ends with the weights the
uninterrupted run ends with, within float tolerance. The 2-process runs are compared with
one process of the whole batch, which test_distributed shows to train alike."""

import pickle
import shutil

import pytest
import torch
import torch.distributed as dist

from engine.cli import main
from engine.config import RunConfig
from engine.distributed import DataParallel
from engine.export import load_run_model
from engine.training import Trainer
from engine.training.checkpoint import WEIGHTS, CheckpointError, load_checkpoint
from engine.workspace import Workspace
from engine.workspace.diskspace import is_disk_full

from .test_distributed import custom_net, events, small_config, torchwork

THREE_EPOCHS = {"train.epochs": 3, "train.log_every": 5}  # 13 steps an epoch
WHOLE = {"data.batch_size": 64}  # one process with the batch of two processes of 32


def uninterrupted(**changes) -> dict:
    trainer = Trainer(small_config(**{**THREE_EPOCHS, **WHOLE, **changes}))
    assert trainer.run().status == "completed"
    return trainer.model.state_dict()


def final_weights(ws) -> tuple:
    with Workspace(ws) as store:
        runs = store.list_runs()
        assert len(runs) == 1  # a resume or a restart continues the same run
        run = runs[0]
        state = load_checkpoint(run.dir / "checkpoints" / "last.pt", map_location="cpu",
                                need=WEIGHTS)
    return run, state


def assert_close(got: dict, expected: dict) -> None:
    assert set(got) == set(expected)
    for name, value in expected.items():
        torch.testing.assert_close(got[name], value, rtol=1e-4, atol=1e-5)


def launch(args, ws, **kw):
    proc = torchwork(args, ws, **kw)
    out, err = proc.communicate(timeout=240)
    return proc.returncode, out, err


# --- one process holding a process group of one: the format itself --------------------
@pytest.fixture
def group(tmp_path):
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    yield DataParallel(0, 1, torch.device("cpu"), dist.group.WORLD)
    if dist.is_initialized():
        dist.destroy_process_group()


def sharded_run(group, folder, **changes):
    """A trained run whose checkpoint is written the process group's way."""
    trainer = Trainer(small_config(**{"train.epochs": 1, "optim.name": "adam", **changes}))
    assert trainer.run().status == "completed"
    trainer.dist = group
    trainer.checkpoint_dir = folder
    return trainer, trainer.save_checkpoint("interval")


@pytest.mark.slow
def test_a_sharded_checkpoint_holds_every_part_and_loads_without_a_process_group(tmp_path,
                                                                                 group):
    trainer, path = sharded_run(group, tmp_path / "ck")
    raw = torch.load(path, weights_only=True)
    shards = tmp_path / "ck" / raw["shards"]
    assert (shards / ".metadata").is_file() and (shards / "rank-0.pt").is_file()
    assert not any(isinstance(v, torch.Tensor) for v in raw["model"].values())  # in the shards
    dist.destroy_process_group()  # export, compression, a teacher: no process group
    weights = load_checkpoint(path, need=WEIGHTS)["model"]
    assert_close(weights, trainer.model.state_dict())
    resumed = Trainer(small_config(**{"train.epochs": 1, "optim.name": "adam"}))
    resumed.load_checkpoint(path)
    assert_close(resumed.model.state_dict(), trainer.model.state_dict())
    assert_close(resumed.optimizer.state_dict()["state"][0],
                 trainer.optimizer.state_dict()["state"][0])
    assert resumed.step == trainer.step == 26


def test_a_save_cut_short_keeps_the_last_good_checkpoint(tmp_path, group, monkeypatch):
    trainer, path = sharded_run(group, tmp_path / "ck")
    before = torch.load(path, weights_only=True)["shards"]
    trainer.step += 1
    import torch.distributed.checkpoint as dcp

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(dcp, "save", disk_full)
    with pytest.raises(CheckpointError, match=r"disk full .*: checkpoint .*last.pt was not "
                                              r"written \(rank 0: .*No space left.*the "
                                              r"previous one is kept") as raised:
        trainer.save_checkpoint("interval")
    assert is_disk_full(raised.value)  # the run stops with its last good checkpoint
    assert torch.load(path, weights_only=True)["shards"] == before
    assert [p.name for p in (tmp_path / "ck").glob("shards-*")] == [before]
    assert_close(load_checkpoint(path, need=WEIGHTS)["model"], trainer.model.state_dict())


def test_a_missing_or_damaged_shard_is_named(tmp_path, group):
    _, path = sharded_run(group, tmp_path / "ck")
    shards = tmp_path / "ck" / torch.load(path, weights_only=True)["shards"]
    shard = next(shards.glob("*.distcp"))
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=f"truncated shard {shard}"):
        load_checkpoint(path, need=WEIGHTS)
    shard.unlink()
    with pytest.raises(CheckpointError, match=f"missing its shard {shard}: use an earlier"):
        load_checkpoint(path)
    (shards / ".metadata").unlink()
    with pytest.raises(CheckpointError, match="lack their .metadata file"):
        load_checkpoint(path, need=WEIGHTS)


class _Evil:
    def __reduce__(self):
        return (print, ("this ran",))


def test_shard_metadata_that_would_run_code_is_refused_unread(tmp_path, group, capsys):
    _, path = sharded_run(group, tmp_path / "ck")
    shards = tmp_path / "ck" / torch.load(path, weights_only=True)["shards"]
    (shards / ".metadata").write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(CheckpointError, match=r"refused: .metadata names builtins.print"):
        load_checkpoint(path, need=WEIGHTS)
    assert "this ran" not in capsys.readouterr().out


# --- two processes ----------------------------------------------------------------------
@pytest.mark.slow
def test_a_two_process_run_resumes_exactly_on_two_and_on_one_process(tmp_path):
    config = tmp_path / "run.toml"
    small_config(**THREE_EPOCHS, **{"train.max_steps": 20}).save(config)
    ws = tmp_path / "ws"
    code, _, err = launch(["run", str(config), "--nproc-per-node", "2"], ws)
    assert code == 0, err
    run, stopped = final_weights(ws)
    assert stopped["progress"]["step"] == 20 and stopped["world"] == 2
    shards = run.dir / "checkpoints" / stopped["shards"]
    assert {p.name for p in shards.glob("rank-*.pt")} == {"rank-0.pt", "rank-1.pt"}
    expected = uninterrupted()
    # 2 -> 2: the same processes again, each with its own random state
    twice = tmp_path / "twice"
    shutil.copytree(ws, twice)
    code, out, err = launch(["resume", "1", "--nproc-per-node", "2", "--json",
                             "--set", "train.max_steps=0"], twice)
    assert code == 0, err
    assert events(out)[0]["start_step"] == 20 and events(out)[-1]["steps"] == 39
    assert_close(final_weights(twice)[1]["model"], expected)
    assert_close(load_run_model(twice, 1).model.state_dict(), expected)  # export reads shards
    # 2 -> 1: one process takes the global batch of 64
    assert main(["resume", "1", "--workspace", str(ws), "--set", "train.max_steps=0"]) == 0
    run, state = final_weights(ws)
    assert_close(state["model"], expected)
    assert "shards" not in state  # one process writes the one-file checkpoint
    assert RunConfig.from_toml(run.config_toml).data.batch_size == 64
    log = (run.dir / "log.txt").read_text()
    assert ("a checkpoint of 2 process(es) resumed on 1: data.batch_size=64 per process keeps "
            "the global batch of 64; the random state of rank(s) 1") in log


@pytest.mark.slow
def test_ddp_resume_with_dropout_is_bit_exact(tmp_path):
    """Each rank resumes its own random state: the ranks' dropout draws differ after an
    epoch (their last shares are 26 and 25 rows), so one state for all would not do."""
    changes = {**THREE_EPOCHS, "train.epochs": 2, "model.dropout": 0.3}
    whole, part = tmp_path / "whole.toml", tmp_path / "part.toml"
    small_config(**changes).save(whole)
    small_config(**changes, **{"train.max_steps": 20}).save(part)
    for config, ws in ((whole, tmp_path / "a"), (part, tmp_path / "b")):
        code, _, err = launch(["run", str(config), "--nproc-per-node", "2"], ws)
        assert code == 0, err
    code, _, err = launch(["resume", "1", "--nproc-per-node", "2", "--set",
                           "train.max_steps=0"], tmp_path / "b")
    assert code == 0, err
    expected, got = final_weights(tmp_path / "a")[1], final_weights(tmp_path / "b")[1]
    assert got["progress"]["step"] == expected["progress"]["step"] == 26
    for name, value in expected["model"].items():
        assert torch.equal(got["model"][name], value), name


@pytest.mark.slow
def test_a_one_process_checkpoint_resumes_on_two_processes(tmp_path):
    config = tmp_path / "run.toml"
    small_config(**THREE_EPOCHS, **WHOLE, **{"train.max_steps": 20}).save(config)
    ws = tmp_path / "ws"
    assert main(["run", str(config), "--workspace", str(ws)]) == 0
    code, out, err = launch(["resume", "1", "--nproc-per-node", "2", "--json",
                             "--set", "train.max_steps=0"], ws)
    assert code == 0, err
    run, state = final_weights(ws)
    assert state["world"] == 2 and state["progress"]["step"] == 39
    assert_close(state["model"], uninterrupted())
    assert RunConfig.from_toml(run.config_toml).data.batch_size == 32
    assert "resumed on 2: data.batch_size=32 per process keeps the global batch of 64" in (
        run.dir / "log.txt").read_text()


def test_a_resume_on_processes_that_cannot_share_the_run_is_refused(tmp_path, capsys):
    config = tmp_path / "run.toml"
    small_config(**{"data.batch_size": 33, "train.max_steps": 3}).save(config)
    ws = tmp_path / "ws"
    assert main(["run", str(config), "--workspace", str(ws)]) == 0
    from engine.training.resume import ResumeError, prepare_resume

    with Workspace(ws) as store, pytest.raises(ResumeError, match=(
            r"global batch of 33 \(data.batch_size=33 on 1 process\), which 2 processes cannot "
            r"share evenly: resume on a number of processes that divides 33")):
        prepare_resume(store, "1", world=2, build=Trainer)
    single = small_config(**{"train.strategy": "none", "train.max_steps": 3})
    single.save(config)
    assert main(["run", str(config), "--workspace", str(ws)]) == 0
    with Workspace(ws) as store, pytest.raises(ResumeError, match=(
            r"run 2 trains in one process \(train.strategy='none'\): resume it without "
            r"--nproc-per-node")):
        prepare_resume(store, "2", world=2, build=Trainer)


@pytest.mark.slow
def test_a_killed_rank_is_restarted_and_the_run_resumes_from_its_checkpoint(tmp_path):
    arch = custom_net(tmp_path, """
        if (self.calls == 18 and dist.is_initialized() and dist.get_rank() == 1
                and os.environ["TORCHELASTIC_RESTART_COUNT"] == "0"):
            os.kill(os.getpid(), signal.SIGKILL)""")
    config = tmp_path / "run.toml"
    small_config(**THREE_EPOCHS, **{"model.arch": arch}).save(config)
    ws = tmp_path / "ws"
    code, out, err = launch(["run", str(config), "--nproc-per-node", "2", "--max-restarts",
                             "2", "--json"], ws)
    assert code == 0, err
    run, state = final_weights(ws)
    assert run.status == "completed" and state["progress"]["step"] == 39
    log = (run.dir / "log.txt").read_text()
    assert "restart 1 of 2 after rank 1 died: resumed from step 13" in log
    torch.manual_seed(0)
    expected = Trainer(small_config(**THREE_EPOCHS, **WHOLE,
                                    **{"model.arch": arch}))
    assert expected.run().status == "completed"
    assert_close(state["model"], expected.model.state_dict())


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_checkpoint_of_an_nccl_group_on_the_gpu_loads_on_the_cpu(tmp_path):
    """Not run on this project's CPU machines: run with `pytest -m cuda` on a GPU machine."""
    torch.cuda.set_device(0)
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("nccl", store=store, rank=0, world_size=1,
                            device_id=torch.device("cuda", 0))
    try:
        control = dist.new_group(backend="gloo")
        on_gpu = DataParallel(0, 1, torch.device("cuda", 0), control)
        trainer, path = sharded_run(on_gpu, tmp_path / "ck", **{"train.device": "cuda"})
    finally:
        dist.destroy_process_group()
    on_cpu = Trainer(small_config(**{"train.epochs": 1, "optim.name": "adam"}))
    on_cpu.load_checkpoint(path)
    assert_close(on_cpu.model.state_dict(),
                 {k: v.cpu() for k, v in trainer.model.state_dict().items()})


def test_max_restarts_needs_the_processes_it_restarts(tmp_path, capsys):
    config = tmp_path / "run.toml"
    small_config().save(config)
    assert main(["run", str(config), "--max-restarts", "2"]) == 2
    assert main(["resume", "1", "--nproc-per-node", "2", "--max-restarts", "-1"]) == 2
    err = capsys.readouterr().err
    assert "--max-restarts restarts the processes of --nproc-per-node N: give both" in err
    assert "--max-restarts must be >= 0 (got -1)" in err
