"""Energy per run: RAPL package counters (wrap-around, no double counting, unreadable ->
the reason), NVML's energy counter and power integration where it is missing, and the
figures a run reports in its summary, its --json run_finished, its record and the runs
table."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from contextlib import closing
from pathlib import Path

import pytest

from engine.cli import main
from engine.monitor.energy import Energy, EnergyMeter, EnergyUnavailable, RaplReader
from engine.monitor.sampler import GpuReading, Sample
from engine.monitor.standin import StandInNvml
from engine.workspace import Workspace
from engine.workspace.schema import SCHEMA_VERSION

from .old_schema import old_workspace

MAX_UJ = 262_143_328_850


def rapl_domain(root: Path, name: str, label: str, energy_uj: int, span: int = MAX_UJ) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "name").write_text(f"{label}\n")
    (folder / "max_energy_range_uj").write_text(f"{span}\n")
    set_energy(folder, energy_uj)
    return folder


def set_energy(folder: Path, energy_uj: int) -> None:
    """As the kernel shows it: a reader sees the old value or the new one, never half."""
    tmp = folder / "energy_uj.new"
    tmp.write_text(f"{energy_uj}\n")
    os.replace(tmp, folder / "energy_uj")


@pytest.fixture
def rapl_tree(tmp_path):
    """Two packages, each with core and dram subdomains, and a laptop's psys domain."""
    root = tmp_path / "powercap"
    packages = [rapl_domain(root, "intel-rapl:0", "package-0", 5_000_000),
                rapl_domain(root, "intel-rapl:1", "package-1", 7_000_000)]
    subdomains = [rapl_domain(root, "intel-rapl:0:0", "core", 1_000_000),
                  rapl_domain(root, "intel-rapl:0:1", "dram", 2_000_000),
                  rapl_domain(root, "intel-rapl:1:0", "core", 3_000_000),
                  rapl_domain(root, "intel-rapl:2", "psys", 9_000_000)]
    return root, packages, subdomains


def test_rapl_adds_the_packages_and_not_their_subdomains_or_psys(rapl_tree):
    root, (p0, p1), others = rapl_tree
    reader = RaplReader(root)
    set_energy(p0, 5_000_000 + 2_500_000)
    set_energy(p1, 7_000_000 + 1_000_000)
    for folder in others:  # inside a package (or containing it): counted there already
        set_energy(folder, 50_000_000)
    assert reader.poll() == pytest.approx(3.5)
    set_energy(p0, 5_000_000 + 3_500_000)
    assert reader.poll() == pytest.approx(4.5)  # a running total


def test_rapl_counts_a_wrapped_counter_across_its_range(tmp_path):
    folder = rapl_domain(tmp_path, "intel-rapl:0", "package-0", MAX_UJ - 1_000_000)
    reader = RaplReader(tmp_path)
    set_energy(folder, 500_000)  # past max_energy_range_uj, the counter starts again at 0
    assert reader.poll() == pytest.approx(1.5)


def test_unreadable_rapl_is_not_available_with_the_reason(rapl_tree, monkeypatch):
    root, (p0, _), _ = rapl_tree
    blocked = p0 / "energy_uj"
    read_text = Path.read_text

    def as_a_user(path, *args, **kwargs):  # root reads any mode: deny it as the kernel does
        if path == blocked:
            raise PermissionError(13, "Permission denied", str(path))
        return read_text(path, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", as_a_user)
    meter = EnergyMeter(rapl_root=root)
    meter.start()
    energy = meter.read()
    assert (energy.joules, energy.source) == (None, None)
    assert energy.note == (f"not available: RAPL counters are not readable by this user "
                           f"({blocked}: permission denied)")


def test_no_rapl_counters_is_not_available_with_the_reason(tmp_path):
    with pytest.raises(EnergyUnavailable, match="exposes no RAPL package counters"):
        RaplReader(tmp_path)
    meter = EnergyMeter(rapl_root=tmp_path / "missing")
    meter.start()
    assert meter.read().note.startswith("not available: this machine exposes no RAPL")


def gpu_sample(when: float, watts: float, index: int = 0) -> Sample:
    return Sample(time=when, step=None,
                  gpus=(GpuReading(index=index, name="gpu", uuid=f"GPU-{index}", power=watts),))


def uuid_of(nvml: StandInNvml, index: int) -> str:
    return nvml.nvmlDeviceGetUUID(index)


def test_nvml_energy_is_the_counter_difference_of_the_runs_gpu_only():
    nvml = StandInNvml(count=2)
    meter = EnergyMeter(gpus=[uuid_of(nvml, 1)], nvml=nvml)
    meter.start()
    nvml.energy_mj[1] += 5_250  # mJ
    nvml.energy_mj[0] += 99_000  # another run's GPU
    energy = meter.read()
    assert (energy.joules, energy.source, energy.note) == (pytest.approx(5.25), "nvml", "")
    meter.close()
    assert not nvml.initialised


def test_a_gpu_without_the_counter_integrates_its_power_samples():
    nvml = StandInNvml()
    nvml.fail["nvmlDeviceGetTotalEnergyConsumption"] = nvml.NVMLError_NotSupported()
    meter = EnergyMeter(gpus=[uuid_of(nvml, 0)], nvml=nvml)
    meter.start()
    for when, watts in ((100.0, 100.0), (101.0, 200.0), (103.0, 200.0)):
        meter.add_sample(gpu_sample(when, watts))
    energy = meter.read()
    assert (energy.joules, energy.source) == (pytest.approx(150 + 400), "nvml-power")


def test_an_old_driver_without_the_energy_function_integrates_power_too():
    nvml = StandInNvml()
    nvml.fail["nvmlDeviceGetTotalEnergyConsumption"] = nvml.NVMLError_FunctionNotFound()
    meter = EnergyMeter(gpus=[uuid_of(nvml, 0)], nvml=nvml)
    meter.start()
    meter.add_sample(gpu_sample(10.0, 300.0))
    meter.add_sample(gpu_sample(12.0, 300.0))
    assert (meter.read().joules, meter.source) == (pytest.approx(600.0), "nvml-power")


def test_a_meter_that_fails_to_start_leaves_the_run_unmeasured_not_failed():
    nvml = StandInNvml()
    nvml.nvmlDeviceGetCount = None  # a broken binding: calling it raises TypeError
    meter = EnergyMeter(gpus=[uuid_of(nvml, 0)], nvml=nvml)
    meter.start()
    assert meter.read().note.startswith("not available: the energy meter failed to start "
                                        "(TypeError")
    assert not nvml.initialised  # NVML released again


def test_power_integration_without_power_readings_is_not_available():
    nvml = StandInNvml()
    nvml.fail["nvmlDeviceGetTotalEnergyConsumption"] = nvml.NVMLError_NotSupported()
    meter = EnergyMeter(gpus=[uuid_of(nvml, 0)], nvml=nvml)
    meter.start()
    meter.add_sample(gpu_sample(100.0, float("nan")))  # the power draw NVML could not read
    energy = meter.read()
    assert energy.joules is None and "no power reading" in energy.note


def test_a_gpu_lost_mid_run_leaves_the_run_without_a_partial_figure():
    nvml = StandInNvml()
    meter = EnergyMeter(gpus=[uuid_of(nvml, 0)], nvml=nvml)
    meter.start()
    nvml.fail["nvmlDeviceGetTotalEnergyConsumption"] = nvml.NVMLError_GpuIsLost()
    energy = meter.read()
    assert energy.joules is None and "part-way through the run" in energy.note


def test_a_gpu_nvml_does_not_list_is_not_available():
    meter = EnergyMeter(gpus=["GPU-elsewhere"], nvml=StandInNvml())
    meter.start()
    assert meter.read().note == "not available: NVML does not list the run's GPU GPU-elsewhere"


# --- a run ---------------------------------------------------------------------------


class Burner:
    """Advances a fake RAPL package counter while a run trains, as the CPU would."""

    def __init__(self, folder: Path):
        self.folder, self.stop, self.uj = folder, threading.Event(), 1_000_000

    def __enter__(self):
        def burn():
            while not self.stop.wait(0.001):
                self.uj += 40_000
                set_energy(self.folder, self.uj)
        self.thread = threading.Thread(target=burn, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def events_of(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_a_run_reports_its_energy_in_run_finished_its_record_and_the_runs_table(
        tiny_config, tmp_path, workspace_dir, monkeypatch, capsys):
    folder = rapl_domain(tmp_path / "powercap", "intel-rapl:0", "package-0", 1_000_000)
    monkeypatch.setenv("TORCHWORK_RAPL_ROOT", str(tmp_path / "powercap"))
    path = tmp_path / "run.toml"
    tiny_config().save(path)
    with Burner(folder):
        assert main(["run", str(path), "--json", "--set", "train.epochs=2"]) == 0
    out = events_of(capsys.readouterr().out)
    finished = out[-1]
    assert finished["event"] == "run_finished"
    assert finished["energy_source"] == "rapl" and finished["energy_note"] is None
    joules, per_epoch = finished["energy_j"], finished["energy_per_epoch_j"]
    assert joules > 0
    assert per_epoch == pytest.approx(joules / 2, rel=1e-6)  # two epochs of the same samples
    with Workspace(workspace_dir) as ws:
        run = ws.get_run(out[0]["run_id"])
        # per 1,000 samples: over the 2 x n_train samples trained, n_train of the 250
        samples = joules * 1000 / finished["energy_per_1k_samples_j"]
        assert samples == pytest.approx(round(samples)) and 150 < samples / 2 < 250
        assert (run.energy_j, run.energy_per_epoch_j, run.energy_per_1k_samples_j,
                run.energy_source, run.energy_note) == (
            joules, per_epoch, finished["energy_per_1k_samples_j"], "rapl", None)
        log = (run.dir / "log.txt").read_text()
    assert "measured by the CPU's RAPL counters" in log
    assert main(["runs", "--json", "--columns", "id,energy_j,energy_source"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row == {"id": run.id, "energy_j": joules, "energy_source": "rapl"}
    assert main(["runs"]) == 0
    header, line = capsys.readouterr().out.splitlines()[:2]
    assert "ENERGY_J" in header.split()
    assert f"{joules:.4g}" in line.split()


def test_where_nothing_can_be_measured_the_run_says_why(tiny_config, tmp_path, workspace_dir,
                                                         monkeypatch, capsys):
    monkeypatch.setenv("TORCHWORK_RAPL_ROOT", str(tmp_path / "no-powercap"))
    path = tmp_path / "run.toml"
    tiny_config().save(path)
    assert main(["run", str(path), "--max-steps", "3"]) == 0
    err = capsys.readouterr().err
    assert ("energy: not available: this machine exposes no RAPL package counters (none under "
            f"{tmp_path / 'no-powercap'}/intel-rapl:*)") in err
    assert main(["run", str(path), "--json", "--max-steps", "3"]) == 0
    finished = events_of(capsys.readouterr().out)[-1]
    assert finished["energy_j"] is None and finished["energy_source"] is None
    assert finished["energy_note"].startswith("not available: this machine exposes no RAPL")
    with Workspace(workspace_dir) as ws:
        assert ws.get_run(finished_run_id(ws)).energy_note == finished["energy_note"]


def finished_run_id(ws) -> int:
    return ws.list_runs()[0].id


def test_a_resumed_run_adds_its_sessions_energy(tiny_config, tmp_path, workspace_dir,
                                                monkeypatch, capsys):
    folder = rapl_domain(tmp_path / "powercap", "intel-rapl:0", "package-0", 1_000_000)
    monkeypatch.setenv("TORCHWORK_RAPL_ROOT", str(tmp_path / "powercap"))
    path = tmp_path / "run.toml"
    tiny_config(**{"train.epochs": 2}).save(path)
    with Burner(folder):
        # a few steps: two steps of a fused optimizer once ended before the burner ticked
        assert main(["run", str(path), "--json", "--max-steps", "6"]) == 0
    first = events_of(capsys.readouterr().out)[-1]
    run_id = events_of_first_run(workspace_dir)
    # the counter stands still now: this session used nothing, the run keeps the first's
    assert main(["resume", str(run_id), "--json", "--max-steps", "12"]) == 0
    second = events_of(capsys.readouterr().out)[-1]
    assert first["energy_j"] > 0 and second["energy_j"] == pytest.approx(first["energy_j"])
    n_train = second["energy_per_epoch_j"] * 1000 / second["energy_per_1k_samples_j"]
    samples = second["energy_j"] * 1000 / second["energy_per_1k_samples_j"]
    assert samples == pytest.approx(n_train + 5 * 32)  # 12 steps: epoch 1, then 5 batches
    with Workspace(workspace_dir) as ws:
        run = ws.get_run(run_id)
    assert run.energy_j == second["energy_j"] and run.energy_source == "rapl"


def test_a_resumed_run_whose_first_session_was_not_measured_is_not_available(
        tiny_config, tmp_path, workspace_dir, monkeypatch, capsys):
    monkeypatch.setenv("TORCHWORK_RAPL_ROOT", str(tmp_path / "powercap"))
    path = tmp_path / "run.toml"
    tiny_config(**{"train.epochs": 2}).save(path)
    assert main(["run", str(path), "--json", "--max-steps", "2"]) == 0
    rapl_domain(tmp_path / "powercap", "intel-rapl:0", "package-0", 1_000_000)
    assert main(["resume", str(events_of_first_run(workspace_dir)), "--json",
                 "--max-steps", "4"]) == 0
    second = events_of(capsys.readouterr().out)[-1]
    assert second["energy_j"] is None
    assert second["energy_note"].startswith("not available: an earlier session of this run "
                                            "was not measured (this machine exposes no RAPL")


def events_of_first_run(workspace_dir) -> int:
    with Workspace(workspace_dir) as ws:
        return ws.list_runs()[0].id


def test_a_schema_5_workspace_gains_the_energy_columns(tmp_path, tiny_config):
    folder = tmp_path / "ws"
    old_workspace(folder, 5, tiny_config().to_toml())
    with Workspace(folder) as ws:
        (run,) = ws.list_runs()
        assert (run.name, run.energy_j, run.energy_note) == ("old", None, None)
        ws.update_run(run.id, energy_j=12.5, energy_source="rapl")
        assert ws.get_run(run.id).energy_j == 12.5
    with closing(sqlite3.connect(folder / "workspace.sqlite")) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_cuda_run_is_measured_on_its_own_gpu_by_nvml_uuid(monkeypatch):
    """torch names the device by index (CUDA_VISIBLE_DEVICES renumbers), NVML by UUID: the
    run's GPU is found by the UUID torch gives, as the hardware sampler matches them."""
    import types

    import torch

    from engine.monitor.recorder import run_gpus

    props = types.SimpleNamespace(uuid="5f1e8a9c-0000-1111-2222-333344445555")
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: props if i == 1 else None)
    trainer = types.SimpleNamespace(device=torch.device("cuda", 1))
    assert run_gpus(trainer) == ("GPU-5f1e8a9c-0000-1111-2222-333344445555",)
    assert run_gpus(types.SimpleNamespace(device=torch.device("cpu"))) is None


def test_a_ddp_run_on_one_node_is_measured_on_every_rank_s_gpu_and_across_nodes_not_at_all(
        monkeypatch, tmp_path):
    """Rank 0 measures the run: on one node, the GPUs of all its ranks (cuda:LOCAL_RANK
    each); across nodes, not available with the reason (a part is not the run's energy)."""
    import types

    import torch

    from engine.monitor.recorder import energy_unmeasured, run_gpus

    uuids = {0: "aaaa", 1: "bbbb", 2: "cccc", 3: "dddd"}
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda i: types.SimpleNamespace(uuid=uuids[i]))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    rank0 = types.SimpleNamespace(device=torch.device("cuda", 0), dist=object())
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "3")
    assert run_gpus(rank0) == ("GPU-aaaa", "GPU-bbbb", "GPU-cccc")
    assert energy_unmeasured(rank0) == ""
    monkeypatch.setenv("WORLD_SIZE", "6")  # two nodes of three
    reason = energy_unmeasured(rank0)
    assert reason == ("the run trains on 2 nodes and this one can read only its own "
                      "counters (its 3 process(es) of 6)")
    meter = EnergyMeter(gpus=run_gpus(rank0), nvml=StandInNvml(), unavailable=reason)
    meter.start()
    assert meter.read() == Energy(None, None, f"not available: {reason}")
