"""docs/screenshot-compression.png: the Compression panel after a sparsity sweep on the digits CNN.

Trains examples/digits-cnn.toml into a throw-away workspace (or uses the
newest trained run of --workspace), runs a structured sweep at 25/50/75% with
fine-tuning and int8 ONNX in the panel's own worker, picks the cheapest point
of the size front and grabs the panel.

    QT_QPA_PLATFORM=offscreen python docs/screenshot_compression.py [--dark]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", help="use the newest trained run of this workspace")
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshot-compression.png"))
    parser.add_argument("--dark", action="store_true")
    parser.add_argument("--epochs", type=int, default=5, help="fine-tuning epochs per ratio")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workspace = args.workspace or tmp
        if not args.workspace:
            from engine.cli import main as torchwork

            with contextlib.redirect_stdout(io.StringIO()):
                torchwork(["run", str(ROOT / "examples" / "digits-cnn.toml"), "--json",
                           "--workspace", workspace])
        grab(workspace, args)


def grab(workspace: str, args) -> None:
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from app import theme
    from app.panels.compression_panel import CompressionPanel
    from engine.compression import pareto_front

    app = QApplication.instance() or QApplication([])
    dark = theme.apply(app, "dark" if args.dark else "light")
    panel = CompressionPanel(workspace)
    panel.apply_theme(dark)
    panel.resize(1400, 720)
    panel.sweep.setText("0.25, 0.5, 0.75")
    panel.epochs.setValue(args.epochs)
    panel.show()
    loop = QEventLoop()
    panel.message.connect(lambda text, kind: (print(f"{kind}: {text}"), loop.quit()))
    panel.run_button.setEnabled(True)
    panel.start()
    panel._job.finished.connect(loop.quit)
    loop.exec()
    rows = panel.chart.rows
    if not rows:
        raise SystemExit("the sweep produced no candidates")
    front = pareto_front([c.size_bytes for c in rows], [c.metric for c in rows])
    panel.pick(rows[front[0]].name)
    QTimer.singleShot(300, loop.quit)
    loop.exec()
    panel.grab().save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
