"""The trace index behind the timeline: nesting, tracks, search, range sums, details, bad files."""

import gzip

import numpy as np
import orjson
import pytest

from engine.profiling.synthetic import write_synthetic_trace
from engine.profiling.timeline import TraceCancelled, TraceError, load_trace


def x(name, ts, dur, tid=1, pid=100, cat="cpu_op", **args):
    event = {"ph": "X", "cat": cat, "name": name, "pid": pid, "tid": tid, "ts": ts, "dur": dur}
    if args:
        event["args"] = args
    return event


def write(tmp_path, events, name="t.pt.trace.json", wrap=True):
    path = tmp_path / name
    path.write_bytes(orjson.dumps({"traceEvents": events} if wrap else events))
    return path


def by_name(index, name):
    return [i for i in range(len(index)) if index.names[index.name_id[i]] == name]


STEP = [
    x("ProfilerStep#1", 1000, 100, cat="user_annotation"),
    x("aten::linear", 1010, 50),
    x("aten::addmm", 1015, 30, **{"Input Dims": [[8, 4], [4, 2]],
                                  "Input type": ["float", "float"], "Sequence number": 7}),
    x("aten::relu", 1070, 20),
    x("aten::t", 1016, 2),
    # a child that ends a nanosecond after its parent (the file's rounding) still nests
    x("aten::view", 1040, 5.001),
    # another thread and a CUDA stream (torch: pid = device, tid = stream)
    x("aten::linear", 1005, 10, tid=2),
    x("void gemm_kernel", 1030, 8, pid=0, tid=7, cat="kernel"),
    x("Memcpy HtoD", 1050, 4, pid=0, tid=7, cat="gpu_memcpy"),
]


def test_nesting_depth_and_tracks(tmp_path):
    index = load_trace(write(tmp_path, STEP))
    depth = {index.names[index.name_id[i]] + f"@{index.track_id[i]}": int(index.depth[i])
             for i in range(len(index))}
    assert depth["ProfilerStep#1@0"] == 0
    assert depth["aten::linear@0"] == 1
    assert depth["aten::addmm@0"] == 2
    assert depth["aten::t@0"] == 3
    assert depth["aten::view@0"] == 3
    assert depth["aten::relu@0"] == 1  # after linear ended: a sibling, not a child
    assert [t.label for t in index.tracks] == ["CPU thread 1", "CPU thread 2", "CUDA stream 7"]
    assert [t.depth for t in index.tracks] == [4, 1, 1]
    assert [t.first_row for t in index.tracks] == [0, 4, 5]
    gpu = [index.categories[index.category_id[i]] for i in range(len(index))
           if index.track_id[i] == 2]
    assert sorted(gpu) == ["gpu_memcpy", "kernel"]
    # ProfilerStep spans get a category (and colour) of their own
    assert index.categories[index.category_id[by_name(index, "ProfilerStep#1")[0]]] == \
        "profiler_step"


def test_times_start_at_the_first_slice(tmp_path):
    index = load_trace(write(tmp_path, STEP))
    assert index.origin_us == 1000
    assert index.start_us.min() == 0
    assert index.span_us == pytest.approx(100)


def test_search_is_case_insensitive_and_in_time_order(tmp_path):
    index = load_trace(write(tmp_path, STEP))
    hits = index.search("LINEAR")
    assert [float(index.start_us[i]) for i in hits] == [5.0, 10.0]
    assert [int(index.track_id[i]) for i in hits] == [1, 0]
    assert len(index.search("aten::")) == 6
    assert len(index.search("no such op")) == 0
    assert len(index.search("  ")) == 0


def test_range_stats_clip_slices_at_the_range_edges(tmp_path):
    index = load_trace(write(tmp_path, STEP))
    # [20, 60] µs after the start: linear (10-60) counts 40, addmm (15-45) 25, view 5.001
    stats = {name: (total, count) for name, total, count in index.range_stats(20, 60)}
    assert stats["aten::linear"] == (pytest.approx(40), 1)
    assert stats["aten::addmm"] == (pytest.approx(25), 1)
    assert stats["ProfilerStep#1"] == (pytest.approx(40), 1)
    assert stats["void gemm_kernel"] == (pytest.approx(8), 1)
    assert "aten::relu" not in stats  # starts at 70
    rows = index.range_stats(60, 20)  # either order
    assert [r[1] for r in rows] == sorted((r[1] for r in rows), reverse=True)
    only_cpu2 = index.range_stats(0, 100, tracks=[1])
    assert only_cpu2 == [("aten::linear", pytest.approx(10), 1)]


def test_event_info_has_shapes_and_args(tmp_path):
    index = load_trace(write(tmp_path, STEP))
    info = index.event_info(by_name(index, "aten::addmm")[0])
    assert info["name"] == "aten::addmm"
    assert info["category"] == "cpu_op"
    assert info["start_us"] == 15 and info["dur_us"] == 30
    assert info["track"] == "CPU thread 1"
    assert info["shapes"] == {"Input Dims": [[8, 4], [4, 2]], "Input type": ["float", "float"]}
    assert info["args"] == {"Sequence number": 7}
    assert load_trace(write(tmp_path, STEP)).event_info(0)["shapes"] == {}


def test_visible_merges_slices_narrower_than_a_pixel(tmp_path):
    events = [x(f"op{i}", i * 10, 4) for i in range(1000)]  # 1000 slices over 10 ms
    index = load_trace(write(tmp_path, events))
    whole = index.visible(0, 0, 10_000, px_us=100)  # 100 pixels
    assert len(whole) < 10
    assert whole.count.sum() == 1000
    close = index.visible(0, 200, 260, px_us=0.1)  # slices 20..25, each many pixels wide
    assert [index.names[index.name_id[e]] for e in close.event] == \
        [f"op{i}" for i in range(20, 27)]
    assert (close.count == 1).all()


def test_event_at_finds_the_slice_under_a_time(tmp_path):
    index = load_trace(write(tmp_path, STEP))
    row = index.tracks[0].first_row + 2  # depth 2 of CPU thread 1: addmm
    assert index.names[index.name_id[index.event_at(row, 30)]] == "aten::addmm"
    assert index.event_at(row, 50) is None
    assert index.names[index.name_id[index.event_at(row, 46, tolerance_us=2)]] == "aten::addmm"


def test_begin_end_pairs_and_bare_lists_and_gzip(tmp_path):
    events = [{"ph": "B", "name": "outer", "pid": 1, "tid": 1, "ts": 0},
              {"ph": "B", "name": "inner", "pid": 1, "tid": 1, "ts": 2},
              {"ph": "E", "pid": 1, "tid": 1, "ts": 5},
              {"ph": "E", "pid": 1, "tid": 1, "ts": 9},
              {"ph": "M", "name": "thread_name", "pid": 1, "tid": 1, "args": {"name": "x"}}]
    path = tmp_path / "t.json.gz"
    path.write_bytes(gzip.compress(orjson.dumps(events)))
    index = load_trace(path)
    outer, inner = by_name(index, "outer")[0], by_name(index, "inner")[0]
    assert (index.dur_us[outer], index.depth[outer]) == (9, 0)
    assert (index.dur_us[inner], index.depth[inner]) == (3, 1)


def test_improper_nesting_falls_back_to_a_stack(tmp_path):
    # b overlaps a without nesting (async work): it goes below a, c back on top
    events = [x("a", 0, 10), x("b", 5, 10), x("c", 20, 1), x("z", 20, 0)]
    index = load_trace(write(tmp_path, events))
    depth = {index.names[index.name_id[i]]: int(index.depth[i]) for i in range(len(index))}
    assert depth == {"a": 0, "b": 1, "c": 0, "z": 1}


@pytest.mark.parametrize("content, words", [
    (b"", "is empty"),
    (b'{"traceEvents": [{"ph": "X", "name": "a", "ts": 1, "du', "is truncated"),
    (b"<html>not a trace</html>", "is not valid JSON"),
    (b'{"traceEvents": [{"ph": "M", "name": "process_name"}]}', "no timed events"),
    (b'{"schemaVersion": 1}', "not a Chrome trace"),
    (b'[{"ph": "X", "name": "a", "ts": "soon", "dur": 1}]', "not a number"),
])
def test_bad_files_raise_trace_error_naming_the_file(tmp_path, content, words):
    path = tmp_path / "broken.pt.trace.json"
    path.write_bytes(content)
    with pytest.raises(TraceError, match=words) as err:
        load_trace(path)
    assert str(path) in str(err.value)


def test_missing_and_truncated_gzip_files(tmp_path):
    with pytest.raises(TraceError, match="does not exist") as err:
        load_trace(tmp_path / "gone.json")
    assert "gone.json" in str(err.value)
    path = tmp_path / "cut.json.gz"
    path.write_bytes(gzip.compress(orjson.dumps({"traceEvents": STEP}))[:-12])
    with pytest.raises(TraceError, match="truncated") as err:
        load_trace(path)
    assert "cut.json.gz" in str(err.value)


def test_progress_rises_and_cancel_stops_loading(tmp_path):
    path = write(tmp_path, [x(f"op{i % 10}", i, 0.5) for i in range(140_000)])
    seen = []
    index = load_trace(path, progress=seen.append)
    assert seen[0] == 0 and seen[-1] == 1 and len(seen) > 3
    assert seen == sorted(seen)
    assert len(index) == 140_000
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(TraceCancelled):
        load_trace(path, cancel=cancel)


def test_synthetic_trace_nests_on_several_threads_and_a_stream(tmp_path):
    index = load_trace(write_synthetic_trace(tmp_path / "s.json", 5_000, threads=3, gpu=True))
    labels = [t.label for t in index.tracks]
    assert labels[:3] == ["CPU thread 1000", "CPU thread 1001", "CPU thread 1002"]
    assert labels[3] == "CUDA stream 7"
    assert [t.depth for t in index.tracks[:3]] == [4, 4, 4]  # step, module, op, child op
    steps = index.search("ProfilerStep#")
    assert (index.depth[steps] == 0).all()


def test_reads_a_trace_torch_profiler_records(tmp_path):
    torch = pytest.importorskip("torch")
    from torch.profiler import ProfilerActivity, profile, schedule, tensorboard_trace_handler

    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True,
                 schedule=schedule(wait=0, warmup=1, active=2, repeat=1),
                 on_trace_ready=tensorboard_trace_handler(str(tmp_path), worker_name="w")) as p:
        for _ in range(3):
            model(torch.randn(4, 8)).sum().backward()
            p.step()
    path = next(tmp_path.glob("*.pt.trace.json"))
    index = load_trace(path)
    assert any(t.label.startswith("CPU thread") for t in index.tracks)
    steps = index.search("ProfilerStep#")
    assert len(steps) == 2
    assert set(index.depth[steps].tolist()) == {0}
    addmm = index.search("aten::addmm")
    assert len(addmm) >= 4  # two layers, two steps
    info = index.event_info(int(addmm[0]))
    assert info["shapes"]["Input Dims"][1] == [4, 8]
    assert (index.depth[addmm] > 0).all()  # inside a step and aten::linear
    stats = dict((n, t) for n, t, _ in index.range_stats(0, index.span_us))
    assert stats["aten::addmm"] > 0
    assert np.isfinite(index.dur_us).all()


def test_slices_without_cat_or_pid_still_load(tmp_path):
    events = [{"ph": "X", "name": "a", "ts": 0, "dur": 5, "tid": 1},
              {"ph": "X", "name": "b", "ts": 1, "dur": 2, "tid": 1, "cat": "cpu_op"}]
    index = load_trace(write(tmp_path, events))
    assert sorted(index.categories) == ["", "cpu_op"]
    assert [t.label for t in index.tracks] == ["thread 1"]
    assert index.depth.tolist() == [0, 1]


def test_a_parent_and_its_first_child_starting_together(tmp_path):
    # the child is listed first; equal starts put the longer slice (the parent) on top
    events = [x("child", 10, 2), x("other", 0, 1), x("parent", 10, 5), x("grandchild", 10, 1)]
    index = load_trace(write(tmp_path, events))
    depth = {index.names[index.name_id[i]]: int(index.depth[i]) for i in range(len(index))}
    assert depth == {"other": 0, "parent": 0, "child": 1, "grandchild": 2}


def test_kineto_bare_na_values_are_read(tmp_path):
    path = tmp_path / "na.json"
    path.write_bytes(b'{"traceEvents": [{"ph": "X", "name": "a", "ts": 1, "dur": 2, '
                     b'"pid": 1, "tid": 1, "args": {"Concrete Inputs": N/A}}]}')
    assert load_trace(path).event_info(0)["args"] == {"Concrete Inputs": "N/A"}
