"""How slices sit on a timeline's tracks: their order (track, start, longer first) and
nesting depth, computed with sorted searches over whole arrays and a stack only where a
track's slices do not nest cleanly."""

from __future__ import annotations

import numpy as np

NEST_TOLERANCE_NS = 2  # how far a child may end past its parent and still nest


def depths(start: np.ndarray, dur: np.ndarray, track_id: np.ndarray) -> np.ndarray:
    """Nesting depth of each slice on its track (slices sorted by track, start, longer first).

    Where slices nest properly, a slice's depth is the number of slices before
    it that have not ended by its start: one sorted search per track. Ends a
    nanosecond past the parent's (the file's rounding) are tolerated. A track
    whose rows would then overlap is done again one slice at a time.
    """
    depth = np.empty(len(start), dtype=np.int64)
    bounds = np.searchsorted(track_id, np.arange(track_id.max() + 2))
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        s, e = start[lo:hi], start[lo:hi] + dur[lo:hi]
        d = np.arange(hi - lo) - np.searchsorted(np.sort(e), s + NEST_TOLERANCE_NS, side="right")
        if hi > lo and (d.min() < 0 or _rows_overlap(s, e, d)):
            d = _depths_one_by_one(s, e)
        depth[lo:hi] = d
    return depth.astype(np.int16)


def track_time_order(start: np.ndarray, dur: np.ndarray, track_id: np.ndarray) -> np.ndarray:
    """The order by track, start and longer first: two stable sorts (fast on the nearly
    sorted times of a trace, radix on tracks) and a sort by length only where starts tie."""
    order = np.argsort(start, kind="stable")
    tracks = track_id[order]
    small = tracks.astype(np.int16) if tracks.max() < 2 ** 15 else tracks  # int16: radix sort
    order = order[np.argsort(small, kind="stable")]
    s, t = start[order], track_id[order]
    tie = (s[1:] == s[:-1]) & (t[1:] == t[:-1])
    if tie.any():
        grouped = np.zeros(len(order), dtype=bool)
        grouped[1:] |= tie
        grouped[:-1] |= tie
        at = np.flatnonzero(grouped)
        group = np.cumsum(np.concatenate(([True], ~tie)))[at]
        order[at] = order[at][np.lexsort((-dur[order[at]], group))]
    return order


def _rows_overlap(s: np.ndarray, e: np.ndarray, d: np.ndarray) -> bool:
    order = np.argsort(d.astype(np.int16), kind="stable")  # by depth, then by start
    same_row = d[order][1:] == d[order][:-1]
    return bool((e[order][:-1][same_row] > s[order][1:][same_row] + NEST_TOLERANCE_NS).any())


def _depths_one_by_one(start: np.ndarray, end: np.ndarray) -> list[int]:
    """Depths with a stack of open ends; a child that runs past its parent is cut at its end."""
    depth = []
    ends = end.tolist()
    stack: list[int] = []
    for i, s in enumerate(start.tolist()):
        while stack and stack[-1] <= s:
            stack.pop()
        e = ends[i]
        if stack and e > stack[-1]:
            e = stack[-1]
        depth.append(len(stack))
        stack.append(e)
    return depth
