"""Regenerate the README's screenshots: the window in the middle of a real run.

    QT_QPA_PLATFORM=offscreen python docs/screenshots.py [--theme light|dark]
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

from PySide6.QtCore import QSettings  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--theme", default="light", choices=("light", "dark"))
    parser.add_argument("--epoch", type=int, default=12, help="grab after this epoch")
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshot-training.png"))
    args = parser.parse_args()
    app = QApplication.instance() or QApplication([])
    app.setApplicationDisplayName("Torchwork")
    from app.main_window import MainWindow
    from engine.config import RunConfig

    cfg = RunConfig.load(ROOT / "examples" / "digits-cnn.toml")
    cfg.set("train.epochs", 40)
    with tempfile.TemporaryDirectory() as tmp:
        settings = QSettings(str(Path(tmp) / "s.ini"), QSettings.IniFormat)
        window = MainWindow(cfg, workspace_dir=Path(tmp) / "ws", settings=settings)
        window.set_theme(args.theme)
        window.resize(1500, 900)
        window.show()
        epochs = []
        window.bridge.epochEnded.connect(epochs.append)
        window.start_run()
        while len(epochs) < args.epoch:
            app.processEvents()
            time.sleep(0.005)
        window.plots.refresh()  # what the paced redraws show within a second or two
        for _ in range(20):
            app.processEvents()
            time.sleep(0.01)
        window.grab().save(args.out)
        window.bridge.stop()
        window.bridge.wait()
        window.close()
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
