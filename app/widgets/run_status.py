"""Status-bar progress of the epoch and of the run, each with its ETA."""

from __future__ import annotations

import textwrap
import time

from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QWidget

from app.pacing import NORMAL, pace_for
from engine.monitor.energy import energy_text


def _eta(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _short(error: str) -> str:
    """A run's error on one line that fits beside the bars; the tooltip holds it in full."""
    lines = error.strip().splitlines()
    return textwrap.shorten(lines[0] if lines else "", 90, placeholder=" …")


class RunStatus(QWidget):
    """Epoch and run progress bars fed by the bridge's events; the rate is measured here."""

    def __init__(self, parent=None):
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(8)
        self.state = QLabel("Ready")
        self.epoch_bar, self.run_bar = QProgressBar(), QProgressBar()
        for bar, width in ((self.epoch_bar, 170), (self.run_bar, 220)):
            bar.setFixedWidth(width)
            bar.setTextVisible(True)
            bar.setFormat("")
            # Hidden between runs but keeping their place: a status bar that grew
            # when a run started would shrink every plot above it, and each would
            # repaint in full just as the run begins.
            policy = bar.sizePolicy()
            policy.setRetainSizeWhenHidden(True)
            bar.setSizePolicy(policy)
        layout.addWidget(self.state)
        layout.addWidget(self.epoch_bar)
        layout.addWidget(self.run_bar)
        self.reset()

    def reset(self) -> None:
        self.steps_per_epoch = self.total = self.start_step = 0
        self.epochs = 0
        self._t0 = None
        self._shown_at = 0.0
        self._every_s = NORMAL.status_s
        self._outcome = None
        self._energy = None  # the run's final EnergyMeasured
        self.state.setToolTip("")
        for bar in (self.epoch_bar, self.run_bar):
            bar.setRange(0, 1)
            bar.setValue(0)
            bar.setFormat("")
            bar.hide()

    def set_state(self, text: str, *, idle: bool = False) -> None:
        """``idle`` keeps the ended run's outcome: the bridge goes idle right after runEnded,
        and "Ready" would hide how the run ended."""
        if idle and self._outcome:
            return
        self._outcome = None
        self.state.setToolTip("")
        self.state.setText(text)

    def on_energy(self, e) -> None:
        if e.final:
            self._energy = e

    def on_run_started(self, e) -> None:
        self._energy = None
        self.steps_per_epoch, self.total = max(1, e.steps_per_epoch), max(1, e.total_steps)
        self.start_step, self.epochs = e.start_step, e.epochs
        self._t0 = time.monotonic()
        self._every_s = pace_for(e.device).status_s
        self.epoch_bar.setRange(0, self.steps_per_epoch)
        self.run_bar.setRange(0, self.total)
        for bar in (self.epoch_bar, self.run_bar):
            bar.show()
        self.on_step(e.start_step, e.start_epoch)

    def on_metrics_batch(self, events) -> None:
        self.on_metrics(events[-1])

    def on_metrics(self, e) -> None:
        # A few updates a second are plenty for a progress bar, and each repaint
        # takes CPU from the training run on a small machine (app.pacing).
        now = time.monotonic()
        if now - self._shown_at >= self._every_s:
            self._shown_at = now
            self.on_step(e.step, e.epoch)

    def on_step(self, step: int, epoch: int) -> None:
        if not self.total:
            return
        in_epoch = step - (epoch - 1) * self.steps_per_epoch
        in_epoch = min(max(in_epoch, 0), self.steps_per_epoch)
        rate = self._rate(step)
        self.epoch_bar.setValue(in_epoch)
        left = (self.steps_per_epoch - in_epoch) / rate if rate else None
        self.epoch_bar.setFormat(f"epoch {epoch}/{self.epochs}  "
                                 + (f"ETA {_eta(left)}" if left is not None else "%p%"))
        self.run_bar.setValue(min(step, self.total))
        left = (self.total - step) / rate if rate else None
        self.run_bar.setFormat(f"step {step}/{self.total}  "
                               + (f"ETA {_eta(left)}" if left is not None else "%p%"))

    def on_run_ended(self, e) -> None:
        """The run's last word, shown whatever the throttle let through: the last progress
        update may be steps behind (a completed run would read "step 440/460 ETA 0:02")."""
        completed = e.status == "completed"
        # A failed run ends at the step its error names (a NaN is found at the next
        # logging, steps after the step whose loss it was): the engine says which.
        step = e.failed_at if e.status == "failed" and e.failed_at is not None else e.steps
        where = f"step {step}"
        if self.total:
            # The epoch the run was in; a completed run reports the epochs it finished.
            epoch = (e.epochs_completed if completed
                     else min(max(1, -(-step // self.steps_per_epoch)), self.epochs))
            done = min(step, self.total)
            self.run_bar.setValue(done)
            self.run_bar.setFormat(f"step {step}/{self.total}")
            self.epoch_bar.setValue(self.steps_per_epoch if completed
                                    else done - (epoch - 1) * self.steps_per_epoch)
            self.epoch_bar.setFormat(f"epoch {epoch}/{self.epochs}")
            where = (f"step {e.steps}/{self.total}, epoch {epoch}/{self.epochs}" if completed
                     else f"{where} (epoch {epoch})")
        if completed:
            text = f"Completed: {where} in {e.wall_s:.1f} s"
            if e.best_val is not None:
                text += f", best {e.best_metric} {e.best_val:.4g}"
        else:
            text = f"{e.status.capitalize()} at {where}"
            if e.error:
                text += f": {_short(e.error)}"
            if e.checkpoint and e.status == "stopped":
                text += "; Run ▸ Resume from checkpoint continues it"
        energy = self._energy
        if energy is not None and energy.joules is not None:
            text += f"; {energy.joules:.4g} J"
        self.state.setText(text)
        tips = [e.error or "", energy_text(energy) if energy is not None else ""]
        self.state.setToolTip("\n".join(t for t in tips if t))
        self._outcome = text

    def _rate(self, step: int) -> float:
        if self._t0 is None:
            return 0.0
        elapsed = time.monotonic() - self._t0
        done = step - self.start_step
        return done / elapsed if elapsed > 0.5 and done > 0 else 0.0
