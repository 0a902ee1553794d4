"""Chrome trace files (as torch.profiler writes them) read into arrays a timeline can draw fast.

A trace of a million slices is a million Python dicts once parsed; kept that
way, every frame of a timeline would walk them. So ``load_trace`` reads the
file once with orjson, keeps the slices as a struct of numpy arrays sorted by
track and start, and builds for each row (track and nesting depth) a pyramid
of coarser versions in which slices closer than a resolution are merged.
A frame then asks ``visible`` for one row's bars in a time window at its pixel
size, and gets back at most a few bars per pixel whatever the trace's size.

Times are indexed as integer nanoseconds from the trace's first slice (and
offered as microseconds, the unit of the file): torch writes absolute µs with
three decimals, around 1.7e15, where a float64 keeps only a quarter µs, so such
a trace's times are read exactly from their text before the origin is
subtracted, and a child never changes parent by rounding.
"""

from __future__ import annotations

import gc
import gzip
import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path

import numpy as np
import orjson

from .accelerator import CUDA, Accelerator, identify, is_runtime, lane_label, metadata_names
from .categories import normalise_category
from .exact_times import (
    EXACT_FLOAT_US,
    has_decimal_times,
    quote_times,
    quoted_times,
    times_from_text,
)
from .nesting import depths, track_time_order

# torch.profiler's categories (Kineto's "cat") with a colour each; ProfilerStep#N
# spans are user annotations, given a category of their own so steps stand out.
CATEGORY_COLOURS = {
    "profiler_step": "#8c96a5",
    "user_annotation": "#b07cd8",
    "gpu_user_annotation": "#b07cd8",
    "python_function": "#9cc5b0",
    "cpu_op": "#4a90d9",
    "cuda_runtime": "#e0a33a",
    "cuda_driver": "#c98d2e",
    "kernel": "#3fae5a",
    "gpu_memcpy": "#d9534f",
    "gpu_memset": "#e77fa8",
    "cpu_instant_event": "#999999",
}
# Categories nobody listed get one of these, the same one for the same name.
OTHER_COLOURS = ("#5fb3a8", "#c7b24b", "#a77d5c", "#8f8fd6", "#d07c4a", "#6aa84f")
GPU_CATEGORIES = frozenset({"kernel", "gpu_memcpy", "gpu_memset", "gpu_user_annotation"})
SHAPE_ARGS = ("Input Dims", "Input type")
# torch 1.8/1.9 spelled the shapes' key "Input dims".
OLD_ARG_NAMES = {"Input dims": "Input Dims"}
CHECK_EVERY = 1 << 16  # slices between progress reports and cancel checks
# Args are kept as JSON, ARGS_CHUNK slices' worth a string: a million small dicts
# would be scanned by every full pass of the cyclic collector, and one dump call
# per slice costs 20x more than one per chunk.
ARGS_CHUNK = 1024
PYRAMID_BASE_US = 0.25  # the finest merge resolution; each level 4x coarser
PYRAMID_FACTOR = 4.0


class TraceError(Exception):
    """A trace file that cannot be read; the message names the file and what to do."""


class TraceCancelled(Exception):
    """``cancel()`` asked ``load_trace`` to stop."""


def category_colour(category: str) -> str:
    if category in CATEGORY_COLOURS:
        return CATEGORY_COLOURS[category]
    if is_runtime(category):  # hip_runtime, xpu_driver...: as CUDA's calls of the same kind
        return CATEGORY_COLOURS["cuda_driver" if category.endswith("_driver") else "cuda_runtime"]
    return OTHER_COLOURS[zlib.crc32(category.encode()) % len(OTHER_COLOURS)]


@dataclass(frozen=True)
class Track:
    """One timeline lane: a CPU thread (pid, tid) or a device's stream (device, stream)."""

    label: str
    pid: object
    tid: object
    kind: str  # "cpu", "gpu" or "other"
    depth: int  # rows: 1 + the deepest nesting on it
    first_row: int  # index of its top row among all rows


@dataclass(frozen=True)
class Bars:
    """What one row shows in a window: slices, or runs of slices merged below a pixel.

    ``event`` is the slice a bar stands for: itself, or the longest one of a
    merged run (whose colour the bar takes); ``count`` is how many it holds.
    """

    start: np.ndarray
    end: np.ndarray
    category: np.ndarray
    event: np.ndarray
    count: np.ndarray

    def __len__(self) -> int:
        return len(self.start)


@dataclass
class _Level:
    resolution: float
    start: np.ndarray
    end: np.ndarray
    longest: np.ndarray  # global index of the longest slice in each bar
    count: np.ndarray


class TraceIndex:
    """The slices of one trace as sorted arrays, with per-row pyramids for drawing.

    Slices are ordered by track, then start, longer first on ties, so a
    parent comes before its children. ``rows`` lists (track, depth) in drawing
    order; ``tracks[t].first_row + depth`` is a slice's row.
    """

    def __init__(self, path: Path, start_ns, dur_ns, name_id, track_id, depth, category_id,
                 args_index, names: list[str], categories: list[str], tracks: list[Track],
                 args: list, origin_us: float, accelerator: Accelerator = CUDA):
        self.path = path
        self.accelerator = accelerator  # what the device lanes are (see ``accelerator``)
        self.start_ns = start_ns
        self.dur_ns = dur_ns
        self.start_us = start_ns / 1000.0
        self.dur_us = dur_ns / 1000.0
        self.end_us = self.start_us + self.dur_us
        self.span_us = float(self.end_us.max())
        self.name_id = name_id
        self.track_id = track_id
        self.depth = depth
        self.category_id = category_id
        self.args_index = args_index
        self.names = names
        self.categories = categories
        self.tracks = tracks
        self.origin_us = origin_us
        self._args = args
        self._lower_names = [n.lower() for n in names]
        self.rows: list[tuple[int, int]] = [(t, d) for t, tr in enumerate(tracks)
                                            for d in range(tr.depth)]
        self._pyramids = self._build_pyramids()

    def __len__(self) -> int:
        return len(self.start_us)

    def colour(self, category_id: int) -> str:
        return category_colour(self.categories[category_id])

    def row_of(self, i: int) -> int:
        return self.tracks[int(self.track_id[i])].first_row + int(self.depth[i])

    # --- level of detail ---------------------------------------------------------
    def _build_pyramids(self) -> list[list[_Level]]:
        """Per row: the raw slices, then merges at 4x coarser resolutions until one bar."""
        key = self.track_id.astype(np.int64) * 65536 + self.depth
        order = np.argsort(key, kind="stable")  # rows keep their time order
        bounds = np.searchsorted(key[order], [t * 65536 + d for t, d in self.rows] +
                                 [np.iinfo(np.int64).max])
        pyramids = []
        for r in range(len(self.rows)):
            idx = order[bounds[r]:bounds[r + 1]]
            level = _Level(0.0, self.start_us[idx], self.end_us[idx], idx,
                           np.ones(len(idx), dtype=np.int64))
            levels = [level]
            resolution = PYRAMID_BASE_US
            while len(level.start) > 1:
                level = _merge(level, resolution, self.dur_us)
                if len(level.start) < len(levels[-1].start):
                    levels.append(level)
                resolution *= PYRAMID_FACTOR
            pyramids.append(levels)
        return pyramids

    def visible(self, row: int, t0: float, t1: float, px_us: float) -> Bars:
        """The bars of ``row`` overlapping [t0, t1] at ``px_us`` microseconds per pixel.

        Runs of bars narrower than a pixel and closer than one are merged, so
        a row yields at most a few bars per pixel of the window whatever the
        trace's size, and a slice a pixel wide or more is always itself.
        """
        levels = self._pyramids[row]
        level = levels[0]
        for candidate in levels[1:]:
            if candidate.resolution > px_us:
                break
            level = candidate
        lo = max(0, int(np.searchsorted(level.start, t0, side="right")) - 1)
        hi = int(np.searchsorted(level.start, t1, side="right"))
        start, end = level.start[lo:hi], level.end[lo:hi]
        keep = end >= t0
        start, end = start[keep], end[keep]
        longest, count = level.longest[lo:hi][keep], level.count[lo:hi][keep]
        if len(start) > 1:
            # Bars under a pixel less than a pixel apart become one, coloured by its longest.
            new = _run_starts(start, end, px_us)
            if not new.all():
                firsts, longest = _runs(new, longest, self.dur_us)
                count = np.add.reduceat(count, firsts)
                start, end = start[firsts], np.maximum.reduceat(end, firsts)
        return Bars(start, end, self.category_id[longest], longest, count)

    def event_at(self, row: int, t: float, tolerance_us: float = 0.0) -> int | None:
        """The slice of ``row`` under time ``t`` (or within the tolerance), if any."""
        raw = self._pyramids[row][0]
        i = int(np.searchsorted(raw.start, t, side="right")) - 1
        candidates = [j for j in (i, i + 1) if 0 <= j < len(raw.start)]
        best, gap = None, tolerance_us
        for j in candidates:
            d = max(raw.start[j] - t, t - raw.end[j], 0.0)
            if d <= gap:
                best, gap = int(raw.longest[j]), d
        return best

    # --- queries -----------------------------------------------------------------
    def search(self, text: str) -> np.ndarray:
        """Indices of slices whose name holds ``text`` (any case), in time order."""
        needle = text.strip().lower()
        if not needle:
            return np.empty(0, dtype=np.int64)
        ids = [i for i, n in enumerate(self._lower_names) if needle in n]
        hits = np.flatnonzero(np.isin(self.name_id, ids))
        return hits[np.argsort(self.start_us[hits], kind="stable")]

    def range_stats(self, t0: float, t1: float,
                    tracks: Sequence[int] | None = None) -> list[tuple[str, float, int]]:
        """(name, time inside [t0, t1] in µs, slices touching it), most time first.

        A slice that sticks out of the range counts only its part inside.
        """
        t0, t1 = min(t0, t1), max(t0, t1)
        mask = (self.start_us < t1) & (self.end_us > t0)
        if tracks is not None:
            mask &= np.isin(self.track_id, list(tracks))
        idx = np.flatnonzero(mask)
        inside = np.minimum(self.end_us[idx], t1) - np.maximum(self.start_us[idx], t0)
        names = self.name_id[idx]
        total = np.bincount(names, weights=inside, minlength=len(self.names))
        count = np.bincount(names, minlength=len(self.names))
        present = np.flatnonzero(count)
        present = present[np.argsort(-total[present], kind="stable")]
        return [(self.names[i], float(total[i]), int(count[i])) for i in present]

    def event_info(self, i: int) -> dict:
        """What a click on slice ``i`` shows: name, category, times, track, shapes, args."""
        at = int(self.args_index[i])
        args = orjson.loads(self._args[at // ARGS_CHUNK])[at % ARGS_CHUNK] or {}
        args = {OLD_ARG_NAMES.get(key, key): value for key, value in args.items()}
        shapes = {key: args.pop(key) for key in SHAPE_ARGS if key in args}
        return {
            "name": self.names[self.name_id[i]],
            "category": self.categories[self.category_id[i]],
            "start_us": float(self.start_us[i]),
            "dur_us": float(self.dur_us[i]),
            "track": self.tracks[self.track_id[i]].label,
            "depth": int(self.depth[i]),
            "shapes": shapes,
            "args": args,
        }


def _merge(level: _Level, resolution: float, dur_us: np.ndarray) -> _Level:
    """``level`` with runs of bars narrower than ``resolution`` merged (see ``_run_starts``)."""
    new = _run_starts(level.start, level.end, resolution)
    firsts, longest = _runs(new, level.longest, dur_us)
    return _Level(resolution, level.start[firsts], np.maximum.reduceat(level.end, firsts),
                  longest, np.add.reduceat(level.count, firsts))


def _run_starts(start: np.ndarray, end: np.ndarray, resolution: float) -> np.ndarray:
    """Where a run of mergeable bars begins: bars narrower than ``resolution`` with gaps
    under it merge; a wider bar stays itself, so neighbours never hide each other."""
    small = end - start < resolution
    new = np.empty(len(start), dtype=bool)
    new[0] = True
    gap = start[1:] - np.maximum.accumulate(end)[:-1]
    new[1:] = ~small[1:] | ~small[:-1] | (gap >= resolution)
    return new


def _runs(new: np.ndarray, longest: np.ndarray, dur_us: np.ndarray):
    """First position of each run (``new`` marks starts) and the longest slice in each."""
    firsts = np.flatnonzero(new)
    durs = dur_us[longest]
    run = np.cumsum(new) - 1
    is_max = np.flatnonzero(durs == np.maximum.reduceat(durs, firsts)[run])
    first_max = is_max[np.flatnonzero(np.diff(run[is_max], prepend=-1))]
    return firsts, longest[first_max]


# --- loading -------------------------------------------------------------------------
def load_trace(path, progress: Callable[[float], None] | None = None,
               cancel: Callable[[], bool] | None = None) -> TraceIndex:
    """Read a Chrome trace (``.json`` or ``.json.gz``) into a ``TraceIndex``.

    Raises TraceError naming the file when it is missing, empty, truncated,
    not JSON or holds no slices, and TraceCancelled when ``cancel()`` says so.
    """
    path = Path(path)
    report = progress or (lambda fraction: None)
    stop = cancel or (lambda: False)

    def check(fraction: float) -> None:
        if stop():
            raise TraceCancelled(f"loading {path} was cancelled")
        report(fraction)

    check(0.0)
    # A parsed trace is millions of short-lived containers: the cyclic collector
    # would scan them again and again while they are made (3x the parse time).
    # The switch is process-wide, for the seconds of the load.
    collecting = gc.isenabled()
    gc.disable()
    try:
        data = _read_bytes(path)
        events, devices = _parse(path, data)
        check(0.3)
        columns = _collect(path, events, check, lambda: has_decimal_times(data))
        if columns is None:  # times a float cannot hold to the nanosecond: read their text
            if not times_from_text(data, events):
                del events
                events, devices = _parse(path, quote_times(data))
                quoted_times(events)
            del data
            columns = _collect(path, events, lambda fraction: check(0.8), None)
        meta = _device_metadata(events, categories=columns[6])
        del events
        check(0.8)
        index = _index(path, *columns, meta, devices)
    finally:
        if collecting:
            gc.enable()
    report(1.0)
    return index


def read_events(path) -> list:
    """A trace file's raw events (gzip or not), with the same errors as ``load_trace``:
    for readers that need what the timeline's index leaves out (the advisor's facts)."""
    path = Path(path)
    return _parse(path, _read_bytes(path))[0]


def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TraceError(f"trace file {path} does not exist: check the path or record "
                         "the trace again") from None
    except OSError as exc:
        raise TraceError(f"trace file {path} cannot be read ({exc.strerror})") from None
    if path.suffix == ".gz" or data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except EOFError:
            raise TraceError(f"trace file {path} is truncated (the compressed data ends "
                             "early): record it again") from None
        except (OSError, zlib.error) as exc:
            raise TraceError(f"trace file {path} is not valid gzip ({exc}): record it "
                             "again") from None
    if not data or data.isspace():
        raise TraceError(f"trace file {path} is empty: the profiler wrote nothing; record "
                         "it again")
    return data


def _parse(path: Path, data: bytes) -> tuple[list, list]:
    """The trace's events, and its ``deviceProperties`` (empty where it has none)."""
    try:
        doc = _loads(data)
    except orjson.JSONDecodeError as exc:
        if exc.pos >= len(data.rstrip()) - 1:
            raise TraceError(f"trace file {path} is truncated (ends mid-JSON): record it "
                             "again") from None
        raise TraceError(f"trace file {path} is not valid JSON ({exc.msg} at byte "
                         f"{exc.pos}): is it a Chrome trace?") from None
    events = doc.get("traceEvents") if isinstance(doc, dict) else doc
    if not isinstance(events, list):
        raise TraceError(f"trace file {path} is not a Chrome trace (no \"traceEvents\" "
                         "list)")
    devices = doc.get("deviceProperties") if isinstance(doc, dict) else None
    return events, devices if isinstance(devices, list) else []


def _loads(data: bytes):
    """orjson, and torch-tb-profiler's workaround for Kineto's bare N/A values."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        if b"N/A" not in data:
            raise
        return orjson.loads(re.sub(rb'(?<!")N/A(?!")', b'"N/A"', data))


def _collect(path: Path, events: list, check: Callable[[float], None],
             has_decimals: Callable[[], bool] | None) -> tuple | None:
    """Complete slices (and B/E pairs) into columns, a chunk of events at a time.

    List comprehensions per chunk rather than one loop with appends: this is
    the part of loading that is Python, and comprehensions halve it. Times
    come as float µs, or, without ``has_decimals``, as integer ns (see
    ``exact_times``). None when times too large for a float to hold their
    nanoseconds have decimals in the file, for the caller to read them exactly.
    """
    starts, durs, names, cats, keys, args = [], [], [], [], [], []
    open_b: dict[tuple, list] = {}  # B events waiting for their E, per thread
    total = len(events)
    for lo in range(0, total, CHECK_EVERY):
        check(0.3 + 0.5 * lo / total)
        chunk = [e for e in events[lo:lo + CHECK_EVERY] if type(e) is dict]
        xs = [e for e in chunk if e.get("ph") == "X" and "dur" in e and "ts" in e]
        if any(e.get("ph") in ("B", "E") for e in chunk):
            xs += _pair_begin_end([e for e in chunk if e.get("ph") in ("B", "E")], open_b)
        starts += map(itemgetter("ts"), xs)
        durs += map(itemgetter("dur"), xs)
        try:  # torch.profiler always writes these: C-level getters are twice as fast
            names += map(itemgetter("name"), xs)
            cats += map(itemgetter("cat"), xs)
            keys += map(itemgetter("pid", "tid"), xs)
        except KeyError:
            done = len(starts) - len(xs)  # drop what this chunk added before the error
            del names[done:], cats[done:], keys[done:]
            names += [e.get("name", "") for e in xs]
            cats += [e.get("cat", "") for e in xs]
            keys += [(e.get("pid"), e.get("tid")) for e in xs]
        args += [e.get("args") for e in xs]
    if not starts:
        raise TraceError(f"trace file {path} holds no timed events (no \"X\" or B/E "
                         "slices): record the trace with at least one active step")
    try:
        if has_decimals is None:
            start, dur = np.asarray(starts, dtype=np.int64), np.asarray(durs, dtype=np.int64)
            origin_ns = int(start.min())
            start, origin_us = start - origin_ns, origin_ns / 1000
        else:
            start, dur = np.asarray(starts, dtype=np.float64), np.asarray(durs, dtype=np.float64)
            if np.abs(start).max() >= EXACT_FLOAT_US and has_decimals():
                return None
            origin_us = float(start.min())
            start = np.rint((start - origin_us) * 1000).astype(np.int64)
            dur = np.rint(dur * 1000).astype(np.int64)
    except (TypeError, ValueError, OverflowError):
        raise TraceError(f"trace file {path} has slices whose \"ts\" or \"dur\" is not a "
                         "number: is it a Chrome trace?") from None
    name_ids, cat_ids, track_ids = _Numbering(), _Numbering(), _Numbering()
    name_id = np.fromiter(map(name_ids.__getitem__, names), np.int32, len(names))
    cat_id = np.fromiter(map(cat_ids.__getitem__, cats), np.int16, len(cats))
    track_id = np.fromiter(map(track_ids.__getitem__, keys), np.int32, len(keys))
    categories, cat_id = _normalised(list(cat_ids), cat_id)
    # A step is a user annotation, or an operator in torch 1.8/1.9.
    step_cats = [i for i, c in enumerate(categories) if c in ("user_annotation", "cpu_op")]
    if step_cats:
        steps = [i for n, i in name_ids.items()
                 if isinstance(n, str) and n.startswith("ProfilerStep#")]
        is_step = np.isin(name_id, steps) & np.isin(cat_id, step_cats)
        if is_step.any():
            cat_id[is_step] = len(categories)
            categories.append("profiler_step")
    chunks = [orjson.dumps(args[i:i + ARGS_CHUNK]) for i in range(0, len(args), ARGS_CHUNK)]
    return (start, dur, name_id, track_id, cat_id, list(name_ids), categories,
            list(track_ids), chunks, origin_us)


def _device_metadata(events: list, categories: list) -> list:
    """The metadata events (process and thread names) of a trace with device lanes, which
    name them; a CPU trace's are not needed, and not looked for."""
    if GPU_CATEGORIES.isdisjoint(categories):
        return []
    return [e for e in events if type(e) is dict and e.get("ph") == "M"]


def _normalised(categories: list, cat_id: np.ndarray) -> tuple[list, np.ndarray]:
    """Categories under their current Kineto names (see ``categories``), spellings of
    the same one merged into one id."""
    names = [normalise_category(c) for c in categories]
    if names == categories:
        return categories, cat_id
    numbering = _Numbering()
    remap = np.fromiter(map(numbering.__getitem__, names), np.int16, len(names))
    return list(numbering), remap[cat_id]


class _Numbering(dict):
    """Numbers keys 0, 1, 2... in order of first sight: a lookup that finds its key stays
    in C, so mapping a million names costs a third of a ``setdefault`` per name."""

    def __missing__(self, key) -> int:
        number = self[key] = len(self)
        return number


def _pair_begin_end(events: list[dict], open_b: dict[tuple, list]) -> list[dict]:
    """B/E events of each thread paired into complete slices (a B with no E is dropped)."""
    out = []
    for e in events:
        key = (e.get("pid"), e.get("tid"))
        if e["ph"] == "B":
            open_b.setdefault(key, []).append(e)
        elif open_b.get(key) and "ts" in e:
            b = open_b[key].pop()
            out.append({**b, "ph": "X", "dur": e["ts"] - b.get("ts", e["ts"]),
                        "ts": b.get("ts", e["ts"])})
    return out


def _index(path: Path, start, dur, name_id, track_id, cat_id, names, categories, track_keys,
           args, origin_us: float, meta: list, devices: list) -> TraceIndex:
    """Sort into tracks in display order, compute nesting depth, number the rows.

    ``start`` (from the first slice) and ``dur`` are integer nanoseconds; ``meta``
    the trace's metadata events, ``devices`` its ``deviceProperties``.
    """
    dur = np.maximum(dur, 0)
    gpu_ids = {i for i, c in enumerate(categories) if c in GPU_CATEGORIES}
    on_gpu = np.zeros(len(track_keys), dtype=bool)
    if gpu_ids:
        on_gpu[np.unique(track_id[np.isin(cat_id, list(gpu_ids))])] = True
    kinds = ["gpu" if on_gpu[t] else "cpu" if isinstance(pid, int) else "other"
             for t, (pid, _) in enumerate(track_keys)]
    rank = {"cpu": 0, "gpu": 1, "other": 2}
    display = sorted(range(len(track_keys)),
                     key=lambda t: (rank[kinds[t]], str(track_keys[t][0]), str(track_keys[t][1])))
    new_id = np.empty(len(track_keys), dtype=np.int32)
    new_id[display] = np.arange(len(display), dtype=np.int32)
    track_id = new_id[track_id]

    order = track_time_order(start, dur, track_id)
    start, dur, name_id, track_id = start[order], dur[order], name_id[order], track_id[order]
    cat_id, args_at = cat_id[order], order.astype(np.int32)
    depth = depths(start, dur, track_id)

    device_pids = {track_keys[t][0] for t in display if kinds[t] == "gpu"}
    processes, threads = metadata_names(meta)
    accelerator = identify(_runtime_calls(name_id, cat_id, names, categories), devices,
                           [processes[pid] for pid in device_pids if pid in processes])
    tracks, first_row = [], 0
    bounds = np.searchsorted(track_id, np.arange(len(display) + 1))
    for new, old in enumerate(display):
        pid, tid = track_keys[old]
        if kinds[old] == "gpu":
            label = lane_label(accelerator, pid, tid, threads.get((pid, tid)),
                               processes.get(pid), len(device_pids) > 1)
        elif kinds[old] == "cpu":
            label = f"CPU thread {tid}"
        else:  # torch's "Spans" lanes, or a trace written by something else
            label = " ".join(str(part) for part in (pid, tid) if part is not None) or "events"
            label = f"thread {tid}" if pid is None and tid is not None else label
        rows = int(depth[bounds[new]:bounds[new + 1]].max()) + 1
        tracks.append(Track(label, pid, tid, kinds[old], rows, first_row))
        first_row += rows
    return TraceIndex(path, start, dur, name_id, track_id, depth, cat_id, args_at, names,
                      categories, tracks, args, origin_us, accelerator)


def _runtime_calls(name_id, cat_id, names, categories) -> list[tuple[str, str]]:
    """(category, name) of each distinct runtime call, in the trace's order."""
    runtime = [i for i, c in enumerate(categories) if is_runtime(c)]
    if not runtime:
        return []
    at = np.flatnonzero(np.isin(cat_id, runtime))
    _, first = np.unique(name_id[at], return_index=True)
    at = at[np.sort(first)]
    return [(categories[cat_id[i]], names[name_id[i]]) for i in at]
