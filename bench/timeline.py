"""Is the native timeline fluid on a million slices, and how fast does it read real traces?

1. A synthetic trace shaped like torch.profiler's (``--events`` complete slices,
   nested four deep on ``--threads`` CPU threads, plus a CUDA stream) is written
   to a temporary file and opened with ``load_trace``: parse + index, timed.
   Bar: <= 10 s for 1,000,000 slices.
2. A TimelineView of a window's size shows it offscreen. At full zoom-out, at a
   mid zoom (1% of the trace) and at a deep zoom (50 µs), the view is panned and
   zoomed a step per frame and its plot rendered synchronously with ``grab()``,
   so a frame's time is the view change plus the level-of-detail query plus the
   painting. Bar: median <= 33 ms (30 frames a second).
3. A real CPU training trace (the tiny moons MLP of the tests, 20 steps under
   torch.profiler with shapes, memory and stacks) is parsed by ``load_trace``
   and by torch-tb-profiler's ``RunProfileData.parse`` (which also analyses).

    python bench/timeline.py [--events 1000000] [--frames 40]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PySide6.QtWidgets import QApplication  # noqa: E402

from app.widgets.timeline_view import TimelineView  # noqa: E402
from engine.profiling.synthetic import write_synthetic_trace  # noqa: E402
from engine.profiling.timeline import load_trace  # noqa: E402

OPEN_BAR_S = 10.0
FRAME_BAR_MS = 33.0


def time_frames(app, view: TimelineView, t0: float, t1: float, frames: int,
                warmup: int = 3) -> tuple[float, float, float, int]:
    """Median and p95 frame time, median CPU time (ms) panning and zooming around [t0, t1];
    the bars last drawn. CPU time tells the cost apart from waiting for a busy machine."""
    view.set_window(t0, t1)
    app.processEvents()
    width = t1 - t0
    moves = [(0.05, 1.0), (0.05, 1.0), (0.0, 0.9), (-0.05, 1.0), (-0.05, 1.0), (0.0, 1 / 0.9)]
    times, cpu = [], []
    for k in range(warmup + frames):
        shift, scale = moves[k % len(moves)]
        a, b = view.window()
        centre, half = (a + b) / 2 + shift * width, (b - a) / 2 * scale
        started, cpu_started = time.perf_counter(), time.process_time()
        view.set_window(centre - half, centre + half)
        view.plot.grab()
        if k >= warmup:
            times.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - cpu_started) * 1000)
    times.sort()
    return (statistics.median(times), times[round(0.95 * (len(times) - 1))],
            statistics.median(cpu), view.slices.bars_drawn)


def record_real_trace(folder: Path) -> Path:
    """A few steps of a tiny CPU training run under torch.profiler, in TensorBoard's layout."""
    from torch.profiler import ProfilerActivity, profile, schedule, tensorboard_trace_handler

    from engine.training import events as ev
    from engine.training.trainer import Trainer
    from tests.conftest import tiny

    trainer = Trainer(tiny(**{"train.epochs": 4}))
    prof = profile(activities=[ProfilerActivity.CPU], record_shapes=True, profile_memory=True,
                   with_stack=True, schedule=schedule(wait=1, warmup=1, active=20, repeat=1),
                   on_trace_ready=tensorboard_trace_handler(str(folder), worker_name="bench"))
    prof.start()
    trainer.on(ev.StepEnded, lambda event: prof.step())
    trainer.run()
    prof.stop()
    return next(folder.glob("*.pt.trace.json"))


def tb_profiler_parse_s(path: Path, cache: Path) -> float:
    from torch_tb_profiler.profiler.data import RunProfileData

    started = time.perf_counter()
    RunProfileData.parse("bench", "1", str(path), str(cache))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--frames", type=int, default=40)
    args = parser.parse_args()
    app = QApplication.instance() or QApplication([])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        path = write_synthetic_trace(tmp / "synthetic.pt.trace.json", args.events,
                                     threads=args.threads, gpu=True)
        written = time.perf_counter() - started
        size_mb = path.stat().st_size / 1e6
        started, cpu = time.perf_counter(), time.process_time()
        index = load_trace(path)
        opened, cpu = time.perf_counter() - started, time.process_time() - cpu
        rows.append((f"open (parse + index) {len(index):,} slices, {size_mb:.0f} MB, "
                     f"{len(index.rows)} rows: wall (CPU time)", f"{opened:.2f} s ({cpu:.2f} s)",
                     f"<= {OPEN_BAR_S:.0f} s",
                     "yes" if opened <= OPEN_BAR_S else "**no**"))
        path.unlink()

        view = TimelineView()
        view.resize(1400, 800)
        view.show()
        view.set_trace(index)
        app.processEvents()
        span = index.span_us
        mid = span / 2
        for label, t0, t1 in (("full zoom-out", 0.0, span),
                              ("mid zoom (1% of the trace)", mid - span / 200, mid + span / 200),
                              ("deep zoom (50 µs)", mid - 25, mid + 25)):
            median, p95, cpu, bars = time_frames(app, view, t0, t1, args.frames)
            rows.append((f"frame, pan + zoom, {label}: median (p95), CPU median; bars",
                         f"{median:.1f} ms ({p95:.1f} ms), {cpu:.1f} ms; {bars:,}",
                         f"<= {FRAME_BAR_MS:.0f} ms",
                         "yes" if median <= FRAME_BAR_MS else "**no**"))

        real = record_real_trace(tmp / "real")
        started = time.perf_counter()
        real_index = load_trace(real)
        ours = time.perf_counter() - started
        theirs = tb_profiler_parse_s(real, tmp)
        rows.append((f"real CPU training trace ({len(real_index):,} slices, "
                     f"{real.stat().st_size / 1e6:.1f} MB): load_trace / torch-tb-profiler "
                     "RunProfileData.parse", f"{ours * 1000:.0f} ms / {theirs * 1000:.0f} ms",
                     "recorded", "-"))
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"synthetic trace written in {written:.1f} s (not part of the bar); "
          f"load average at the end {load} on {os.cpu_count()} cores\n")
    print("| measure | value | bar | met |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
