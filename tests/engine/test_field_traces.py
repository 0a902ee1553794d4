"""Traces as torch.profiler wrote them on other machines and versions, read right."""

import json

import pytest

from engine.profiling.report import read_trace
from engine.profiling.timeline import CATEGORY_COLOURS, load_trace


def names_at(index):
    return {index.names[index.name_id[i]]: i for i in range(len(index))}


# args that hold a "ts" of their own, so the times' texts cannot be taken in file order
@pytest.mark.parametrize("args", ["", ', "args": {"ts": 3}'])
def test_nanosecond_timestamps_keep_their_order_and_nesting(tmp_path, args):
    # Absolute µs with three decimals near 1.7e15: a float64 keeps a quarter µs, so
    # read as floats "a" and "b" both start at .000 and the shorter "a" nests in "b".
    base = 1_700_000_000_000_000
    slices = [("a", "010", "0.050"), ("b", "070", "0.1"), ("c", "080", "5e-2")]
    events = ",".join(
        f'{{"ph": "X", "cat": "cpu_op", "name": "{name}", "pid": 1, "tid": 1, '
        f'"ts": {base}.{frac}, "dur": {dur}{args}}}' for name, frac, dur in slices)
    path = tmp_path / "ns.pt.trace.json"
    path.write_text(f'{{"traceEvents": [{events}]}}')
    index = load_trace(path)
    at = names_at(index)
    depth = {name: int(index.depth[i]) for name, i in at.items()}
    assert depth == {"a": 0, "b": 0, "c": 1}  # siblings a, b; c is b's child
    assert [int(index.start_ns[at[n]]) for n in "abc"] == [0, 60, 70]
    assert [int(index.dur_ns[at[n]]) for n in "abc"] == [50, 100, 50]
    assert index.start_us[at["b"]] == pytest.approx(0.06)
    assert index.origin_us == pytest.approx(base + 0.010)


def old_kineto_trace(path):
    """A step as torch 1.8/1.9's Kineto wrote it: capitalised categories, string tids,
    kernels on pid 0 (the device) with tid "stream 7", shapes under "Input dims"."""
    cpu = {"pid": 1234, "tid": "1234"}
    gpu = {"pid": 0, "tid": "stream 7"}
    events = []
    for n, ts in ((1, 1000), (2, 1200)):
        corr, ext = 100 * n, 10 * n
        events += [
            {"ph": "X", "cat": "Operator", "name": f"ProfilerStep#{n}", **cpu, "ts": ts,
             "dur": 100, "args": {"Input dims": [], "external id": ext - 1}},
            {"ph": "X", "cat": "Operator", "name": "aten::mm", **cpu, "ts": ts + 10,
             "dur": 30, "args": {"Input dims": [[8, 4], [4, 2]], "external id": ext}},
            {"ph": "X", "cat": "Runtime", "name": "cudaLaunchKernel", **cpu, "ts": ts + 15,
             "dur": 8, "args": {"correlation": corr, "external id": ext}},
            {"ph": "X", "cat": "Kernel", "name": "volta_sgemm", **gpu, "ts": ts + 30,
             "dur": 40, "args": {"correlation": corr, "external id": ext, "device": 0,
                                 "stream": 7}},
            {"ph": "X", "cat": "Memcpy", "name": "Memcpy HtoD (Pageable -> Device)", **gpu,
             "ts": ts + 75, "dur": 4, "args": {"device": 0, "stream": 7}},
            {"ph": "X", "cat": "Memset", "name": "Memset (Device)", **gpu, "ts": ts + 80,
             "dur": 2, "args": {"device": 0, "stream": 7}},
        ]
    path.write_text(json.dumps({"schemaVersion": 1, "traceEvents": events}))
    return path


def test_old_kineto_categories_give_gpu_lanes_steps_colours_and_a_report(tmp_path):
    index = load_trace(old_kineto_trace(tmp_path / "old.pt.trace.json"))
    assert [(t.label, t.kind) for t in index.tracks] == [
        ("CPU thread 1234", "cpu"), ("CUDA stream 7", "gpu")]
    at = names_at(index)

    def category(name):
        return index.categories[index.category_id[at[name]]]

    assert category("ProfilerStep#2") == "profiler_step"
    assert category("aten::mm") == "cpu_op"
    colours = {index.colour(index.category_id[at[name]]) for name in (
        "volta_sgemm", "cudaLaunchKernel", "Memcpy HtoD (Pageable -> Device)")}
    assert colours == {CATEGORY_COLOURS[c] for c in ("kernel", "cuda_runtime", "gpu_memcpy")}
    assert index.colour(index.category_id[at["Memset (Device)"]]) == \
        CATEGORY_COLOURS["gpu_memset"]
    assert index.event_info(at["aten::mm"])["shapes"] == {"Input Dims": [[8, 4], [4, 2]]}
    # the report reads the same categories the same way
    report = read_trace(old_kineto_trace(tmp_path / "old.1.pt.trace.json"))
    assert [s.step for s in report.steps] == ["1", "2"]
    assert all(s.costs_us["Kernel"] == 40.0 for s in report.steps)
    assert all(s.costs_us["Runtime"] == 8.0 for s in report.steps)
    assert all(s.costs_us["Memcpy"] == 4.0 for s in report.steps)
    assert [(k.name, k.calls) for k in report.kernels] == [("volta_sgemm", 2)]
