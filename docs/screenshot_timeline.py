"""Regenerate docs/screenshot-timeline.png: the timeline on a real torch.profiler CPU trace.

A few steps of the digits CNN example are recorded under torch.profiler (shapes
recorded), the trace is opened in a TimelineView, one step is shown with a
convolution found by search and selected, and a range across the step is summed.

    QT_QPA_PLATFORM=offscreen python docs/screenshot_timeline.py [--theme light|dark]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PySide6.QtWidgets import QApplication  # noqa: E402


def record(folder: Path) -> Path:
    from torch.profiler import ProfilerActivity, profile, schedule, tensorboard_trace_handler

    from engine.config import RunConfig
    from engine.training import events as ev
    from engine.training.trainer import Trainer

    cfg = RunConfig.load(ROOT / "examples" / "digits-cnn.toml")
    cfg.set("train.epochs", 1)
    trainer = Trainer(cfg)
    prof = profile(activities=[ProfilerActivity.CPU], record_shapes=True,
                   schedule=schedule(wait=2, warmup=1, active=3, repeat=1),
                   on_trace_ready=tensorboard_trace_handler(str(folder), worker_name="digits"))
    prof.start()
    trainer.on(ev.StepEnded, lambda event: prof.step())
    trainer.run()
    prof.stop()
    return next(folder.glob("*.pt.trace.json"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--theme", default="light", choices=("light", "dark"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshot-timeline.png"))
    args = parser.parse_args()
    app = QApplication.instance() or QApplication([])
    from app import theme
    from app.widgets.timeline_view import TimelineView
    from engine.profiling.timeline import load_trace

    dark = theme.apply(app, args.theme)
    with tempfile.TemporaryDirectory() as tmp:
        index = load_trace(record(Path(tmp)))
    view = TimelineView()
    view.apply_theme(dark)
    view.resize(1500, 500)
    view.show()
    view.set_trace(index)
    step = int(index.search("ProfilerStep#")[1])
    start, end = float(index.start_us[step]), float(index.end_us[step])
    length = end - start
    view.search("aten::conv2d")
    while view.index.start_us[view.selected if view.selected is not None else 0] < start:
        view.next_hit()
    view.set_window(start - 0.02 * length, end + 0.02 * length)
    view.select_range(start + 0.02 * length, start + 0.45 * length)
    for _ in range(5):
        app.processEvents()
    view.grab().save(args.out)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
