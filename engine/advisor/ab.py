"""The measured A/B of a finding: the current and the changed configuration, trained side
by side, so that nothing is claimed that was not measured.

Both sides are real Trainers built by ``engine.run_builder.build_trainer``, with no
workspace writer attached: a trial is a measurement, not a run, and leaves no row in
the workspace (the workspace is only read, to find runs a config names).

Two ways to alternate, as bench/engine_overhead.py does:

- ``"turns"`` (the default): both Trainers live in this process and take turns of the
  same number of steps, who goes first alternating; each turn is timed around its own
  ``run()`` call, so the machine's drift hits both sides of a pair alike.
- ``"runs"``, for a change that alters how the process feeds the step (loader workers
  and pinned memory: the workers start at each ``run()``, so short turns would charge
  their start-up to every turn): each pair builds a fresh Trainer per side and runs it
  for the warm-up steps (not timed: the workers start, the caches fill) and then the
  measured steps, the order rotating from pair to pair.

Each pair gives a ratio of samples/s (changed / current); the figure is the median ratio
and its spread a bootstrap 95% interval of that median. The rule: a change is
**confirmed** when the interval's lower end is above 1 + MIN_GAIN (a 3% gain): a
bootstrap interval of a handful of pairs is narrower than its nominal 95% (a change that
does nothing came out at 1.07x, interval 1.01-1.11, on a loaded CI machine), and a gain
under 3% is inside this kind of machine's drift and not worth a change of configuration.
Otherwise the result says "no measurable gain".
"""

from __future__ import annotations

import math
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from engine.training import events as ev

# Changes measured as alternating whole short runs (see the module's docstring).
RUNS_KEYS = frozenset({"data.num_workers", "data.pin_memory"})
TURN_SECONDS = 0.5  # a turn lasts about this long on the current side...
MIN_WINDOW, MAX_WINDOW = 3, 200  # ...in this many steps
RUNS_WARMUP, RUNS_WINDOW = 3, 20  # "runs" mode: untimed steps (workers start), timed steps
BOOTSTRAP = 2000
CONFIDENCE = 0.95
MIN_GAIN = 0.03  # the interval's lower end must clear 1 + MIN_GAIN


class ABError(Exception):
    """A change the A/B cannot measure (its message names the key and the cause)."""


@dataclass(frozen=True)
class ABResult:
    changes: dict
    mode: str  # "turns" or "runs"
    pairs: int
    window: int  # measured steps per turn (and side)
    warmup: int  # steps per side left out before the first measured turn
    speedup: float  # median of the pairs' samples/s ratios, changed / current
    low: float  # bootstrap 95% interval of that median
    high: float
    quartiles: tuple[float, float]
    current_steps_per_s: float  # median over turns
    changed_steps_per_s: float
    current_samples_per_s: float
    changed_samples_per_s: float
    ratios: tuple[float, ...] = field(default=())

    @property
    def confirmed(self) -> bool:
        """The rule: the lower end of the interval is above 1 + MIN_GAIN."""
        return self.low > 1.0 + MIN_GAIN

    def summary(self) -> str:
        how = ("alternating turns in one process" if self.mode == "turns"
               else "alternating whole short runs, order rotating")
        spread = f"95% interval {self.low:.2f}-{self.high:.2f}"
        if self.confirmed:
            head = f"measured speed-up {self.speedup:.2f}x ({spread})"
        elif self.high < 1.0:
            head = f"no gain: measured slow-down {self.speedup:.2f}x ({spread})"
        elif self.low > 1.0:
            head = (f"no measurable gain: {self.speedup:.2f}x ({spread}, under the "
                    f"{MIN_GAIN:.0%} a change must surely give)")
        else:
            head = (f"no measurable gain: {self.speedup:.2f}x ({spread}, which does not "
                    f"exclude 1.0)")
        return (f"{head}; {self.current_samples_per_s:.0f} -> "
                f"{self.changed_samples_per_s:.0f} samples/s, {self.current_steps_per_s:.1f} "
                f"-> {self.changed_steps_per_s:.1f} steps/s; {self.pairs} pairs of "
                f"{self.window}-step windows, {how}")

    def as_dict(self) -> dict:
        out = asdict(self)
        out["quartiles"] = list(self.quartiles)
        out["ratios"] = list(self.ratios)
        out["confirmed"] = self.confirmed
        out["summary"] = self.summary()
        return out


def changed_config(cfg, changes: dict):
    """A copy of ``cfg`` with ``changes`` set and validated; ABError names a bad key."""
    from engine.config import ConfigError

    out = cfg.copy()
    try:
        for key, value in changes.items():
            out.set(key, value)
        out.validate()
    except (ConfigError, KeyError, ValueError, TypeError) as exc:
        raise ABError(f"the change {changes} cannot be applied: {exc}") from None
    return out


def trial_config(cfg, steps: int):
    """The configuration a side trains: ``steps`` optimizer steps, however many epochs
    that takes, with no early stop that could end a side before the other."""
    out = cfg.copy()
    out.search = None
    out.set("train.epochs", max(out.train.epochs, steps))
    out.set("train.max_steps", steps)
    out.set("regularization.early_stopping_patience", 0)
    out.validate()
    return out


def mode_for(changes: dict) -> str:
    return "runs" if RUNS_KEYS & set(changes) else "turns"


class _Side:
    """One configuration's Trainer, run a few steps at a time (a turn)."""

    def __init__(self, cfg, workspace, steps: int):
        from engine.run_builder import build_trainer

        self.trainer = build_trainer(trial_config(cfg, steps), workspace)
        self.samples = 0
        self.mark: float | None = None
        self.mark_at = -1
        self.trainer.on(ev.StepEnded, self._step_ended)

    def _step_ended(self, e: ev.StepEnded) -> None:
        self.samples += e.samples
        if e.step == self.mark_at:
            self.mark = time.perf_counter()

    def turn(self, steps: int) -> tuple[float, float]:
        """Train ``steps`` more steps; (steps/s, samples/s) timed around the call."""
        t = self.trainer
        target = t.step + steps
        t.config.train.max_steps = target
        before = self.samples
        start = time.perf_counter()
        result = t.run()
        elapsed = max(time.perf_counter() - start, 1e-9)
        _check(result, target)
        return steps / elapsed, (self.samples - before) / elapsed

    def measured_run(self, warmup: int, steps: int) -> tuple[float, float]:
        """A whole run: ``warmup`` untimed steps, then ``steps`` timed from the end of the
        last warm-up step to the end of the run."""
        t = self.trainer
        self.mark_at, self.mark = warmup, None
        t.config.train.max_steps = warmup + steps
        result = t.run()
        end = time.perf_counter()
        _check(result, warmup + steps)
        if self.mark is None:
            raise ABError("the warm-up step was never reached")
        elapsed = max(end - self.mark, 1e-9)
        per_step = self.samples / t.step
        return steps / elapsed, per_step * steps / elapsed


def _check(result, target: int) -> None:
    if result.status == "failed":
        raise ABError(f"a trial failed at step {result.failed_at}: {result.error}")
    if result.steps < target:
        raise ABError(f"a trial ended at step {result.steps} of {target} ({result.status})")


def measure(cfg, changes: dict, *, pairs: int = 10, window: int | None = None,
            warmup: int = 1, workspace=None, mode: str | None = None,
            on_progress: Callable[[int, int], None] | None = None,
            seed: int = 0) -> ABResult:
    """Measure ``changes`` against ``cfg`` (a RunConfig); see the module's docstring.

    ``window`` (steps per turn) defaults to what makes a turn of the current side last
    about TURN_SECONDS, measured on its warm-up; ``warmup`` turns (or steps, in "runs"
    mode) per side are left out. ``on_progress(done, total)`` is told after each pair.
    Raises ABError (a change that cannot be applied or a side that fails) and
    ConfigError / ModelError as building a run does.
    """
    if pairs < 2:
        raise ABError(f"an A/B needs at least 2 pairs (got {pairs})")
    changed = changed_config(cfg, changes)
    mode = mode or mode_for(changes)
    if mode == "runs":
        window = window or RUNS_WINDOW
        warm = max(warmup, RUNS_WARMUP)
        rows = _measure_runs(cfg, changed, pairs, window, warm, workspace, on_progress)
    else:
        rows, window = _measure_turns(cfg, changed, pairs, window, warmup, workspace,
                                      on_progress)
        warm = warmup * window
    return _result(changes, mode, window, warm, rows, seed)


def _measure_turns(cfg, changed, pairs, window, warmup, workspace, on_progress):
    budget = (warmup + pairs + 1) * (window or MAX_WINDOW) + 2 * MAX_WINDOW
    a, b = _Side(cfg, workspace, budget), _Side(changed, workspace, budget)
    if window is None:  # calibrate on the current side, doubling its turn (also a warm-up)
        a.turn(MIN_WINDOW)  # the first turn pays for lazy set-up: not a rate to go by
        # the fastest of a few turns: one the machine stalled would make the window short
        steps, fastest = MIN_WINDOW, max(a.turn(MIN_WINDOW)[0] for _ in range(3))
        while steps * 2 <= min(fastest * TURN_SECONDS, MAX_WINDOW):
            steps *= 2
            fastest = max(fastest, a.turn(steps)[0])
        window = max(MIN_WINDOW, min(MAX_WINDOW, math.ceil(fastest * TURN_SECONDS)))
        b.turn(window)
    for _ in range(warmup):
        a.turn(window), b.turn(window)
    rows = []
    for i in range(pairs):
        if i % 2:
            ra, rb = a.turn(window), b.turn(window)
        else:
            rb, ra = b.turn(window), a.turn(window)
        rows.append((ra, rb))
        if on_progress is not None:
            on_progress(i + 1, pairs)
    return rows, window


def _measure_runs(cfg, changed, pairs, window, warmup, workspace, on_progress):
    rows = []
    for i in range(pairs):
        order = (cfg, changed) if i % 2 == 0 else (changed, cfg)
        got = {}
        for side in order:
            got[side is changed] = _Side(side, workspace, warmup + window).measured_run(
                warmup, window)
        rows.append((got[False], got[True]))
        if on_progress is not None:
            on_progress(i + 1, pairs)
    return rows


def _result(changes, mode, window, warmup, rows, seed) -> ABResult:
    ratios = [b[1] / a[1] for a, b in rows]
    median = statistics.median(ratios)
    low, high = bootstrap_median(ratios, seed=seed)
    q = statistics.quantiles(ratios, n=4) if len(ratios) >= 2 else [median, median, median]
    return ABResult(
        dict(changes), mode, len(rows), window, warmup, median, low, high, (q[0], q[2]),
        statistics.median(a[0] for a, _ in rows), statistics.median(b[0] for _, b in rows),
        statistics.median(a[1] for a, _ in rows), statistics.median(b[1] for _, b in rows),
        tuple(ratios))


def bootstrap_median(values: list[float], *, seed: int = 0, n: int = BOOTSTRAP,
                     confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The percentile bootstrap interval of the median of ``values`` (seeded: the same
    measurements always give the same interval)."""
    rng = random.Random(seed)
    k = len(values)
    meds = sorted(statistics.median(rng.choices(values, k=k)) for _ in range(n))
    tail = (1 - confidence) / 2
    return meds[int(tail * (n - 1))], meds[int(math.ceil((1 - tail) * (n - 1)))]
