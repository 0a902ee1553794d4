"""The Torchwork desktop app: a Qt view of engine state that owns no training logic."""

import os

# Qt's raster engine hands every fill of 96 or more spans to a pool of one
# thread per core and waits for them. For plot-sized shapes the hand-off costs
# more than the fill, and while a CPU run fills the cores those threads take
# them from it (measured on 2 cores: hundreds of thread wake-ups a second while
# the window drew a run). Qt reads this when it first needs the pool, at the
# first large fill, so setting it on import (before any window is painted) is
# enough even where a QApplication already exists.
os.environ.setdefault("QT_NO_GUI_THREADPOOL", "1")
