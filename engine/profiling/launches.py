"""Each kernel tied to the operator that launched it, by time on the launching thread.

A kernel names its runtime launch (``cudaLaunchKernel``, ``hipLaunchKernel``...)
by ``args.correlation``, and the launch names its operator by ``External id``.
Many real traces break the second link: Kineto writes a launch it could not
link with its own correlation id as ``External id`` (or none), so a reader that
trusts it ties no kernel to any operator, or ties one to an unrelated operator
whose id happens to be equal. The launch itself is exact, though: it ran on the
operator's thread, inside the operator's span. So a launch whose ``External id``
does not name an operator enclosing it on its thread is given the id of the
innermost operator (or user annotation) that does, and its kernels, copies and
memsets the same; where nothing encloses it, id 0 (the thread's root).
"""

from __future__ import annotations

from collections import defaultdict
from itertools import count

# The host events that own launches: torch's external id is the innermost of these.
HOST_CATEGORIES = frozenset({"cpu_op", "user_annotation"})
DEVICE_CATEGORIES = frozenset({"kernel", "gpu_memcpy", "gpu_memset"})
EXTERNAL_ID_KEYS = ("external id", "External id")  # torch 1.8's spelling, then today's


def external_id(args: dict):
    for key in EXTERNAL_ID_KEYS:
        if args.get(key) is not None:
            return args[key]
    return None


def set_external_id(event: dict, value) -> None:
    args = event.get("args")
    if not isinstance(args, dict):
        args = event["args"] = {}
    keys = [key for key in EXTERNAL_ID_KEYS if key in args] or ["External id"]
    for key in keys:
        args[key] = value


def attribute_launches(events: list, runtime: str = "runtime") -> None:
    """Rewrite, in place, the ``External id`` of launches (category ``runtime``) that
    do not name an operator enclosing them, and of the device events they launched."""
    hosts: dict[tuple, list] = defaultdict(list)
    launches: dict[tuple, list] = defaultdict(list)
    for e in events:
        cat = e.get("cat")
        if e.get("ph") != "X" or (cat != runtime and cat not in HOST_CATEGORIES):
            continue
        span = _span(e)
        if span is not None:
            (launches if cat == runtime else hosts)[(e.get("pid"), e.get("tid"))].append(
                (*span, e))
    if not launches:
        return
    used = {external_id(h[2].get("args") or {}) for spans in hosts.values() for h in spans}
    fresh = count(max((i for i in used if isinstance(i, int)), default=0) + 1)
    moved: dict = {}  # correlation -> the external id its launch was given
    for thread, calls in launches.items():
        for (_, _, call), enclosing in zip(calls, _enclosing(hosts.get(thread, []), calls)):
            args = call.get("args") or {}
            now = external_id(args)
            if now is not None and any(external_id(h.get("args") or {}) == now
                                       for h in enclosing):
                continue  # the trace's own link names an operator around the launch
            owner = enclosing[0] if enclosing else None
            if owner is None:
                new = 0
            else:
                new = external_id(owner.get("args") or {})
                if new is None or new == 0:
                    new = next(fresh)
                    set_external_id(owner, new)
            set_external_id(call, new)
            if args.get("correlation") is not None:
                moved[args["correlation"]] = new
    if moved:
        for e in events:
            if e.get("cat") in DEVICE_CATEGORIES:
                corr = (e.get("args") or {}).get("correlation")
                if corr in moved:
                    set_external_id(e, moved[corr])


def _span(e: dict):
    ts, dur = e.get("ts"), e.get("dur", 0)
    if not isinstance(ts, (int, float)) or not isinstance(dur, (int, float)):
        return None
    return ts, ts + max(dur, 0)


def _enclosing(hosts: list, calls: list) -> list[list[dict]]:
    """For each launch (in ``calls``' order) the host events enclosing it, innermost first.

    One sweep over both in time order with a stack of the open host events; a
    host event that starts with the launch encloses it.
    """
    items = [(start, 0, -end, i) for i, (start, end, _) in enumerate(hosts)]
    items += [(start, 1, -end, i) for i, (start, end, _) in enumerate(calls)]
    items.sort(key=lambda item: item[:3])
    stack: list[int] = []
    out: list[list[dict]] = [[] for _ in calls]
    for start, is_call, neg_end, i in items:
        while stack and hosts[stack[-1]][1] <= start and not (
                is_call and hosts[stack[-1]][1] == start == -neg_end):
            stack.pop()
        if not is_call:
            stack.append(i)
            continue
        out[i] = [hosts[h][2] for h in reversed(stack) if hosts[h][1] >= -neg_end]
    return out
