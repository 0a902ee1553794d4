"""What does the hardware sampler cost? CPU of its thread, and training throughput.

(1) The sampler runs at 10 Hz for ``--seconds`` on each path: psutil only (the
real pynvml on a machine without an NVIDIA driver), psutil plus an NVML
stand-in answering like pynvml for 1 and for 8 GPUs, and the last again while
a HardwareRecorder stores every sample in a workspace. Its thread's CPU time
(its own CPU clock, user + system) over the wall time is its cost in % of
one core. The stand-in is Python; real NVML calls are C and
cheaper per call, so the stand-in rows are an upper bound for the Python side.

(2) A Trainer (the MLP of bench/engine_overhead.py) trains in rounds of three
turns of about ``--turn`` seconds: with the sampler at 10 Hz (psutil + the
1-GPU stand-in), without, and without again as a control, in an order that
rotates. Each round gives a ratio of steps/s (with / without) and the median
ratio is the figure; the control's ratio (control / without) shows how far
apart two identical turns land on this machine at this time, so the figure
means something only where the control's median is near 1.

    python bench/monitor_overhead.py [--seconds 10] [--rounds 30] [--turn 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.engine_overhead import TrainerTurns, config  # noqa: E402
from engine.monitor import Sampler  # noqa: E402
from engine.monitor.recorder import HardwareRecorder  # noqa: E402
from engine.monitor.standin import StandInNvml  # noqa: E402
from engine.workspace import Workspace  # noqa: E402

HZ_10 = 0.1


def sampler_cost(seconds: float, nvml, workspace: Workspace | None = None) -> tuple[float, int]:
    """(% of one core used by the sampler thread, samples taken) over ``seconds`` at 10 Hz.

    The listener runs on the sampler's thread, so it reads that thread's own CPU
    clock (nanoseconds, unlike psutil's 10 ms ticks) at every sample: from the
    first sample to the last, everything the thread did is counted.
    """
    marks: list[tuple[float, float]] = []

    def mark(_sample) -> None:
        marks.append((time.perf_counter(), time.thread_time()))

    if workspace is None:
        sampler = Sampler(HZ_10, nvml=nvml, on_sample=mark)
    else:
        run = workspace.create_run(config())
        recorder = HardwareRecorder(workspace, run.id, HZ_10, nvml=nvml, on_sample=mark)
        sampler = recorder.sampler
    sampler.start()
    time.sleep(seconds)
    sampler.stop()
    (wall0, cpu0), (wall1, cpu1) = marks[0], marks[-1]
    return 100.0 * (cpu1 - cpu0) / (wall1 - wall0), len(marks)


def throughput_rounds(rounds: int, turn_s: float) -> list[dict[str, float]]:
    """Steps/s of three turns a round: "with" the sampler, "without", and "control"
    (without as well), in an order that rotates, so all three see the same moment."""
    cfg = config()
    # Long epochs and a small validation split: an epoch end (validation) falls in a
    # few turns only, and costs little there; the median of the rounds sees past it.
    cfg.data.n_samples, cfg.data.val_fraction = 400_000, 0.01
    turns = TrainerTurns(cfg)
    calibration, _ = turns.run(50)
    steps = max(10, int(calibration * turn_s) // 10 * 10)
    kinds = ("with", "without", "control")
    results = []
    while len(results) < rounds:
        shift = len(results) % 3
        got = {}
        for kind in kinds[shift:] + kinds[:shift]:
            sampler = Sampler(HZ_10, nvml=StandInNvml()) if kind == "with" else None
            if sampler is not None:
                sampler.sample()  # backends made before the timed turn, as in a real run
                sampler.start()
            got[kind], _epoch_end = turns.run(steps)
            if sampler is not None:
                sampler.stop()
        results.append(got)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="sampling time per CPU-cost row")
    parser.add_argument("--rounds", type=int, default=30,
                        help="throughput rounds (with, without, control)")
    parser.add_argument("--turn", type=float, default=1.0, help="seconds per training turn")
    args = parser.parse_args()

    rows = []
    for label, nvml in (("psutil only (real pynvml: no NVML library here)", None),
                        ("psutil + NVML stand-in, 1 GPU", StandInNvml(count=1)),
                        ("psutil + NVML stand-in, 8 GPUs", StandInNvml(count=8))):
        rows.append((label, *sampler_cost(args.seconds, nvml)))
    with tempfile.TemporaryDirectory() as folder, Workspace(folder) as ws:
        rows.append(("psutil + stand-in 1 GPU, stored in a workspace (HardwareRecorder)",
                     *sampler_cost(args.seconds, StandInNvml(count=1), ws)))
    rounds = throughput_rounds(args.rounds, args.turn)
    for i, r in enumerate(rounds, 1):
        print(f"round {i:2d}: with sampler {r['with']:7.1f} steps/s  without "
              f"{r['without']:7.1f}  control {r['control']:7.1f}  ratio "
              f"{r['with'] / r['without']:.3f}  control ratio {r['control'] / r['without']:.3f}")
    print()
    print(f"{psutil.cpu_count()} logical CPUs, load average "
          f"{', '.join(f'{x:.2f}' for x in psutil.getloadavg())}")
    print("| sampling at 10 Hz | samples | sampler thread CPU, % of one core | bar < 1% |")
    print("|---|---|---|---|")
    for label, percent, count in rows:
        print(f"| {label} | {count} | {percent:.2f} | {'met' if percent < 1 else 'NOT met'} |")
    print()
    print(f"| training throughput, {len(rounds)} rounds of ~{args.turn:g} s turns | median "
          f"steps/s | median ratio to 'without' (range) |")
    print("|---|---|---|")
    for kind in ("without", "with", "control"):
        rates = [r[kind] for r in rounds]
        ratios = [r[kind] / r["without"] for r in rounds]
        label = {"without": "without the sampler", "with": "with the sampler at 10 Hz",
                 "control": "control: without again (the noise floor)"}[kind]
        figure = "1" if kind == "without" else (
            f"{statistics.median(ratios):.3f} ({min(ratios):.3f} - {max(ratios):.3f})")
        print(f"| {label} | {statistics.median(rates):.1f} | {figure} |")
    print()
    print("bar: with / without >= 0.99; readable only where the control is within 0.99 - 1.01")

if __name__ == "__main__":
    main()
