"""Regenerate docs/screenshot-profiler-overview.png: the Profiler dock on a real CPU trace.

    QT_QPA_PLATFORM=offscreen python docs/screenshot_profiler.py [--theme light|dark]

Records a capture of the digits CNN example with `torchwork profile` (shapes
and memory on), shows it in the Profiler panel, and stacks two grabs: the
Overview tab above the Operators tab.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PySide6.QtGui import QPainter, QPixmap  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--theme", default="light", choices=("light", "dark"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshot-profiler-overview.png"))
    args = parser.parse_args()
    app = QApplication.instance() or QApplication([])
    from app import theme
    from app.panels.profiler_panel import ProfilerPanel
    from engine.cli import main as torchwork

    dark = theme.apply(app, args.theme)
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "ws"
        code = torchwork(["profile", str(ROOT / "examples" / "digits-cnn.toml"), "--steps", "5",
                          "--record-shapes", "--profile-memory", "--workspace", str(ws)])
        if code != 0:
            sys.exit(f"torchwork profile failed with exit code {code}")
        run = next((ws / "runs").iterdir())
        panel = ProfilerPanel()
        panel.apply_theme(dark)
        panel.resize(1200, 520)
        panel.show()
        panel.set_run(run)
        deadline = time.monotonic() + 120
        while panel.report is None and time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.01)
        if panel.report is None:
            sys.exit(f"the trace was not shown: {panel.messages.message()}")
        grabs = []
        for tab in (panel.overview_tab, panel.operators_tab):
            panel.tabs.setCurrentIndex(tab)
            for _ in range(10):
                app.processEvents()
                time.sleep(0.01)
            grabs.append(panel.grab())
        out = QPixmap(grabs[0].width(), sum(g.height() for g in grabs))
        painter = QPainter(out)
        y = 0
        for grab in grabs:
            painter.drawPixmap(0, y, grab)
            y += grab.height()
        painter.end()
        out.save(args.out)
        panel.close()
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
