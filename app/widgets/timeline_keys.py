"""The timeline's keys and gestures, as data: the key handler (timeline_input.py) runs them,
Help ▸ Keyboard shortcuts lists them, so the help cannot drift from the keys.

A module of its own, without pyqtgraph, so the help needs no plotting import.
"""

from __future__ import annotations

from PySide6.QtCore import Qt

# Key: (label, TimelineInput method it runs).
KEYS = {
    Qt.Key_W: ("Zoom in (around the mouse)", "zoom_in"),
    Qt.Key_S: ("Zoom out", "zoom_out"),
    Qt.Key_A: ("Pan left", "pan_left"),
    Qt.Key_D: ("Pan right", "pan_right"),
    Qt.Key_F: ("Fit the selected slice, range or whole trace", "fit"),
}
# What the mouse and the search box do (the view box and the search box handle them).
GESTURES = (
    ("Wheel", "Zoom time"),
    ("Drag", "Pan time and tracks"),
    ("Shift+Drag", "Select a time range"),
    ("Click", "Pick a slice (its details on the right)"),
    ("Enter / Shift+Enter in Search", "Next / previous match"),
)
