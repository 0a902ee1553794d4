"""Pause, resume and stop from rank 0's command channel reach every rank of a torchrun run
at the same step (CPU, gloo)."""

import os
import subprocess
import sys
import time
from multiprocessing.connection import Listener
from pathlib import Path

import pytest

from engine.profiling.options import CaptureOptions
from engine.training.relay import DONE, WINDOW_ENV, WINDOW_KEY_ENV

from .test_distributed import ROOT, custom_net, small_config


def launch(args, tmp_path, env_extra) -> subprocess.Popen:
    """`torchwork ARGS` with its output in files (a pipe nobody reads would block rank 0)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TORCHWORK_WORKSPACE": str(tmp_path / "ws"),
           "OMP_NUM_THREADS": "1", **env_extra}
    with open(tmp_path / "out.txt", "w") as out, open(tmp_path / "err.txt", "w") as err:
        return subprocess.Popen([sys.executable, "-m", "app", *args], cwd=ROOT, env=env,
                                stdout=out, stderr=err)


class Window:
    """What the window does for a run it starts on several processes: a listener rank 0
    connects to, event batches in, commands out."""

    def __init__(self, tmp_path):
        self.key = os.urandom(16)
        self.listener = Listener(("127.0.0.1", 0), authkey=self.key)
        self.tmp = tmp_path
        self.seen: list[str] = []

    def env(self) -> dict:
        host, port = self.listener.address
        return {WINDOW_ENV: f"{host}:{port}", WINDOW_KEY_ENV: self.key.hex(),
                "COUNT_DIR": str(self.tmp)}

    def accept(self):
        self.conn = self.listener.accept()

    def until(self, name: str, timeout: float = 120) -> list:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.conn.poll(0.5):
                for event, args in self.conn.recv():
                    self.seen.append(event)
                    if event == name:
                        return args
                    assert event != DONE, self.seen
        raise AssertionError(f"no {name} in {timeout} s: {self.seen[-10:]}")

    def counts(self) -> tuple[int, int]:
        return tuple(int((self.tmp / f"rank{r}").read_text() or 0) for r in (0, 1))


@pytest.mark.slow
def test_pause_resume_and_stop_from_the_channel_reach_both_ranks_at_the_same_step(tmp_path):
    # each rank counts its training forwards in a file of its own: the test sees both advance
    arch = custom_net(tmp_path, """
        Path(os.environ["COUNT_DIR"], f"rank{os.environ.get('RANK', '0')}").write_text(
            str(self.calls))""")
    path = tmp_path / "run.toml"
    small_config(**{"model.arch": arch, "train.epochs": 100000,
                    "train.log_every": 1}).save(path)
    window = Window(tmp_path)
    # a pause longer than the collective timeout: the paused ranks keep agreeing meanwhile
    proc = launch(["run", str(path), "--nproc-per-node", "2"], tmp_path,
                  {**window.env(), "TORCHWORK_COLLECTIVE_TIMEOUT_S": "5"})
    try:
        window.accept()
        run = window.until("runCreated")[0]
        window.until("metricsLogged")
        window.conn.send("pause")
        paused_at = window.until("paused")[0].step
        before = window.counts()
        time.sleep(7)
        assert window.counts() == before  # neither rank trains on
        assert before[0] == before[1] == paused_at  # both paused at the same step
        window.conn.send("resume")
        window.until("resumed")
        window.until("metricsLogged")
        window.conn.send(("profile", CaptureOptions(wait=0, warmup=1, active=2,
                                                    profile_memory=False)))
        captured = window.until("profileDone")[0]  # Profile ▸ Capture: rank 0's steps
        window.conn.send("stop")
        stopped = window.until("runEnded")[0]
        window.until(DONE)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, (tmp_path / "err.txt").read_text()[-2000:]
    assert stopped.status == "stopped" and stopped.steps > paused_at
    assert window.counts() == (stopped.steps, stopped.steps)  # both ended at its last step
    assert run.run_id == 1 and "hardwareSampled" in window.seen
    assert captured.trace and Path(captured.trace).is_file() and not captured.partial


def test_every_local_gpu_counts_the_memory_of_every_local_rank():
    """Rank 0 records the run's hardware: on each GPU, the memory of all the processes the
    agent started (its siblings), not its own alone."""
    from types import SimpleNamespace

    from engine.monitor.backends import NvmlBackend
    from engine.monitor.recorder import run_pids
    from engine.monitor.standin import GIB, StandInNvml

    ranks = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
             for _ in range(2)]
    try:
        pids = run_pids(SimpleNamespace(dist=object()), ranks[0].pid)
        assert {r.pid for r in ranks} <= pids and os.getpid() not in pids
        assert run_pids(SimpleNamespace(dist=None)) is None  # one process: its own
        nvml = StandInNvml(count=2, pids=tuple(r.pid for r in ranks))
        nvml.memory_used = [int(8 * GIB), int(8 * GIB)]
        readings = NvmlBackend(nvml, pids=pids).read()
        assert [g["index"] for g in readings] == [0, 1]
        # each rank holds a quarter of the used memory in the stand-in
        assert [g["process_memory"] for g in readings] == [4 * GIB, 4 * GIB]
        alone = NvmlBackend(StandInNvml(count=2, pids=tuple(r.pid for r in ranks)),
                            pids={ranks[0].pid}).read()
        assert [g["process_memory"] for g in alone] == [0.3 * 80 * GIB / 4] * 2
    finally:
        for r in ranks:
            r.kill()
            r.wait()
