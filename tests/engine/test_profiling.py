"""Profiler capture, the torch-tb-profiler adapter and `torchwork profile`, on real CPU traces."""

import gzip
import json
import warnings

import pytest

from engine.cli import main
from engine.profiling.capture import ProfilerCapture
from engine.profiling.options import PROFILE_DIR, CaptureOptions, profiling_config
from engine.profiling.report import CATEGORIES, TraceReadError, read_trace
from engine.profiling.traces import export_trace, list_captures
from engine.training import Trainer
from engine.workspace import Workspace

OPTIONS = CaptureOptions(wait=1, warmup=1, active=2)


def capture(tmp_path, config, options=OPTIONS, name="c1"):
    trainer = Trainer(config)
    cap = ProfilerCapture(worker="w").attach(trainer, tmp_path / "run")
    cap.request(options, name)
    result = trainer.run()
    return result, cap.results


@pytest.fixture(scope="module")
def cpu_trace(tmp_path_factory):
    """A trace torch.profiler records here, on the CPU, of a tiny run (shared: seconds)."""
    from tests.conftest import tiny

    folder = tmp_path_factory.mktemp("trace")
    result, captures = capture(folder, profiling_config(tiny(), OPTIONS))
    assert result.status == "completed"
    return captures[0]


def test_capture_writes_tensorboard_layout(cpu_trace, tmp_path):
    assert cpu_trace.error is None and not cpu_trace.partial
    trace = cpu_trace.trace
    assert f"/run/{PROFILE_DIR}/c1/w." in trace and trace.endswith(".pt.trace.json")
    caps = list_captures(trace.rsplit(f"/{PROFILE_DIR}/", 1)[0])
    assert [c.name for c in caps] == ["c1"] and str(caps[0].trace) == trace


def test_report_of_a_real_cpu_trace(cpu_trace):
    report = read_trace(cpu_trace.trace)
    assert len(report.steps) == OPTIONS.active
    for step in report.steps:
        assert set(step.costs_us) == set(CATEGORIES)
        assert step.total_us > 0 and step.costs_us["CPU Exec"] > 0
        assert step.costs_us["Kernel"] == 0  # no GPU here
    mean = sum(s.total_us for s in report.steps) / len(report.steps)
    assert report.average.total_us == pytest.approx(mean, rel=0.01)
    names = {op.name for op in report.operators}
    assert {"aten::addmm", "aten::linear"} <= names
    addmm = next(op for op in report.operators if op.name == "aten::addmm")
    assert addmm.calls >= OPTIONS.active and addmm.host_total_us >= addmm.host_self_us > 0
    shapes = [op for op in report.operators_by_shape if op.name == "aten::addmm"]
    assert shapes and all(op.input_shape.startswith("[[") for op in shapes)
    assert sum(op.calls for op in shapes) == addmm.calls
    assert report.memory and report.memory[0].device == "CPU" and report.memory[0].peak_mb > 0
    assert not report.kernels and not report.has_gpu
    assert isinstance(report.recommendations, tuple)
    assert report.hints == ()  # nothing on this breakdown makes advice obvious


def test_data_loader_time_is_counted(cpu_trace, tmp_path):
    """torch marks DataLoader.__next__ as a user annotation; the category must still count it."""
    trace = json.loads(open(cpu_trace.trace, "rb").read())
    events = trace["traceEvents"]
    step = next(e for e in events if e.get("name", "").startswith("ProfilerStep#"))
    events.append({"ph": "X", "cat": "user_annotation", "pid": step["pid"], "tid": step["tid"],
                   "name": "enumerate(DataLoader)#_MultiProcessingDataLoaderIter.__next__",
                   "ts": step["ts"] + 1, "dur": step["dur"] * 0.6, "args": {}})
    path = tmp_path / "w.1.pt.trace.json"
    path.write_text(json.dumps(trace))
    report = read_trace(path)
    first = report.steps[0]
    assert first.costs_us["DataLoader"] == pytest.approx(step["dur"] * 0.6, rel=0.01)
    assert report.hints and report.hints[0].startswith("Data-loader-bound")


def test_hints_only_where_the_breakdown_shows_them(cpu_trace):
    from dataclasses import replace

    from engine.profiling.report import StepCosts, hints

    report = read_trace(cpu_trace.trace)
    zero = dict.fromkeys(CATEGORIES, 0.0)
    loader = replace(report, average=StepCosts("average", {**zero, "DataLoader": 40.0,
                                                           "CPU Exec": 60.0}))
    assert [h.split(":")[0] for h in hints(loader)] == ["Data-loader-bound"]
    launch = replace(report, has_gpu=True,
                     average=StepCosts("average", {**zero, "Kernel": 20.0, "CPU Exec": 50.0,
                                                   "Runtime": 30.0}))
    assert [h.split(":")[0] for h in hints(launch, 0.0, 0.6)] == [
        "CPU-launch-bound", "No Tensor Cores used"]
    busy = replace(launch, average=StepCosts("average", {**zero, "Kernel": 90.0,
                                                         "Runtime": 10.0}))
    assert hints(busy, 0.4, 0.6) == ()


def cuda_shaped_trace(path, steps=2):
    """Events as torch 2.x writes them on a GPU (read off an H100 trace): per step a CPU
    ``ProfilerStep#N`` holding ``aten::mm``, whose ``cudaLaunchKernel`` is a
    ``cuda_runtime`` event tied by correlation to a 40 us kernel on stream 7, which also
    carries the step again as a ``gpu_user_annotation``."""
    events, ts = [], 1000.0
    for n in range(1, steps + 1):
        ext, corr = 10 * n, 100 * n
        events += [
            {"ph": "X", "cat": "user_annotation", "name": f"ProfilerStep#{n}", "pid": 1,
             "tid": 1, "ts": ts, "dur": 100.0, "args": {"External id": ext - 1}},
            {"ph": "X", "cat": "cpu_op", "name": "aten::mm", "pid": 1, "tid": 1,
             "ts": ts + 10, "dur": 30.0, "args": {"External id": ext}},
            {"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "pid": 1,
             "tid": 1, "ts": ts + 15, "dur": 8.0,
             "args": {"External id": ext, "correlation": corr}},
            {"ph": "X", "cat": "kernel", "name": "sm90_gemm_kernel", "pid": 0, "tid": 7,
             "ts": ts + 30, "dur": 40.0,
             "args": {"External id": ext, "correlation": corr, "device": 0, "stream": 7,
                      "grid": [1, 1, 1], "block": [128, 1, 1]}},
            {"ph": "X", "cat": "gpu_user_annotation", "name": f"ProfilerStep#{n}", "pid": 0,
             "tid": 7, "ts": ts + 30, "dur": 40.0, "args": {"External id": ext - 1}},
        ]
        ts += 200.0
    path.write_text(json.dumps({"schemaVersion": 1, "deviceProperties": [
        {"id": 0, "name": "NVIDIA H100 80GB HBM3", "totalGlobalMem": 85017493504,
         "computeMajor": 9, "computeMinor": 0, "maxThreadsPerBlock": 1024,
         "maxThreadsPerMultiprocessor": 2048, "regsPerBlock": 65536, "warpSize": 32,
         "sharedMemPerBlock": 49152, "numSms": 132, "regsPerMultiprocessor": 65536,
         "sharedMemPerBlockOptin": 232448, "sharedMemPerMultiprocessor": 233472}],
        "traceEvents": events}))
    return path


def test_a_cuda_trace_of_newer_torch_reads_right(tmp_path, capfd):
    report = read_trace(cuda_shaped_trace(tmp_path / "gpu.1.pt.trace.json"))
    # one step per ProfilerStep, not a second from the GPU stream's copy of it
    assert [s.step for s in report.steps] == ["1", "2"]
    assert report.has_gpu and all(s.costs_us["Kernel"] == 40.0 for s in report.steps)
    assert all(s.costs_us["Runtime"] == 8.0 for s in report.steps)  # cuda_runtime is read
    mm = next(op for op in report.operators if op.name == "aten::mm")
    assert mm.calls == 2 and mm.device_self_us == 80.0  # its kernels are tied to it
    assert [(k.name, k.calls, k.total_us) for k in report.kernels] == [
        ("sm90_gemm_kernel", 2, 80.0)]
    assert capfd.readouterr().err == ""  # the parser's log noise stays off the terminal


@pytest.mark.parametrize("content, words", [
    (b"", "is empty"),
    (None, "truncated or damaged"),
    (b'{"schemaVersion": 1}', "not a torch.profiler trace"),
    (b"not json at all", "truncated or damaged"),
])
def test_bad_traces_name_the_file(cpu_trace, tmp_path, content, words):
    if content is None:
        data = open(cpu_trace.trace, "rb").read()
        content = data[:len(data) // 2]
    bad = tmp_path / "bad.pt.trace.json"
    bad.write_bytes(content)
    with pytest.raises(TraceReadError, match=words) as err:
        read_trace(bad)
    assert str(bad) in str(err.value)


def test_truncated_gzip_trace(cpu_trace, tmp_path):
    bad = tmp_path / "w.1.pt.trace.json.gz"
    bad.write_bytes(gzip.compress(open(cpu_trace.trace, "rb").read())[:4000])
    with pytest.raises(TraceReadError, match="truncated") as err:
        read_trace(bad)
    assert str(bad) in str(err.value)


def test_export_for_perfetto(cpu_trace, tmp_path):
    out = export_trace(cpu_trace.trace, tmp_path / "out" / "mine")
    assert out.name == "mine.json.gz"
    events = json.loads(gzip.decompress(out.read_bytes()))["traceEvents"]
    assert any(e.get("name", "").startswith("ProfilerStep#") for e in events)


def test_failing_run_keeps_the_partial_trace(tmp_path, tiny_config, faulty_model):
    arch = faulty_model("if self.calls == 4:\n            raise RuntimeError('boom')")
    opts = CaptureOptions(wait=0, warmup=1, active=10, profile_memory=False)
    config = profiling_config(tiny_config(**{"model.arch": arch}), opts)
    result, captures = capture(tmp_path, config, opts)
    assert result.status == "failed" and "boom" in result.error
    (done,) = captures
    assert done.partial and done.error is None and done.trace is not None
    assert read_trace(done.trace).steps  # the steps recorded before the failure


def test_a_capture_the_run_never_reached_is_reported(tmp_path, tiny_config):
    trainer = Trainer(tiny_config(**{"train.max_steps": 1}))
    trainer.run()
    cap = ProfilerCapture().attach(trainer, tmp_path)
    cap.request(OPTIONS)
    trainer.run()  # nothing left to train: the loop ends at once
    (done,) = cap.results
    assert done.trace is None and "ended before" in done.error and not cap.busy


def test_only_one_capture_at_a_time(tmp_path, tiny_config):
    cap = ProfilerCapture()  # asked before the run is built, as the window may
    cap.request(OPTIONS)
    with pytest.raises(RuntimeError, match="already running"):
        cap.request(OPTIONS)
    with pytest.raises(ValueError, match="active must be"):
        ProfilerCapture().request(CaptureOptions(active=0))


def test_cli_profile_prints_tables(tmp_path, capfd, tiny_config):
    config = tmp_path / "tiny.toml"
    config.write_text(tiny_config().to_toml())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(["profile", str(config), "--steps", "2", "--record-shapes",
                     "--workspace", str(tmp_path / "ws")])
    out, err = capfd.readouterr()
    assert code == 0
    # only our own progress line on stderr: no Kineto "USDT: profiler_start" lines, no
    # torch "Profiler clears events" warning
    assert [line for line in err.splitlines() if line] == [
        "profiling run 1: 1 wait, 1 warmup, 2 recorded steps"]
    assert not [w for w in caught if "profiler" in str(w.filename)]
    assert "Step-time breakdown (ms)" in out and "CPU Exec" in out and "average" in out
    table = out.split("Top 20 operators")[1].split("\n\n")[0].splitlines()[1:]
    assert table[0].split()[:2] == ["Operator", "Calls"] and len(table) == 1 + 20
    assert any(row.startswith("aten::addmm ") for row in table)
    assert list((tmp_path / "ws" / "runs").glob(f"*/{PROFILE_DIR}/*/*.pt.trace.json"))
    with Workspace(tmp_path / "ws") as ws:  # kept, but not as a trained run
        assert [r.kind for r in ws.list_runs()] == ["profile"]


def test_cli_profile_rejects_bad_steps(tmp_path, capsys, tiny_config):
    config = tmp_path / "tiny.toml"
    config.write_text(tiny_config().to_toml())
    assert main(["profile", str(config), "--steps", "0", "--workspace", str(tmp_path)]) == 2
    assert "--steps must be" in capsys.readouterr().err
