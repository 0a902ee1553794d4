"""When a panel of live plots redraws next: a multiple of what its last redraw cost,
paints included (the budget comes from app.pacing), and only while it can be seen."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from PySide6.QtCore import QTimer

from .live_plot import LivePlot


def take_paint_ms(plots: Iterable[LivePlot]) -> float:
    """The time ``plots`` spent painting since last asked (and start counting again)."""
    total = 0.0
    for plot in plots:
        total += plot.paint_ms
        plot.paint_ms = 0.0
    return total


class RedrawPacing:
    """How long a panel's single-shot redraw ``timer`` waits: ``wait_ms`` of what the
    last redraw cost, the paints that follow it included (app.pacing).

    The paints of a redraw come after the tick that asked for them; counted
    only at the next tick, a run's first, cheap-looking ticks would follow each
    other closely. So each paint lengthens the wait at once, unless the timer
    already runs (the mouse over a plot, new data): then it counts at the tick.
    """

    def __init__(self, timer: QTimer, wait_ms: Callable[[float], int]):
        self._timer, self._wait_ms = timer, wait_ms
        self._plots: list[LivePlot] = []
        self._frame_ms = 0.0

    def watch(self, plot: LivePlot) -> None:
        self._plots.append(plot)
        plot.painted.connect(self._painted)

    def redrew(self, spent_ms: float) -> None:
        """A tick handed its plots new data in ``spent_ms``: wait for that, and what
        the plots painted since the last tick."""
        self._frame_ms = spent_ms + take_paint_ms(self._plots)
        self._timer.setInterval(self._wait_ms(self._frame_ms))

    def _painted(self) -> None:
        if self._timer.isActive():
            return
        self._frame_ms += take_paint_ms(self._plots)
        self._timer.setInterval(self._wait_ms(self._frame_ms))


def on_screen(widget) -> bool:
    """Whether any of ``widget`` can be seen. A dock behind another dock's tab still
    reports isVisible(); its visible region is empty, so its plots need not redraw."""
    return widget.isVisible() and not widget.visibleRegion().isEmpty()
