"""Taking entries out of a pyqtgraph legend without leaving half-alive widgets behind.

pyqtgraph's LegendItem.removeItem and clear take an entry's sample and label
out of the legend's layout and scene, and drop them. Their C++ objects live on
until Python's cyclic collector reaches the wrappers, on whatever thread
allocates then. Found with collection moved to a timer: a layout request posted
to such a label reached it after its wrapper was cleared ("'LabelItem' object
has no attribute '_sizeHint'"); on the window's hardware sampler thread the
same collection deletes Qt objects off the GUI thread, a likely cause of a
segfault seen in a plot's paint. Here the widgets are deleted at once, on the
GUI thread, which also discards the events posted to them.
"""

from __future__ import annotations

import shiboken6


def remove_entry(legend, item) -> None:
    """Take ``item``'s entry (if any) out of ``legend`` and delete its widgets now."""
    entries = [(s, label) for s, label in legend.items if s.item is item]
    legend.removeItem(item)
    _delete(entries)


def clear(legend) -> None:
    """Empty ``legend``, deleting every entry's widgets now."""
    entries = list(legend.items)
    legend.clear()
    _delete(entries)


def _delete(entries) -> None:
    for widgets in entries:
        for widget in widgets:
            if shiboken6.isValid(widget):
                shiboken6.delete(widget)
