"""The sparsity sweep's Pareto front: the candidates no other beats on both cost and metric."""

from __future__ import annotations

from collections.abc import Sequence


def pareto_front(costs: Sequence[float], values: Sequence[float]) -> list[int]:
    """Indices of the points that no other point dominates, cheapest first.

    A point is dominated when another costs no more, scores no less, and is
    strictly better in one of the two (cost: size or latency, lower is better;
    value: the validation metric, higher is better). Exact ties all stay.
    """
    if len(costs) != len(values):
        raise ValueError(f"{len(costs)} costs but {len(values)} values")
    front = []
    for i, (c, v) in enumerate(zip(costs, values)):
        dominated = any(c2 <= c and v2 >= v and (c2 < c or v2 > v)
                        for j, (c2, v2) in enumerate(zip(costs, values)) if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (costs[i], -values[i]))
