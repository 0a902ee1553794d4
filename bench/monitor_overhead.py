"""What does the hardware sampler cost? CPU of its thread, and training throughput.

(1) The sampler runs at 10 Hz for ``--seconds`` on each path: psutil only (the
real pynvml on a machine without an NVIDIA driver), psutil plus an NVML
stand-in answering like pynvml for 1 and for 8 GPUs, and the last again while
a HardwareRecorder stores every sample in a workspace. Its thread's CPU time
(its own CPU clock, user + system) over the wall time is its cost in % of
one core. The stand-in is Python; real NVML calls are C and
cheaper per call, so the stand-in rows are an upper bound for the Python side.

(2) A Trainer (the MLP of bench/engine_overhead.py) trains in turns of about
``--turn`` seconds, alternately with the sampler at 10 Hz (psutil + the 1-GPU
stand-in) and without, who goes first alternating; each pair gives a ratio of
steps/s (with / without) and the median ratio is the figure.

    python bench/monitor_overhead.py [--seconds 10] [--pairs 10] [--turn 3]
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


def throughput_pairs(pairs: int, turn_s: float) -> list[tuple[float, float]]:
    """(steps/s with the sampler, steps/s without) of alternating turns."""
    turns = TrainerTurns(config())
    calibration, _ = turns.run(50)
    steps = max(10, int(calibration * turn_s) // 10 * 10)
    results = []
    while len(results) < pairs:
        order = (True, False) if len(results) % 2 == 0 else (False, True)
        got = {}
        for with_sampler in order:
            sampler = Sampler(HZ_10, nvml=StandInNvml()) if with_sampler else None
            if sampler is not None:
                sampler.sample()  # backends made before the timed turn, as in a real run
                sampler.start()
            rate, epoch_end = turns.run(steps)
            if sampler is not None:
                sampler.stop()
            got[with_sampler] = (rate, epoch_end)
        if got[True][1] or got[False][1]:  # validation in one turn only: not comparable
            continue
        results.append((got[True][0], got[False][0]))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="sampling time per CPU-cost row")
    parser.add_argument("--pairs", type=int, default=10, help="throughput pairs")
    parser.add_argument("--turn", type=float, default=3.0, help="seconds per training turn")
    args = parser.parse_args()

    rows = []
    for label, nvml in (("psutil only (real pynvml: no NVML library here)", None),
                        ("psutil + NVML stand-in, 1 GPU", StandInNvml(count=1)),
                        ("psutil + NVML stand-in, 8 GPUs", StandInNvml(count=8))):
        rows.append((label, *sampler_cost(args.seconds, nvml)))
    with tempfile.TemporaryDirectory() as folder, Workspace(folder) as ws:
        rows.append(("psutil + stand-in 1 GPU, stored in a workspace (HardwareRecorder)",
                     *sampler_cost(args.seconds, StandInNvml(count=1), ws)))
    pairs = throughput_pairs(args.pairs, args.turn)
    ratios = [a / b for a, b in pairs]
    for i, (a, b) in enumerate(pairs, 1):
        print(f"pair {i:2d}: with sampler {a:7.1f} steps/s  without {b:7.1f} steps/s  "
              f"ratio {a / b:.3f}")
    print()
    print(f"{psutil.cpu_count()} logical CPUs, load average "
          f"{', '.join(f'{x:.2f}' for x in psutil.getloadavg())}")
    print("| sampling at 10 Hz | samples | sampler thread CPU, % of one core | bar < 1% |")
    print("|---|---|---|---|")
    for label, percent, count in rows:
        print(f"| {label} | {count} | {percent:.2f} | {'met' if percent < 1 else 'NOT met'} |")
    print()
    print("| training throughput | with sampler | without | with / without |")
    print("|---|---|---|---|")
    median = statistics.median(ratios)
    spread = (f" ({min(ratios):.3f} - {max(ratios):.3f})" if len(ratios) > 1 else "")
    print(f"| median steps/s, {len(pairs)} pairs of ~{args.turn:g} s turns | "
          f"{statistics.median(a for a, _ in pairs):.1f} | "
          f"{statistics.median(b for _, b in pairs):.1f} | {median:.3f}{spread} "
          f"(bar >= 0.99: {'met' if median >= 0.99 else 'NOT met'}) |")


if __name__ == "__main__":
    main()
