"""Per-step facts read straight from a torch.profiler trace file, which the tables of
``engine.profiling.report`` do not keep: where each host-device synchronisation happened
(and the Python line that asked for it, when the capture has stacks), and which
implementation the optimizer's step ran.

torch-tb-profiler's tables count an operator over the whole capture; a sync once per
logging interval and one in every step then look alike. Here each sync is placed in
its step, so a rule can take the median over steps.
"""

from __future__ import annotations

import re
import statistics
from bisect import bisect_right
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from engine.profiling.options import LOG_ANNOTATION
from engine.profiling.timeline import TraceError, read_events

# Calls that make the host wait for the device: reading a value back (``.item()``,
# ``bool(t)``, ``.tolist()`` all end in ``_local_scalar_dense``) and the runtime's waits
# (also reached by ``.cpu()`` and blocking ``.to()`` copies to the host).
SYNC_NAMES = frozenset({
    "aten::item", "aten::_local_scalar_dense",
    "cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize", "cudaMemcpy",
    "hipStreamSynchronize", "hipDeviceSynchronize", "hipEventSynchronize", "hipMemcpy",
})
# Syncs inside these do not count: torch.optim's annotations (a for-loop Adam reads its
# step counters, CPU scalars, with .item(), which waits for nothing) and the trainer's
# once-per-interval read of the loss.
OPTIMIZER_PREFIXES = ("Optimizer.step#", "Optimizer.zero_grad#")
EXEMPT_PREFIXES = (*OPTIMIZER_PREFIXES, LOG_ANNOTATION)
HOST_CATEGORIES = frozenset({"cpu_op", "user_annotation", "cuda_runtime", "cuda_driver",
                             "runtime", "hip_runtime", "python_function"})
_FRAME = re.compile(r"^(?P<file>.+?\.py)\((?P<line>\d+)\): (?P<func>.+)$")
MAX_SOURCES = 200  # syncs whose stack is looked up (the rest are only counted)


@dataclass(frozen=True)
class TraceFacts:
    steps: int
    syncs_per_step: tuple[int, ...]  # outermost sync calls in each profiled step
    sync_ops: dict[str, int] = field(default_factory=dict)  # outermost call -> count
    sync_sources: tuple[str, ...] = ()  # "file.py:12 (forward)", most frequent first
    optimizer_impl: str | None = None  # "fused", "foreach", "for-loop"; None: no step seen
    optimizer_share: float | None = None  # of the profiled steps' host time
    has_stacks: bool = False
    log_syncs_per_step: tuple[int, ...] = ()  # the trainer's own reads of the loss

    @property
    def median_syncs(self) -> float:
        return float(statistics.median(self.syncs_per_step)) if self.syncs_per_step else 0.0

    @property
    def median_log_syncs(self) -> float:
        return (float(statistics.median(self.log_syncs_per_step)) if self.log_syncs_per_step
                else 0.0)


def read_facts(path: str | Path) -> TraceFacts:
    """The facts of one ``*.pt.trace.json[.gz]``; raises TraceError naming the file."""
    path = Path(path)
    return facts_from_events([e for e in read_events(path) if isinstance(e, dict)])


def facts_from_events(events: list[dict]) -> TraceFacts:
    host = [e for e in events if e.get("ph") == "X" and e.get("cat") in HOST_CATEGORIES
            and isinstance(e.get("ts"), (int, float))]
    steps = sorted((e for e in host if str(e.get("name", "")).startswith("ProfilerStep#")
                    and e.get("cat") in ("user_annotation", "cpu_op")), key=_start)
    optim = [e for e in host if str(e.get("name", "")).startswith(OPTIMIZER_PREFIXES)]
    exempt = [e for e in host if str(e.get("name", "")).startswith(EXEMPT_PREFIXES)]
    frames = [e for e in host if e.get("cat") == "python_function"]
    syncs = _outermost([e for e in host if e.get("name") in SYNC_NAMES
                        and not any(_inside(e, o) for o in exempt)])
    per_step = tuple(sum(1 for s in syncs if _inside(s, step)) for step in steps)
    logs = [e for e in host if e.get("name") == LOG_ANNOTATION]
    log_syncs = _outermost([e for e in host if e.get("name") in SYNC_NAMES
                            and any(_inside(e, lg) for lg in logs)])
    log_per_step = tuple(sum(1 for s in log_syncs if _inside(s, step)) for step in steps)
    in_steps = [s for s in syncs if any(_inside(s, step) for step in steps)] if steps else syncs
    threads = _by_thread(frames)
    sources = Counter(src for src in (_source(s, threads) for s in in_steps[:MAX_SOURCES])
                      if src)
    return TraceFacts(
        steps=len(steps),
        syncs_per_step=per_step if steps else ((len(syncs),) if syncs else ()),
        sync_ops=dict(Counter(str(s["name"]) for s in in_steps)),
        sync_sources=tuple(src for src, _ in sources.most_common()),
        optimizer_impl=_optimizer_impl(host, optim),
        optimizer_share=_share([o for o in optim if o["name"].startswith("Optimizer.step#")],
                               steps),
        has_stacks=bool(frames), log_syncs_per_step=log_per_step)


def _start(e: dict) -> float:
    return float(e["ts"])


def _end(e: dict) -> float:
    return float(e["ts"]) + float(e.get("dur") or 0)


def _inside(e: dict, outer: dict) -> bool:
    return (e.get("tid") == outer.get("tid") and e.get("pid") == outer.get("pid")
            and _start(outer) <= _start(e) and _end(e) <= _end(outer))


def _outermost(syncs: list[dict]) -> list[dict]:
    """One per sync point: ``aten::item`` encloses ``_local_scalar_dense``, which encloses
    the runtime's wait; only the outermost of such a nest counts."""
    out: list[dict] = []
    by_thread: dict[tuple, list[dict]] = defaultdict(list)
    for e in syncs:
        by_thread[(e.get("pid"), e.get("tid"))].append(e)
    for calls in by_thread.values():
        calls.sort(key=lambda e: (_start(e), -_end(e)))
        open_until = float("-inf")
        for e in calls:
            if _start(e) >= open_until or _end(e) > open_until:
                out.append(e)
                open_until = _end(e)
    return out


def _source(sync: dict, frames: dict[tuple, tuple[list[float], list[dict]]]) -> str | None:
    """The innermost Python frame around ``sync`` outside torch itself: the user's line.

    ``frames``: each thread's frames sorted by start. The innermost enclosing frame
    is the latest-starting one, so the walk goes back from the sync's start.
    """
    starts, calls = frames.get((sync.get("pid"), sync.get("tid")), ((), ()))
    for i in range(bisect_right(starts, _start(sync)) - 1, -1, -1):
        f = calls[i]
        if _end(f) < _end(sync):
            continue
        m = _FRAME.match(str(f.get("name", "")))
        if m and not _in_torch(m["file"]):
            return f"{m['file']}:{m['line']} ({m['func']})"
    return None


def _by_thread(frames: list[dict]) -> dict[tuple, tuple[list[float], list[dict]]]:
    grouped: dict[tuple, list[dict]] = defaultdict(list)
    for f in frames:
        grouped[(f.get("pid"), f.get("tid"))].append(f)
    out = {}
    for key, calls in grouped.items():
        calls.sort(key=lambda e: (_start(e), -_end(e)))
        out[key] = ([_start(f) for f in calls], calls)
    return out


def _in_torch(file: str) -> bool:
    file = file.replace("\\", "/")
    return file.startswith(("torch/", "<")) or "/torch/" in file or "site-packages/" in file


def _optimizer_impl(host: list[dict], optim: list[dict]) -> str | None:
    steps = [o for o in optim if o["name"].startswith("Optimizer.step#")]
    if not steps:
        return None
    names = {str(e.get("name", "")) for e in host
             if e.get("cat") == "cpu_op" and any(_inside(e, o) for o in steps)}
    if any(n.startswith("aten::_fused_") for n in names):
        return "fused"
    if any(n.startswith("aten::_foreach_") for n in names):
        return "foreach"
    return "for-loop"


def _share(parts: list[dict], steps: list[dict]) -> float | None:
    if not parts or not steps:
        return None
    total = sum(_end(s) - _start(s) for s in steps)
    inside = sum(_end(p) - _start(p) for p in parts if any(_inside(p, s) for s in steps))
    return inside / total if total > 0 else None


__all__ = ["SYNC_NAMES", "TraceError", "TraceFacts", "facts_from_events", "read_facts"]
