"""Place point labels on a chart so that none covers another, a point or the plot's edge.

Greedy, in screen pixels: each label in turn takes the first of four places
beside its point (right, left, above, below: a diagonal place reads as the
label of the next point when points crowd) that is inside the plot and clear
of the points, of the given line and of the labels placed before it; a label
with no such place is left out (its point stays, and the table beside the
chart names it). Pixels, not data coordinates: a label's size is fixed on
screen while the data scale changes with every resize and zoom, so the chart
lays its labels out again whenever its view changes.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, QSizeF

GAP = 3.0  # pixels between a label and the marker of its point


def place_labels(points: list[QPointF], sizes: list[QSizeF], bounds: QRectF,
                 markers: list[QPointF], radius: float,
                 line: list[QPointF] = ()) -> list[QRectF | None]:
    """For each point (in order of importance), the rectangle its label takes, or None.

    ``markers``: the centres of every drawn point, each a marker of ``radius`` pixels that
    no label may cover; ``line``: the vertices of a polyline of horizontal and vertical
    steps (a Pareto staircase) labels keep off too; ``bounds``: the plot area the labels
    must stay inside.
    """
    taken = [QRectF(m.x() - radius, m.y() - radius, 2 * radius, 2 * radius) for m in markers]
    taken += [QRectF(a, b).normalized().adjusted(-1, -1, 1, 1)
              for a, b in zip(line, line[1:])]
    placed: list[QRectF | None] = []
    for point, size in zip(points, sizes, strict=True):
        spot = next((r for r in _candidates(point, size, radius + GAP)
                     if bounds.contains(r) and not any(r.intersects(t) for t in taken)), None)
        placed.append(spot)
        if spot is not None:
            taken.append(spot)
    return placed


def _candidates(point: QPointF, size: QSizeF, d: float) -> list[QRectF]:
    """Rectangles of ``size`` around ``point``, each ``d`` pixels clear of it."""
    w, h = size.width(), size.height()
    x, y = point.x(), point.y()
    corners = [(x + d, y - h / 2), (x - d - w, y - h / 2),  # right, left
               (x - w / 2, y - d - h), (x - w / 2, y + d)]  # above, below
    return [QRectF(left, top, w, h) for left, top in corners]
