"""File ▸ Open run of a run another process is training: its curves go on live.

A run launched from a terminal (`torchwork run`, torchrun across processes or
nodes) into the window's workspace writes its metrics there as it trains. Opened
in the window, it is followed: each time the workspace changes (SQLite's
``data_version``, app/panels/runs_data.ChangeWatch), the rows after the last one
shown are read and handed to the plots as the same events a run of the window
delivers (MetricsLogged, EpochEnded), and its new hardware samples to the
Hardware dock, until the run is no longer running.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from engine.training.events import EpochEnded, MetricsLogged

from .runs_data import ChangeWatch, database_path

FOLLOW_MS = 500  # how often the workspace is asked whether anything changed (microseconds)


class RunFollower(QObject):
    """Feeds ``plots`` the new rows of workspace run ``run_id`` while it runs elsewhere."""

    ended = Signal(int, str)  # run id, its final status

    def __init__(self, workspace_dir, plots, parent: QObject | None = None):
        super().__init__(parent)
        self.workspace_dir = workspace_dir
        self.plots = plots
        self.hardware = None  # the Hardware dock, once built: the run's samples, extended
        self.run_id: int | None = None
        self._ws = None
        self._watch: ChangeWatch | None = None
        self._timer = QTimer(self, interval=FOLLOW_MS)
        self._timer.timeout.connect(self.poll)

    @property
    def following(self) -> bool:
        return self.run_id is not None

    def follow(self, run_id: int, steps: dict, epochs: dict, hardware: dict | None = None) -> None:
        """Follow ``run_id``, whose ``steps`` and ``epochs`` (as the workspace gave them) the
        plots show already, and its ``hardware`` samples the Hardware dock."""
        from engine.workspace import Workspace

        self.stop()
        self._ws = Workspace(self.workspace_dir)
        self._watch = ChangeWatch(database_path(self.workspace_dir))
        self._watch.changed()  # what is shown is read: only later commits count
        self.run_id = run_id
        self._last_step = int(steps["step"][-1]) if len(steps.get("step", ())) else -1
        self._epochs_shown = {int(e) for s in epochs.values() for e in s.epoch}
        self._wall = float(steps["wall_s"][-1]) if self._last_step >= 0 else math.nan
        self._sampled = _last_time(hardware) if hardware is not None else None
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()
        if self._watch is not None:
            self._watch.close()
        if self._ws is not None:
            self._ws.close()
        self._ws = self._watch = self.run_id = None

    def poll(self) -> None:
        """Show what the run wrote since the last look; stop at its end."""
        if self._watch is None or not self._watch.changed():
            return
        run_id, ws = self.run_id, self._ws
        try:
            status = ws.get_run(run_id).status
            steps = ws.step_metrics(run_id, after_step=self._last_step)
            epochs = ws.epoch_metrics(run_id)
            samples = (ws.hardware_samples(run_id, after=self._sampled)
                       if self.hardware is not None else None)
        except Exception:  # a run deleted, a workspace gone: leave what is shown
            self.stop()
            return
        self._show(steps, epochs)
        if samples is not None:
            self.hardware.extend_history(samples)
            self._sampled = _last_time(samples, self._sampled)
        if status != "running":
            self.stop()
            self.plots.refresh()
            self.ended.emit(run_id, status)

    def _show(self, steps: dict, epochs: dict) -> None:
        n = len(steps.get("step", ()))
        if n:
            cols = {k: np.asarray(steps[k], dtype=float) for k in
                    ("step", "epoch", "loss", "lr", "grad_norm", "samples_per_s", "wall_s")}
            self.plots.on_metrics_batch([
                MetricsLogged(int(cols["step"][i]), int(cols["epoch"][i]), cols["loss"][i],
                              cols["lr"][i], cols["grad_norm"][i], cols["samples_per_s"][i],
                              cols["wall_s"][i]) for i in range(n)])
            self._last_step = int(cols["step"][-1])
            self._wall = float(cols["wall_s"][-1])
        for epoch, step, values in _new_epochs(epochs, self._epochs_shown):
            self.plots.on_epoch(EpochEnded(epoch, step, values.pop("train_loss", math.nan),
                                           values.pop("lr", math.nan),
                                           self._wall, values))
            self._epochs_shown.add(epoch)


def _new_epochs(epochs: dict, shown: set[int]) -> list[tuple[int, int, dict[str, float]]]:
    """(epoch, step, {metric: value}) of each epoch not shown yet, in order."""
    found: dict[int, tuple[int, dict]] = {}
    for name, series in epochs.items():
        for epoch, step, value in zip(series.epoch, series.step, series.value):
            if int(epoch) not in shown:
                found.setdefault(int(epoch), (int(step), {}))[1][name] = float(value)
    return [(e, step, values) for e, (step, values) in sorted(found.items())]


def _last_time(samples: dict, before: float | None = None) -> float | None:
    """The time of the latest of ``samples`` (host or any GPU), else ``before``."""
    times = [float(cols["time"][-1]) for cols in (samples["host"], *samples["gpus"].values())
             if len(cols["time"])]
    return max(times, default=before)
