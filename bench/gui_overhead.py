"""What does the open window cost a run, and does it stay responsive while training?

(a) Throughput: the same run (synthetic data, MLP, the workspace written)
    by `torchwork run` in its own process, and from the window (its own run
    process, every panel live); median of the ratios over rounds. Each round
    also runs the headless command a second time, as a control: its ratio to
    the first shows how far identical runs differ on this machine (the noise
    floor). The three turns rotate their order from round to round.
    Bar: >= 0.95.
    Then, within one long windowed run (--live-idle-s), the window alternates
    between live and idle phases (idle: the bridge drains the queue and hands
    the panels nothing); each live phase's steps/s against the idle phases
    either side, and the window's own CPU in each kind of phase.
(b) Event-loop latency while the window trains at full speed: a 10 ms QTimer's
    lateness, p99 over every tick of further windowed runs (the probe timer is
    not running during the throughput turns). Bar: <= 50 ms.
(c) Redrawing a 1,000,000-point loss curve: see bench/plot_redraw.py, whose
    table this script prints too. Bar: median <= 16 ms.

On a virtual machine the host takes CPU time from the guest ("steal", in
/proc/stat) in bursts that slow one turn and not the others; each round's
steal is printed, and the median is given also over the rounds in which no
turn lost more than --quiet percent of the machine to the host.

    QT_QPA_PLATFORM=offscreen python bench/gui_overhead.py [--rounds 10] [--steps 2000]
        [--live-idle-s 180] [--phase-s 5]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.config import RunConfig  # noqa: E402

# No Qt import at the top of this file: the window's run process is a multiprocessing
# "spawn" child, which imports the parent's main module, here this file. Qt imported
# there put PySide6 into the run process, which the app's does not have (`torchwork`'s
# main module imports no Qt), and measured that instead: in 30 rotating rounds a run
# process carrying Qt trained at 0.984 (median) of one without.

CONFIG = {"data.dataset": "synthetic", "data.n_samples": 60000, "data.n_features": 64,
          "data.n_classes": 4, "data.batch_size": 256, "model.arch": "mlp",
          "model.hidden": [256, 256], "optim.name": "adam", "train.epochs": 1000,
          "train.device": "cpu", "train.checkpoint_every": 0}


def steal_ticks() -> int | None:
    """CPU time the hypervisor took from this machine so far (USER_HZ ticks, all cores)."""
    try:
        with open("/proc/stat") as f:
            return int(f.readline().split()[8])
    except (OSError, IndexError, ValueError):
        return None  # not Linux


def stolen_percent(before: int | None, seconds: float) -> float | None:
    """Percent of the machine's CPU time the host took since ``before``."""
    after = steal_ticks()
    if before is None or after is None or seconds <= 0:
        return None
    ticks_per_s = os.sysconf("SC_CLK_TCK")
    return 100.0 * (after - before) / (ticks_per_s * seconds * (os.cpu_count() or 1))


def median_interval(values: list[float], draws: int = 10000) -> tuple[float, float]:
    """95% bootstrap interval of the median: how far the median itself may be off."""
    rng = random.Random(0)
    medians = sorted(statistics.median(rng.choices(values, k=len(values)))
                     for _ in range(draws))
    return medians[int(0.025 * draws)], medians[int(0.975 * draws) - 1]


def config(steps: int) -> RunConfig:
    cfg = RunConfig()
    for key, value in {**CONFIG, "train.max_steps": steps}.items():
        cfg.set(key, value)
    cfg.validate()
    return cfg


def headless(cfg: RunConfig, workspace: str) -> float:
    """Steps/s of the same run done by `torchwork run` in its own process.

    Its own process, as a user runs it: torch ops on this process's GUI thread
    would leave an OpenMP thread team there that competes with the training
    thread's (measured: a third slower), which the app itself never does.
    """
    path = Path(workspace) / "run.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    cfg.save(path)
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "run", str(path), "--json",
                           "--workspace", workspace], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    return json.loads(proc.stdout.splitlines()[-1])["steps_per_s"]


def windowed(app, window, cfg: RunConfig, probe: bool = False) -> tuple[float, list[float]]:
    """Steps/s of the run started from the window, and with ``probe`` the 10 ms timer's
    lateness (ms). The probe wakes the window 100 times a second, which the app itself
    never does, so the throughput turns run without it."""
    from PySide6.QtCore import QEventLoop, QTimer

    lateness, ended = [], []
    last = [time.perf_counter()]

    def tick():
        now = time.perf_counter()
        lateness.append(max(0.0, (now - last[0]) * 1000 - 10))
        last[0] = now

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(tick)
    window.bridge.runEnded.connect(ended.append)
    window.config_panel.set_config(cfg)
    window.start_run()
    last[0] = time.perf_counter()
    if probe:
        timer.start()
    loop = QEventLoop()
    window.bridge.runEnded.connect(loop.quit)
    loop.exec()  # the real event loop: idle waits release the GIL as in the app
    window.bridge.runEnded.disconnect(loop.quit)
    timer.stop()
    window.bridge.runEnded.disconnect(ended.append)
    window.bridge.wait()
    app.processEvents()
    return ended[0].steps_per_s, lateness


QUIET_EVENTS = frozenset({"metricsLogged", "hardwareSampled", "epochStarted", "epochEnded",
                          "validationEnded", "checkpointSaved"})


def live_and_idle(app, window, cfg: RunConfig, seconds: float, phase_s: float,
                  margin_s: float = 0.3) -> tuple[list[tuple[float, float]], float, float]:
    """(live, idle) steps/s of neighbouring phases of one long run from the window, and
    the window's CPU (percent of one core) in the live and in the idle phases.

    The window alternates every ``phase_s`` between live (every panel updates
    and paints, as in the app) and idle (the bridge still drains the run's
    queue at its pace but hands the panels nothing). One run process and
    neighbouring seconds: what differs between the phases is only what the
    window does with the events, with no difference of start-up, memory layout
    or minutes between the runs compared; the host's second-to-second noise
    remains. Steps per second of a phase come from the run's own (wall_s, step)
    readings, on the run's clock.
    """
    from PySide6.QtCore import QEventLoop, QTimer

    bridge = window.bridge
    idle, readings, switches = [False], [], []
    real_emit = bridge._emit

    def emit(events):
        now = time.perf_counter()
        for name, args in events:
            if name == "metricsLogged":
                readings.append((now, args[0].step, args[0].wall_s))
        if idle[0]:
            events = [(n, a) for n, a in events if n not in QUIET_EVENTS]
        return real_emit(events)

    def switch():
        switches.append((time.perf_counter(), time.process_time()))
        idle[0] = not idle[0]
        if idle[0]:  # a redraw the live phase asked for must not land in the idle one
            window.plots.refresh_timer.stop()

    flips = QTimer()
    flips.setInterval(int(phase_s * 1000))
    flips.timeout.connect(switch)
    bridge._emit = emit
    stop = QTimer()
    stop.setSingleShot(True)
    stop.setInterval(int(seconds * 1000))
    stop.timeout.connect(bridge.stop)
    try:
        window.config_panel.set_config(cfg)
        window.start_run()
        loop = QEventLoop()
        bridge.runStarted.connect(flips.start)
        bridge.runStarted.connect(stop.start)
        bridge.runEnded.connect(loop.quit)
        loop.exec()
        for signal, slot in ((bridge.runStarted, flips.start), (bridge.runStarted, stop.start),
                             (bridge.runEnded, loop.quit)):
            signal.disconnect(slot)
        flips.stop()
        bridge.wait()
        app.processEvents()
    finally:
        del bridge._emit  # back to the class's method
    import numpy as np

    now, steps, wall = (np.array(c, dtype=float) for c in zip(*readings))
    offset = float(np.min(now - wall))  # window clock - run clock, for the least delayed event
    rates, cpu = [], []  # phase k runs from switches[k] to switches[k + 1]; even k are idle
    for (start, cpu_start), (end, cpu_end) in zip(switches, switches[1:]):
        a, b = start - offset + margin_s, end - offset - margin_s
        rates.append(float(np.interp(b, wall, steps) - np.interp(a, wall, steps)) / (b - a))
        cpu.append(100 * (cpu_end - cpu_start) / (end - start))
    pairs = []
    for k in range(1, len(rates) - 1, 2):  # a live phase against the idle ones either side
        pairs.append((rates[k], (rates[k - 1] + rates[k + 1]) / 2))
    return pairs, statistics.mean(cpu[1::2]), statistics.mean(cpu[0::2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--probe-runs", type=int, default=3,
                        help="windowed runs that measure (b), after the rounds")
    parser.add_argument("--live-idle-s", type=float, default=180.0,
                        help="seconds of one long windowed run whose window alternates "
                             "between live and idle (0: skip)")
    parser.add_argument("--phase-s", type=float, default=5.0,
                        help="length of each live and idle phase of that run")
    parser.add_argument("--quiet", type=float, default=2.0,
                        help="a round is quiet when no turn lost more than this percent of "
                             "the machine to the host (steal)")
    args = parser.parse_args()
    if 0 < args.live_idle_s < 4 * args.phase_s:
        parser.error("--live-idle-s must be at least 4 times --phase-s (two idle phases "
                     "around a live one), or 0 to skip that measurement")
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    from app.main_window import MainWindow

    cfg = config(args.steps)
    with tempfile.TemporaryDirectory() as tmp:
        settings = QSettings(str(Path(tmp) / "settings.ini"), QSettings.IniFormat)
        window = MainWindow(cfg, workspace_dir=Path(tmp) / "ws", settings=settings)
        window.resize(1400, 860)
        window.show()
        app.processEvents()
        windowed(app, window, config(100))  # warm-up
        ratios, controls, ours, theirs, lateness, quiet = [], [], [], [], [], []
        for i in range(args.rounds):
            rates, stolen = {}, {}
            turns = ["window", "headless", "control"]
            for turn in turns[i % 3:] + turns[:i % 3]:
                before, started = steal_ticks(), time.perf_counter()
                if turn == "window":
                    rates[turn], _ = windowed(app, window, cfg)
                else:
                    rates[turn] = headless(cfg, str(Path(tmp) / "ws"))
                stolen[turn] = stolen_percent(before, time.perf_counter() - started)
            ours.append(rates["window"])
            theirs.append(rates["headless"])
            ratios.append(rates["window"] / rates["headless"])
            controls.append(rates["control"] / rates["headless"])
            worst = max((v for v in stolen.values() if v is not None), default=None)
            if worst is not None and worst <= args.quiet:
                quiet.append((ratios[-1], controls[-1]))
            steal = "" if worst is None else "; steal " + ", ".join(
                f"{turn} {stolen[turn]:.1f}%" for turn in turns)
            print(f"round {i + 1}: window {rates['window']:.1f}, headless {rates['headless']:.1f}, "
                  f"control {rates['control']:.1f} steps/s; ratio {ratios[-1]:.3f}, "
                  f"control ratio {controls[-1]:.3f}{steal}", flush=True)
        for _ in range(args.probe_runs):  # (b): full-speed runs with the probe timer
            lateness.extend(windowed(app, window, cfg, probe=True)[1])
        phases, window_cpu = [], (0.0, 0.0)
        if args.live_idle_s > 0:
            phases, *window_cpu = live_and_idle(app, window, config(10**9), args.live_idle_s,
                                                args.phase_s)
        window.close()
    p99 = statistics.quantiles(lateness, n=100)[98]
    print()
    print(f"{args.rounds} rounds of {args.steps}-step runs; {len(lateness)} timer ticks")
    print("| measure | value | bar |")
    print("|---|---|---|")
    low, high = median_interval(ratios)
    print(f"| (a) throughput, window / headless (median) | {statistics.median(ratios):.3f} "
          f"(95% interval of the median {low:.3f} - {high:.3f}; window "
          f"{statistics.median(ours):.0f}, headless {statistics.median(theirs):.0f} "
          f"steps/s; rounds {min(ratios):.3f} - {max(ratios):.3f}) | >= 0.95 |")
    print(f"| control: headless / headless (median, the noise floor) | "
          f"{statistics.median(controls):.3f} (rounds {min(controls):.3f} - "
          f"{max(controls):.3f}) | |")
    if quiet:
        print(f"| (a) the same over the {len(quiet)} quiet rounds (no turn lost more than "
              f"{args.quiet:g}% to the host) | {statistics.median(q[0] for q in quiet):.3f} "
              f"(control {statistics.median(q[1] for q in quiet):.3f}) | >= 0.95 |")
    if phases:
        within = [live / idle for live, idle in phases]
        low, high = median_interval(within)
        live_total = statistics.mean(p[0] for p in phases)
        idle_total = statistics.mean(p[1] for p in phases)
        print(f"| (a) within one run: window live / window idle (drains the queue only), "
              f"{len(phases)} live {args.phase_s:g} s phases against the idle ones either "
              f"side | median {statistics.median(within):.3f} (95% interval of the median "
              f"{low:.3f} - {high:.3f}); mean rates {live_total:.0f} / {idle_total:.0f} "
              f"steps/s = {live_total / idle_total:.3f} | >= 0.95 |")
        print(f"| the window's own CPU in those phases, live / idle | {window_cpu[0]:.2f}% / "
              f"{window_cpu[1]:.2f}% of one core | |")
    print(f"| (b) 10 ms timer lateness p99 / median | {p99:.1f} ms / "
          f"{statistics.median(lateness):.1f} ms | p99 <= 50 ms |")
    import numpy as np
    from plot_redraw import bench_plot

    rows = bench_plot(app, 1_000_000, 50, 1200, 400, np.random.default_rng(0))
    for view, _in_view, drawn, _refresh, median, p95 in rows:
        print(f"| (c) redraw of a 1,000,000-point curve, {view} ({drawn} points drawn), "
              f"median / p95 | {median:.1f} ms / {p95:.1f} ms | median <= 16 ms |")


if __name__ == "__main__":
    main()
