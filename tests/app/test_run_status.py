"""The status bar's last word on a run: the final step, epoch and outcome, not the last
throttled progress update."""

import pytest
from PySide6.QtCore import QSettings

from app.bridge import IDLE, RUNNING
from app.main_window import MainWindow
from app.widgets import run_status
from app.widgets.run_status import RunStatus
from engine.training import Trainer
from engine.training import events as ev

STARTED = ev.RunStarted(run_id="1", num_params=10, device="cpu", task="classification",
                        epochs=10, steps_per_epoch=46, total_steps=460, start_step=0,
                        start_epoch=1, metric_names=("val_loss",))


@pytest.fixture
def status(qtbot, monkeypatch):
    # The clock stands still: every progress update after the first is throttled away.
    monkeypatch.setattr(run_status.time, "monotonic", lambda: 100.0)
    widget = RunStatus()
    qtbot.addWidget(widget)
    widget.on_run_started(STARTED)
    return widget


def metrics(step: int, epoch: int) -> ev.MetricsLogged:
    return ev.MetricsLogged(step=step, epoch=epoch, loss=0.5, lr=0.01, grad_norm=1.0,
                            samples_per_s=1000.0, wall_s=1.0)


def ended(status: str, steps: int, epochs: int, error: str | None = None,
          checkpoint: str | None = None) -> ev.RunEnded:
    return ev.RunEnded(status=status, steps=steps, epochs_completed=epochs, wall_s=3.0,
                       steps_per_s=100.0, best_val=0.25, best_metric="val_loss", error=error,
                       checkpoint=checkpoint)


def shown(status: RunStatus) -> str:
    return " | ".join((status.state.text(), status.epoch_bar.format(),
                       status.run_bar.format()))


def test_a_completed_run_shows_its_last_step_although_the_update_was_throttled(status):
    status.on_metrics_batch([metrics(440, 10)])
    status.on_metrics_batch([metrics(460, 10)])  # within the throttle: not drawn
    status.on_run_ended(ended("completed", 460, 10))
    status.set_state("Ready", idle=True)
    assert status.state.text() == ("Completed: step 460/460, epoch 10/10 in 3.0 s, "
                                       "best val_loss 0.25")
    assert status.run_bar.value() == 460 and status.run_bar.format() == "step 460/460"
    assert status.epoch_bar.value() == 46 and status.epoch_bar.format() == "epoch 10/10"
    assert "ETA" not in shown(status)


def test_a_stopped_run_shows_where_it_stopped(status):
    status.on_metrics_batch([metrics(100, 3)])
    status.on_run_ended(ended("stopped", 120, 2, checkpoint="ckpt/last.pt"))
    status.set_state("Ready", idle=True)
    assert status.state.text() == ("Stopped at step 120 (epoch 3); "
                                   "Run ▸ Resume from checkpoint continues it")
    assert status.run_bar.value() == 120 and status.run_bar.format() == "step 120/460"
    assert status.epoch_bar.format() == "epoch 3/10"
    assert "ETA" not in shown(status)


def test_a_failed_run_shows_the_step_and_the_reason_on_one_line(status):
    status.on_metrics_batch([metrics(10, 1)])
    reason = ("train_loss is NaN at step 10: lower optim.lr or enable train.grad_clip "
              + "x" * 200 + "\nmore detail")
    status.on_run_ended(ended("failed", 10, 0, reason))
    status.set_state("Ready", idle=True)
    text = status.state.text()
    assert text.startswith("Failed at step 10 (epoch 1): train_loss is NaN at step 10")
    assert "\n" not in text and len(text) < 140
    assert status.state.toolTip() == reason
    assert "ETA" not in shown(status)


def test_a_nan_run_fails_at_the_step_its_error_names(qtbot, tiny_config, faulty_model):
    """Fed by a real run whose NaN (step 4) is read at the logging of step 10."""
    arch = faulty_model("if self.calls >= 4: out = out * float('nan')")
    trainer = Trainer(tiny_config(**{"model.arch": arch, "train.log_every": 10}))
    widget = RunStatus()
    qtbot.addWidget(widget)
    trainer.on(ev.RunStarted, widget.on_run_started)
    trainer.on(ev.MetricsLogged, widget.on_metrics)
    trainer.on(ev.RunEnded, widget.on_run_ended)
    assert trainer.run().steps > 4
    assert widget.state.text().startswith("Failed at step 4 (epoch 1): loss became nan at "
                                          "step 4 (epoch 1)")
    assert widget.run_bar.format() == f"step 4/{trainer.total_steps}"
    assert widget.run_bar.value() == 4


def test_the_next_run_replaces_the_outcome(status):
    status.on_run_ended(ended("completed", 460, 10))
    status.set_state("Preparing the run…")
    assert status.state.text() == "Preparing the run…"
    status.set_state("Ready", idle=True)
    assert status.state.text() == "Ready"


def test_the_window_shows_the_outcome_after_the_bridge_goes_idle(qtbot, tmp_path, monkeypatch):
    """Fed as the bridge feeds it: runEnded, then the state back to idle ("Ready")."""
    monkeypatch.setattr(run_status.time, "monotonic", lambda: 100.0)
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat)
    window = MainWindow(workspace_dir=tmp_path / "ws", settings=settings)
    qtbot.addWidget(window)
    bridge = window.bridge
    bridge.stateChanged.emit(RUNNING)
    bridge.runStarted.emit(STARTED)
    bridge.metricsBatch.emit([metrics(440, 10)])
    bridge.metricsBatch.emit([metrics(460, 10)])
    bridge.runEnded.emit(ended("completed", 460, 10))
    bridge.stateChanged.emit(IDLE)
    assert window.status.state.text() == ("Completed: step 460/460, epoch 10/10 in 3.0 s, "
                                          "best val_loss 0.25")
    assert window.status.run_bar.format() == "step 460/460"


def energy(joules, note="", final=True) -> ev.EnergyMeasured:
    return ev.EnergyMeasured(step=460, epoch=10, joules=joules,
                             per_epoch_j=None if joules is None else joules / 10,
                             per_1k_samples_j=None if joules is None else 2.5, samples=1000,
                             source=None if joules is None else "rapl", note=note, final=final)


def test_the_run_status_ends_with_the_energy_the_run_used_or_why_it_has_none(status):
    status.on_energy(energy(99.0, final=False))  # an epoch's reading: the run goes on
    status.on_energy(energy(1234.0))
    status.on_run_ended(ended("completed", 460, 10))
    assert status.state.text().endswith("best val_loss 0.25; 1234 J")
    assert status.state.toolTip() == ("energy: 1234 J (123.4 J per epoch, 2.5 J per 1,000 "
                                      "samples), measured by the CPU's RAPL counters")
    status.on_run_started(STARTED)
    status.on_energy(energy(None, "not available: this machine exposes no RAPL package "
                                  "counters (none under /sys/class/powercap/intel-rapl:*)"))
    status.on_run_ended(ended("completed", 460, 10))
    assert status.state.text().endswith("best val_loss 0.25")
    assert status.state.toolTip().startswith("energy: not available: this machine exposes")
