"""GPU and other accelerators' traces as torch.profiler wrote them on other machines, read right:
kernels reach their operators, every recorded step counts, lanes say what ran them."""

import io
import json
from dataclasses import replace

import pytest

from engine.commands.profile import print_report
from engine.profiling.accelerator import Accelerator
from engine.profiling.report import CATEGORIES, ProfileReport, StepCosts, hints, read_trace
from engine.profiling.timeline import load_trace

HOST = {"pid": 1, "tid": 1}


def x(cat, name, ts, dur, where=HOST, **args):
    return {"ph": "X", "cat": cat, "name": name, **where, "ts": ts, "dur": dur, "args": args}


def launch(ts, corr, ext, where=HOST, cat="cuda_runtime", name="cudaLaunchKernel", dur=4.0):
    """A runtime launch whose "External id" is ``ext`` (Kineto: its correlation, when it
    could not link it) and the kernel it started, 10 µs later on stream 7 of GPU 0."""
    return x(cat, name, ts, dur, where, correlation=corr, **{"External id": ext})


def kernel(ts, dur, corr, ext, name="gemm_kernel", device=0, stream=7):
    return x("kernel", name, ts, dur, {"pid": device, "tid": stream}, correlation=corr,
             device=device, stream=stream, **{"External id": ext})


def write(path, events, **top):
    path.write_text(json.dumps({"schemaVersion": 1, **top, "traceEvents": events}))
    return path


def operator(report, name):
    return next(op for op in report.operators if op.name == name)


def unlinked_gpu_trace(path):
    """Two steps of linear -> addmm, relu and a backward thread, every launch's External id
    being its correlation id (no operator's): as many real GPU traces are written. One
    operator, aten::empty, happens to have External id 101, the correlation of a launch
    that is not its own; one launch (a copy of the step's own) is in no operator."""
    events = []
    for n, t in ((1, 1000.0), (2, 2000.0)):
        c = 100 * n
        events += [
            x("user_annotation", f"ProfilerStep#{n}", t, 600, **{"External id": 10 * n}),
            x("cpu_op", "aten::linear", t + 10, 200, **{"External id": 10 * n + 1}),
            x("cpu_op", "aten::addmm", t + 20, 150, **{"External id": 10 * n + 2}),
            launch(t + 30, c, c), kernel(t + 40, 50, c, c),
            launch(t + 100, c + 1, c + 1), kernel(t + 110, 30, c + 1, c + 1),
            x("cpu_op", "aten::relu", t + 250, 50, **{"External id": 10 * n + 3}),
            launch(t + 260, c + 2, c + 2), kernel(t + 270, 20, c + 2, c + 2, "relu_kernel"),
            # a zero-length launch at the very start of an operator without an id
            x("cpu_op", "aten::sum", t + 310, 40),
            launch(t + 310, c + 3, c + 3, dur=0), kernel(t + 320, 10, c + 3, c + 3, "reduce"),
            x("cpu_op", "aten::empty", t + 400, 5, **{"External id": 100 * n + 1}),
            launch(t + 500, c + 4, c + 4, name="cudaMemsetAsync"),  # in the step only
            kernel(t + 510, 4, c + 4, c + 4, "fill_kernel"),
            # the backward thread launches while thread 1 is inside aten::addmm
            x("cpu_op", "aten::mm_backward", t + 25, 100, {"pid": 1, "tid": 2},
              **{"External id": 10 * n + 5}),
            launch(t + 35, c + 5, c + 5, {"pid": 1, "tid": 2}),
            kernel(t + 150, 40, c + 5, c + 5, "gemm_bwd", stream=8),
        ]
    return write(path, events)


def test_kernels_reach_the_operator_around_their_launch(tmp_path, capfd):
    report = read_trace(unlinked_gpu_trace(tmp_path / "gpu.1.pt.trace.json"))
    device = {op.name: (op.device_self_us, op.device_total_us) for op in report.operators}
    assert device["aten::addmm"] == (160.0, 160.0)  # 2 x (50 + 30), both steps
    assert device["aten::linear"] == (0.0, 160.0)  # through its child only
    assert device["aten::relu"] == (40.0, 40.0)
    assert device["aten::sum"] == (20.0, 20.0)
    assert device["aten::mm_backward"] == (80.0, 80.0)  # its own thread's, not addmm's
    assert device["aten::empty"] == (0.0, 0.0)  # an equal id, but it launched nothing
    kernel_us = sum(k.total_us for k in report.kernels)
    assert kernel_us == 308.0
    assert sum(op.device_self_us for op in report.operators) >= 0.9 * kernel_us
    assert [s.step for s in report.steps] == ["1", "2"]
    assert capfd.readouterr().err == ""


def rocm_trace(path, runtime_cat, copy_cat):
    """Two CPU-side steps on an AMD GPU: the first launches two kernels, the second one
    (which torch-tb-profiler took for a step it had missed kernels of, and dropped); each
    step drawn again on the GPU's stream under ``copy_cat``."""
    hip = {"pid": 2, "tid": 1}
    events = [{"ph": "M", "name": "thread_name", "pid": 2, "tid": 1,
               "args": {"name": "stream 1 "}}]
    for n, t, kernels in ((1, 1000.0, 2), (2, 1400.0, 1)):
        events += [x("user_annotation", f"ProfilerStep#{n}", t, 300, **{"External id": n}),
                   x("cpu_op", "aten::mm", t + 10, 200, **{"External id": 10 * n})]
        for k in range(kernels):
            c = 100 * n + k
            events += [
                launch(t + 20 + 60 * k, c, c, cat=runtime_cat, name="hipLaunchKernel"),
                x("kernel", "Cijk_Ailk_Bljk_SB", t + 40 + 60 * k, 40, hip, correlation=c,
                  device=2, stream=1, **{"External id": c}),
            ]
        events.append(x(copy_cat, f"ProfilerStep#{n}", t + 40, 60 * kernels - 20,
                        hip, **{"External id": n}))
    return write(path, events, deviceProperties=[
        {"id": 2, "name": "AMD Instinct MI250X", "totalGlobalMem": 68702699520,
         "computeMajor": 9, "computeMinor": 0, "numSms": 110}])


@pytest.mark.parametrize("runtime_cat, copy_cat", [
    ("hip_runtime", "gpu_user_annotation"), ("Runtime", "gpu_user_annotation"),
    ("cuda_runtime", "gpu_user_annotation"), ("hip_runtime", "user_annotation")])
def test_a_rocm_trace_counts_its_steps_and_names_its_lanes(tmp_path, runtime_cat, copy_cat):
    path = rocm_trace(tmp_path / "rocm.1.pt.trace.json", runtime_cat, copy_cat)
    report = read_trace(path)
    assert [s.step for s in report.steps] == ["1", "2"]
    assert [s.costs_us["Kernel"] for s in report.steps] == [80.0, 40.0]
    assert [s.costs_us["Runtime"] for s in report.steps] == [8.0, 4.0]
    assert operator(report, "aten::mm").device_self_us == 120.0
    assert report.accelerator.api == "HIP"
    advice = " ".join(report.hints + report.recommendations)
    assert "Tensor Cores" not in advice  # NVIDIA's: an AMD GPU's kernels never show them
    index = load_trace(path)
    assert [t.label for t in index.tracks] == ["CPU thread 1", "HIP stream 1"]
    assert index.accelerator == report.accelerator
    out = io.StringIO()
    print_report(report, out)
    assert "AMD Instinct MI250X (HIP)" in out.getvalue()


def test_a_last_step_that_launched_nothing_still_counts(tmp_path):
    events = []
    for n, t in ((1, 1000.0), (2, 1200.0), (3, 1400.0)):
        events += [x("user_annotation", f"ProfilerStep#{n}", t, 100, **{"External id": n}),
                   x("cpu_op", "aten::mm", t + 10, 30, **{"External id": 10 * n})]
        if n < 3:  # the last step (an evaluation, say) runs on the CPU only
            events += [launch(t + 15, 100 * n, 10 * n), kernel(t + 30, 40, 100 * n, 10 * n)]
    report = read_trace(write(tmp_path / "last.1.pt.trace.json", events))
    assert [s.step for s in report.steps] == ["1", "2", "3"]
    assert [s.costs_us["Kernel"] for s in report.steps] == [40.0, 40.0, 0.0]
    assert report.steps[2].total_us > 0


@pytest.mark.parametrize("annotated", [True, False])
def test_a_trace_of_kernels_only_reports_steps_and_kernels_and_no_guesses(tmp_path, annotated):
    events = []
    for n, t in ((1, 1000.0), (2, 1200.0)):
        events.append(kernel(t + 30, 40, 100 * n, 100 * n))
        if annotated:  # the steps as drawn on the GPU's stream (the CPU was not recorded)
            events.append(x("gpu_user_annotation", f"ProfilerStep#{n}", t + 30, 40,
                            {"pid": 0, "tid": 7}))
    report = read_trace(write(tmp_path / "k.1.pt.trace.json", events))
    if annotated:
        assert [(s.step, s.costs_us["Kernel"]) for s in report.steps] == [
            ("1", 40.0), ("2", 40.0)]
    else:  # one step: the whole trace
        assert [(s.step, s.costs_us["Kernel"]) for s in report.steps] == [("0", 80.0)]
    assert [(k.name, k.calls) for k in report.kernels] == [("gemm_kernel", 2)]
    # nothing says why the GPU waits: no "increase batch size", no launch-bound guess
    assert report.recommendations == () and report.hints == ()


def mtia_trace(path):
    """Kernels of two MTIA devices, named so by the runtime's category and the trace's
    process names; the lanes are queues the trace names itself."""
    events = [x("cpu_op", "aten::add", 1000.0, 50, **{"External id": 1})]
    for device in (0, 1):
        events += [
            {"ph": "M", "name": "process_name", "pid": 10 + device, "tid": 0,
             "args": {"name": f"MTIA {device}"}},
            {"ph": "M", "name": "thread_name", "pid": 10 + device, "tid": 3,
             "args": {"name": "queue 3"}},
            x("mtia_runtime", "launchKernel", 1010.0 + device, 2, correlation=device + 5),
            x("kernel", "add_kernel", 1020.0 + device, 10, {"pid": 10 + device, "tid": 3},
              correlation=device + 5, device=device),
        ]
    return write(path, events)


def test_lanes_say_which_accelerator_ran_them(tmp_path):
    index = load_trace(mtia_trace(tmp_path / "mtia.json"))
    assert [t.label for t in index.tracks] == [
        "CPU thread 1", "MTIA queue 3 (MTIA 0)", "MTIA queue 3 (MTIA 1)"]
    # kernels with nothing but the device's properties to say what it is
    events = [kernel(1000.0, 10, 1, 1)]
    path = write(tmp_path / "amd.json", events, deviceProperties=[
        {"id": 0, "name": "", "gcnArchName": "gfx90a:sramecc+:xnack-"}])
    assert [t.label for t in load_trace(path).tracks] == ["HIP stream 7"]
    # and no sign at all: torch.profiler's kernels came from CUDA
    assert [t.label for t in load_trace(write(tmp_path / "n.json", events)).tracks] == [
        "CUDA stream 7"]


def test_advice_names_the_accelerator_and_keeps_to_what_it_has():
    zero = dict.fromkeys(CATEGORIES, 0.0)
    report = ProfileReport(
        trace="t", steps=(), operators=(), operators_by_shape=(), kernels=(), memory=(),
        recommendations=(), has_gpu=True,
        average=StepCosts("average", {**zero, "Kernel": 20.0, "CPU Exec": 50.0,
                                      "Runtime": 30.0}))
    assert [h.split(":")[0] for h in hints(report, 0.0, 0.6)] == [
        "CPU-launch-bound", "No Tensor Cores used"]
    mtia = replace(report, accelerator=Accelerator("MTIA", "MTIA"))
    (launch_bound,) = hints(mtia, 0.0, 0.6)  # Tensor Cores are NVIDIA's
    assert "the MTIA works only 20%" in launch_bound
