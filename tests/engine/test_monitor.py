"""The hardware sampler: GPU paths through a pynvml stand-in (pynvml's names and error
types), the real pynvml's no-library path on this machine, storage with the run, the
warnings and `torchwork monitor`."""

import json
import math
import os
import subprocess
import sys
import threading
import time
import types

import psutil
import pynvml
import pytest

from engine.cli import main
from engine.monitor import Alerts, Sample, Sampler
from engine.monitor.backends import HOST_EVERY_S, NvmlBackend, PsutilBackend
from engine.monitor.sampler import GpuReading
from engine.monitor.standin import GIB, StandInNvml


def _gpus_here() -> int | None:
    """GPUs the real NVML finds on this machine; None without an NVIDIA driver (as in CI)."""
    try:
        pynvml.nvmlInit()
    except Exception:
        return None
    try:
        return pynvml.nvmlDeviceGetCount()
    finally:
        pynvml.nvmlShutdown()


GPUS_HERE = _gpus_here()


@pytest.mark.skipif(GPUS_HERE is not None, reason="an NVIDIA driver is here: see test_cuda.py")
def test_real_pynvml_without_a_driver_reports_the_missing_library_once_and_reads_the_host():
    problems = []
    sampler = Sampler(0.1, on_problem=problems.append)  # the real pynvml module
    first = sampler.sample()
    time.sleep(0.1)  # a CPU share needs a window of CPU-time ticks
    second = sampler.sample()
    assert problems == ["No NVIDIA GPU found: NVML library not found"]
    assert second.problems == ("No NVIDIA GPU found: NVML library not found",)
    assert first.gpus == () and second.gpus == ()
    assert second.ram_total > second.ram_used > 0
    assert second.process_rss > 0 and math.isfinite(second.process_cpu)


def test_gpu_readings_arrive_in_plain_units():
    nvml = StandInNvml(count=2)
    nvml.memory_used = [int(20 * GIB), int(40 * GIB)]
    sample = Sampler(0.1, nvml=nvml).sample()
    assert [g.index for g in sample.gpus] == [0, 1]
    g = sample.gpu(1)
    assert g.name == "NVIDIA H100 80GB HBM3"
    assert g.utilization == 87 and g.memory_utilization == 43
    assert g.memory_used == 40 * GIB and g.memory_total == 80 * GIB
    assert 150 <= g.power <= 450 and g.power_limit == 700
    assert g.temperature == 65 and g.sm_clock == 1980 and g.memory_clock == 2619
    assert g.pcie_tx == 1_200_000 * 1024 and g.pcie_rx == 5_600_000 * 1024
    assert g.process_memory == int(0.25 * 40 * GIB)  # only this process's, not pid 1's
    assert sample.problems == ()


def test_process_memory_counts_the_run_process_when_the_sampler_runs_for_it():
    nvml = StandInNvml(pids=(4242,))
    assert Sampler(0.1, nvml=nvml).sample().gpus[0].process_memory == 0
    sample = Sampler(0.1, nvml=nvml, pids=(4242,)).sample()
    assert sample.gpus[0].process_memory == int(0.25 * nvml.memory_used[0])


def test_a_field_this_gpu_does_not_support_is_given_up_with_one_report():
    nvml = StandInNvml()
    nvml.fail["nvmlDeviceGetPowerUsage"] = pynvml.NVMLError_NotSupported()
    problems = []
    sampler = Sampler(0.1, nvml=nvml, on_problem=problems.append)
    samples = [sampler.sample() for _ in range(3)]
    assert len(problems) == 1 and "power draw is not available on this GPU" in problems[0]
    assert nvml.calls["nvmlDeviceGetPowerUsage"] == 1  # not asked again
    assert all(math.isnan(s.gpus[0].power) for s in samples)
    assert samples[-1].gpus[0].utilization == 87  # the rest is still read


def test_a_gpu_lost_mid_run_stops_its_readings_and_is_reported_once():
    nvml = StandInNvml(count=2)
    problems = []
    sampler = Sampler(0.1, nvml=nvml, on_problem=problems.append)
    before = sampler.sample()
    nvml.fail["nvmlDeviceGetMemoryInfo_v2"] = pynvml.NVMLError_GpuIsLost()
    after = [sampler.sample() for _ in range(3)]
    assert before.gpus[0].memory_used > 0
    assert len(problems) == 2  # both GPUs fell off in this stand-in
    assert problems[0].startswith("GPU 0 (NVIDIA H100 80GB HBM3) is lost")
    assert all(math.isnan(g.memory_used) and math.isnan(g.utilization)
               for s in after for g in s.gpus)
    assert after[-1].ram_total > 0  # the host readings go on


def test_memory_used_leaves_out_the_drivers_reserve_as_nvidia_smi_does():
    nvml = StandInNvml()
    nvml.memory_used = [int(20 * GIB)]
    assert Sampler(0.1, nvml=nvml).sample().gpus[0].memory_used == 20 * GIB  # info v2
    # a driver older than v2 (before R510): v1, asked once, reserve included
    old = StandInNvml()
    old.memory_used = [int(20 * GIB)]
    old.fail["nvmlDeviceGetMemoryInfo_v2"] = pynvml.NVMLError_FunctionNotFound()
    problems = []
    sampler = Sampler(0.1, nvml=old, on_problem=problems.append)
    readings = [sampler.sample().gpus[0].memory_used for _ in range(3)]
    assert readings == [20 * GIB + old.memory_reserved] * 3
    assert old.calls["nvmlDeviceGetMemoryInfo_v2"] == 1 and problems == []


def test_other_nvml_errors_mid_run_are_reported_once_and_retried():
    nvml = StandInNvml()
    problems = []
    sampler = Sampler(0.1, nvml=nvml, on_problem=problems.append)
    nvml.fail["nvmlDeviceGetTemperature"] = pynvml.NVMLError_Unknown()
    sampler.sample(), sampler.sample()
    del nvml.fail["nvmlDeviceGetTemperature"]
    sample = sampler.sample()
    assert len(problems) == 1 and "temperature could not be read" in problems[0]
    assert sample.gpus[0].temperature == 64


@pytest.mark.parametrize("error, cause", [
    (pynvml.NVMLError_LibraryNotFound(), "NVML library not found"),
    (pynvml.NVMLError_DriverNotLoaded(), "the NVIDIA driver is not loaded"),
])
def test_nvml_failing_at_start_names_the_cause(error, cause):
    nvml = StandInNvml()
    nvml.fail["nvmlInit"] = error
    problems = []
    sample = Sampler(0.1, nvml=nvml, on_problem=problems.append).sample()
    assert problems == [f"No NVIDIA GPU found: {cause}"] and sample.gpus == ()


def test_a_driver_with_no_gpu_says_so():
    problems = []
    backend = NvmlBackend(StandInNvml(count=0), report=problems.append)
    assert backend.read() == [] and "reports no GPU" in problems[0]


def test_throttle_reasons_read_as_thermal_or_power():
    nvml = StandInNvml()
    nvml.throttle_reasons = [pynvml.nvmlClocksEventReasonHwThermalSlowdown]
    g = Sampler(0.1, nvml=nvml).sample().gpus[0]
    assert g.thermal_throttled and not g.power_throttled
    nvml.throttle_reasons = [pynvml.nvmlClocksEventReasonSwPowerCap]
    g = Sampler(0.1, nvml=nvml).sample().gpus[0]
    assert g.power_throttled and not g.thermal_throttled


def test_the_thread_samples_at_its_interval_with_the_step_and_survives_a_failing_listener():
    got, step = [], [0]
    done = threading.Event()

    def listener(sample):
        got.append(sample)
        step[0] += 1
        if len(got) == 2:
            raise RuntimeError("a listener bug")
        if len(got) >= 4:
            done.set()

    problems = []
    sampler = Sampler(0.1, step=lambda: step[0], on_sample=listener, nvml=False,
                      on_problem=problems.append).start()
    try:
        assert done.wait(10)
    finally:
        sampler.stop()
    assert [s.step for s in got[:4]] == [0, 1, 2, 3]
    assert all(b.time > a.time for a, b in zip(got, got[1:]))
    assert problems == ["hardware sampling failed (RuntimeError: a listener bug)"]
    assert not sampler.running


@pytest.mark.parametrize("interval", [0.05, 11, 0])
def test_an_interval_outside_0_1_to_10_s_is_refused(interval):
    with pytest.raises(ValueError, match="0.1 to 10"):
        Sampler(interval)


def _gpu(**values) -> GpuReading:
    base = dict(index=0, name="g", uuid="", utilization=90.0, memory_used=10 * GIB,
                memory_total=80 * GIB, power=300.0, power_limit=700.0, temperature=60.0)
    return GpuReading(**{**base, **values})


def test_warnings_memory_nearly_full_sustained_idle_while_training_and_throttling():
    alerts = Alerts(idle_after_s=30)
    full = Sample(time=0.0, step=1, gpus=(_gpu(memory_used=75 * GIB),))
    assert any("memory 94% full" in w for w in alerts.update(full, training=True))
    idle = [Sample(time=t, step=1, gpus=(_gpu(utilization=10.0),)) for t in (0, 20, 31)]
    assert alerts.update(idle[0], True) == [] and alerts.update(idle[1], True) == []
    assert any("input pipeline may be the bottleneck" in w for w in alerts.update(idle[2], True))
    busy_again = Sample(time=32, step=1, gpus=(_gpu(utilization=95.0),))
    assert alerts.update(busy_again, True) == []
    late = Sample(time=70, step=1, gpus=(_gpu(utilization=10.0),))
    assert alerts.update(late, True) == []  # the idle stretch starts over
    assert Alerts().update(Sample(time=100, step=None, gpus=(_gpu(utilization=0.0),)),
                           training=False) == []
    hot = Sample(time=0, step=1, gpus=(_gpu(throttle_reasons=0x40),))
    assert any("thermal throttling" in w for w in Alerts().update(hot, True))
    capped = Sample(time=0, step=1, gpus=(_gpu(throttle_reasons=0x04),))
    assert any("power throttling" in w for w in Alerts().update(capped, True))


def test_a_cli_run_stores_its_samples_with_steps(tiny_config, tmp_path, workspace_dir):
    from engine.workspace import Workspace

    config = tmp_path / "run.toml"
    tiny_config(**{"monitor.interval": 0.1, "train.epochs": 40}).save(config)
    assert main(["run", str(config), "--json"]) == 0
    with Workspace() as ws:
        run = ws.list_runs()[0]
        history = ws.hardware_samples(run.id)
    host = history["host"]
    assert len(host["time"]) >= 2 and (host["ram_total"] > 0).all()
    assert (host["step"] >= 0).all() and host["step"][-1] > host["step"][0]
    assert sorted(history["gpus"]) == list(range(GPUS_HERE or 0))


def test_samples_with_gpus_round_trip_through_the_workspace(workspace_dir, tiny_config):
    from engine.workspace import Workspace

    sampler = Sampler(0.1, nvml=StandInNvml(count=2), step=lambda: 7)
    samples = [sampler.sample(), sampler.sample()]
    with Workspace() as ws:
        run = ws.create_run(tiny_config())
        ws.add_hardware_samples(run.id, samples)
        history = ws.hardware_samples(run.id)
        ws.truncate_after(run.id, 6)
        assert len(ws.hardware_samples(run.id)["host"]["time"]) == 0
    assert sorted(history["gpus"]) == [0, 1]
    gpu = history["gpus"][1]
    assert list(gpu["time"]) == [s.time for s in samples]
    assert list(gpu["memory_used"]) == [s.gpus[1].memory_used for s in samples]
    assert list(gpu["step"]) == [7, 7]
    assert math.isnan(gpu["torch_allocated"][0])


def test_monitor_command_prints_json_lines(capsys):
    assert main(["monitor", "--interval", "0.1", "--count", "2", "--json"]) == 0
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    assert len(lines) == 2 and lines[0]["ram_total"] > 0
    assert [g["index"] for g in lines[0]["gpus"]] == list(range(GPUS_HERE or 0))
    no_gpu = captured.err.count("No NVIDIA GPU found: NVML library not found")
    assert no_gpu == (1 if GPUS_HERE is None else 0)


def test_monitor_command_prints_a_table(capsys):
    assert main(["monitor", "--interval", "0.1", "--count", "2"]) == 0
    out = capsys.readouterr().out
    assert "CPU" in out and "RAM" in out


def test_monitor_command_refuses_a_bad_interval(capsys):
    assert main(["monitor", "--interval", "20"]) == 2
    assert "0.1 to 10" in capsys.readouterr().err


class _FakeCuda:
    """torch.cuda as the torch backend reads it: two devices, numbered unlike NVML's."""

    def __init__(self, initialised):
        self.initialised = initialised
        self.uuids = ["00000000-0000-0000-0000-000000000001",
                      "00000000-0000-0000-0000-000000000000"]

    def is_initialized(self):
        return self.initialised

    def device_count(self):
        return 2

    def get_device_properties(self, i):
        return types.SimpleNamespace(uuid=self.uuids[i])

    def memory_allocated(self, i):
        return (i + 1) * GIB

    def memory_reserved(self, i):
        return (i + 2) * GIB

    def max_memory_allocated(self, i):
        return (i + 3) * GIB


def test_torch_counters_go_to_the_same_gpu_by_uuid_and_only_once_cuda_is_initialised(
        monkeypatch):
    cuda = _FakeCuda(initialised=False)
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    sampler = Sampler(0.1, nvml=StandInNvml(count=2))
    assert all(math.isnan(g.torch_allocated) for g in sampler.sample().gpus)
    cuda.initialised = True
    by_index = {g.index: g for g in sampler.sample().gpus}
    # CUDA device 0 is NVML's GPU 1 here (CUDA_VISIBLE_DEVICES=1,0)
    assert by_index[1].torch_allocated == 1 * GIB and by_index[1].torch_reserved == 2 * GIB
    assert by_index[0].torch_allocated == 2 * GIB and by_index[0].torch_peak == 4 * GIB


def test_torch_counters_alone_when_nvml_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch",
                        types.SimpleNamespace(cuda=_FakeCuda(initialised=True)))
    gpus = Sampler(0.1, nvml=False).sample().gpus
    assert [g.name for g in gpus] == ["CUDA device 0", "CUDA device 1"]
    assert gpus[0].torch_reserved == 2 * GIB and math.isnan(gpus[0].utilization)


def test_the_process_cpu_and_ram_of_a_torchrun_run_add_up_its_ranks():
    """Under torchrun the run is several processes (app: run_pids): the Hardware dock's
    process CPU and RAM are theirs together, not rank 0's alone."""
    busy = subprocess.Popen([sys.executable, "-c",
                             "import time\nend = time.time() + 20\nwhile time.time() < end: pass"])
    try:
        alone = PsutilBackend()
        together = PsutilBackend(pids={os.getpid(), busy.pid})
        for backend in (alone, together):
            backend.read()
        time.sleep(HOST_EVERY_S + 0.1)  # this process sleeps; the other rank computes
        mine, ours = alone.read(), together.read()
        assert ours["process_cpu"] > mine["process_cpu"] + 30
        rank_rss = psutil.Process(busy.pid).memory_info().rss
        assert ours["process_rss"] >= mine["process_rss"] + 0.5 * rank_rss
        busy.kill()
        busy.wait()
        time.sleep(0.1)
        together.read()  # the rank has ended: it drops out, and the reading goes on
        time.sleep(0.1)
        assert together.others == [] and together.read()["process_rss"] > 0
    finally:
        busy.kill()
