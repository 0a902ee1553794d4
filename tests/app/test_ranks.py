"""Runs on several processes in the window: Run ▸ Start on N processes, and a torchrun run
from a terminal followed live after File ▸ Open run (CPU, gloo)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch

from app.bridge import IDLE, PAUSED
from app.panels.ranks_dialog import RanksDialog
from engine.workspace import Workspace
from engine.workspace.store import DB_NAME

ROOT = Path(__file__).parents[2]


def long_config(tiny_config, **changes):
    return tiny_config(**{"data.n_samples": 2000, "train.epochs": 100000, "train.log_every": 1,
                          **changes})


def choose(monkeypatch, processes: int) -> None:
    """The dialog answers ``processes`` and Start, as a user would."""
    def exec_(dialog):
        dialog.spin.setValue(processes)
        return 1

    monkeypatch.setattr(RanksDialog, "exec", exec_)


def row_status(window, run_id: int) -> str | None:
    model = window.runs.model
    row = model.row_of(run_id)
    return None if row is None else model.run(row).status


def test_the_dialog_offers_one_process_per_gpu_or_cpu_processes_up_to_the_cores(
        qtbot, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    gpus = RanksDialog("auto", 32)
    qtbot.addWidget(gpus)
    assert (gpus.kind, gpus.count, gpus.backend) == ("cuda", 4, "nccl")
    assert gpus.spin.maximum() == 4 and gpus.processes == 4
    assert "4 CUDA devices found" in gpus.found.text()
    cpu = RanksDialog("cpu", 32)  # a run the form puts on the CPU, GPUs or not
    qtbot.addWidget(cpu)
    cores = len(os.sched_getaffinity(0))
    assert (cpu.kind, cpu.backend) == ("cpu", "gloo") and cpu.spin.maximum() == cores
    cpu.spin.setValue(min(2, cores))
    assert cpu.batch.text() == f"data.batch_size=32 per process: {32 * min(2, cores)} " \
                               f"samples per step"


@pytest.mark.slow
def test_a_run_started_on_two_processes_is_followed_and_steered_like_its_own(
        qtbot, make_window, tiny_config, monkeypatch):
    window = make_window(long_config(tiny_config))
    choose(monkeypatch, 2)
    assert window.act_start_ranks.isEnabled()
    with qtbot.waitSignal(window.bridge.runCreated, timeout=180000) as created:
        window.act_start_ranks.trigger()
    assert window.bridge.state != IDLE and not window.act_start_ranks.isEnabled()
    with qtbot.waitSignal(window.bridge.metricsLogged, timeout=60000):
        pass
    info = created.args[0]
    assert window.windowTitle() == f"Torchwork — run {info.run_id} {info.name}"
    with qtbot.waitSignal(window.bridge.paused, timeout=30000):
        window.act_pause.trigger()
    assert window.bridge.state == PAUSED and window.status.state.text() == "Paused"
    with qtbot.waitSignal(window.bridge.resumed, timeout=30000):
        window.act_resume.trigger()
    window.runs.reload()
    qtbot.waitUntil(lambda: row_status(window, info.run_id) == "running", timeout=30000)
    with qtbot.waitSignal(window.bridge.runEnded, timeout=60000) as ended:
        window.act_stop.trigger()
    qtbot.waitUntil(lambda: not window.bridge.busy, timeout=30000)
    assert ended.args[0].status == "stopped"
    window.plots.refresh()
    assert len(window.plots.curve_data("train_loss")[0]) >= 1
    assert "stopped" in window.status.state.text().lower()
    assert window.act_start_ranks.isEnabled()
    window.runs.reload()  # as when its tab is brought forward
    qtbot.waitUntil(lambda: row_status(window, info.run_id) == "stopped", timeout=30000)
    with Workspace(window.workspace_dir) as ws:
        assert [r.id for r in ws.list_runs()] == [info.run_id]  # one run, rank 0's


@pytest.mark.slow
def test_a_launch_that_cannot_start_says_why_in_one_line(qtbot, make_window, tiny_config,
                                                         monkeypatch):
    window = make_window(tiny_config(**{"train.strategy": "none"}))
    choose(monkeypatch, 2)
    with qtbot.waitSignal(window.bridge.buildFailed, timeout=120000) as failed:
        window.act_start_ranks.trigger()
    qtbot.waitUntil(lambda: not window.bridge.busy, timeout=30000)
    assert "train.strategy='none' trains in one: set train.strategy='ddp'" in failed.args[0]
    assert "Traceback" not in failed.args[0]
    assert window.act_start.isEnabled()


def wait_or_dump_stacks(proc: subprocess.Popen, timeout: float) -> bool:
    """Wait for ``proc`` to end; past ``timeout`` make it and its children print their
    Python stacks (SIGABRT under PYTHONFAULTHANDLER) and say False."""
    try:
        proc.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        for process in [*psutil.Process(proc.pid).children(recursive=True),
                        psutil.Process(proc.pid)]:
            try:
                process.send_signal(signal.SIGABRT)
            except psutil.Error:
                pass
        time.sleep(2)
        return False


@pytest.mark.slow
def test_a_torchrun_run_from_a_terminal_is_followed_live_after_open_run(
        qtbot, make_window, tiny_config, tmp_path):
    window = make_window()
    path = tmp_path / "run.toml"
    long_config(tiny_config, **{"monitor.interval": 0.2}).save(path)
    # faulthandler: a process tree that does not end after Ctrl-C is made to print its stacks
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
           "PYTHONFAULTHANDLER": "1"}
    err = open(tmp_path / "err.txt", "w")
    proc = subprocess.Popen([sys.executable, "-m", "app", "run", str(path), "--nproc-per-node",
                             "2", "--workspace", str(window.workspace_dir)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=err)
    runs = []
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:  # the run is there and has logged steps
            if (window.workspace_dir / DB_NAME).exists():
                with Workspace(window.workspace_dir) as ws:
                    runs = ws.list_runs()
                    if runs and len(ws.step_metrics(runs[0].id)["step"]) >= 2:
                        break
            time.sleep(0.5)
        assert runs, "the torchrun run did not start"
        run = runs[0]
        window.runs.reload()  # the Runs dock lists it, as it does any other process's run
        qtbot.waitUntil(lambda: row_status(window, run.id) == "running", timeout=30000)
        assert window.open_run(run.id)
        assert window.follower.following
        window.plots.refresh()
        first = len(window.plots.curve_data("train_loss")[0])
        qtbot.waitUntil(lambda: window.plots.refresh() is not None and
                        len(window.plots.curve_data("train_loss")[0]) > first + 5,
                        timeout=30000)  # its curves go on as it trains
        window.hardware.refresh()
        sampled = len(window.hardware.curve_data("ram_used")[0])
        qtbot.waitUntil(lambda: window.hardware.refresh() is not None and
                        len(window.hardware.curve_data("ram_used")[0]) > sampled + 2,
                        timeout=30000)  # and so do its hardware readings
        with qtbot.waitSignal(window.follower.ended, timeout=60000) as ended:
            proc.send_signal(signal.SIGINT)  # Ctrl-C in its terminal
        # torchrun's agent gives a rank 30 s to end after Ctrl-C before it kills it
        exited_in_time = wait_or_dump_stacks(proc, 120)
    finally:
        if proc.poll() is None:
            proc.kill()
        err.close()
    assert exited_in_time, (tmp_path / "err.txt").read_text()[-6000:]
    assert ended.args == [run.id, "stopped"]
    assert window.windowTitle().endswith("(stopped)") and not window.follower.following
    with Workspace(window.workspace_dir) as ws:
        stored = ws.step_metrics(run.id)["step"]
        hardware = ws.hardware_samples(run.id)["host"]["time"]
    window.plots.refresh()
    assert list(window.plots.curve_data("train_loss")[0]) == [float(s) for s in stored]
    window.hardware.refresh()  # each stored sample once, in order
    times = window.hardware.curve_data("ram_used")[0]
    assert len(times) == len(hardware) and list(times) == sorted(times)
