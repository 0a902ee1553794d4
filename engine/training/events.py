"""Events the Trainer emits: small frozen dataclasses holding plain numbers and strings.

Only these cross from the training loop to sinks (workspace writer, CLI, the
app's bridge), so they must never hold tensors, modules or optimizers. Epochs
are numbered from 1; `step` counts optimizer updates done so far.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Event:
    pass


@dataclass(frozen=True)
class RunStarted(Event):
    run_id: str | None
    num_params: int
    device: str
    task: str  # "classification" | "regression"
    epochs: int
    steps_per_epoch: int  # optimizer steps per epoch
    total_steps: int  # optimizer steps the run will take, max_steps included
    start_step: int  # > 0 when resuming from a checkpoint
    start_epoch: int
    metric_names: tuple[str, ...]  # validation metrics, e.g. ("val_loss", "val_accuracy")
    notes: tuple[str, ...] = ()  # what the build did that the log should say (model.init)
    # JSON-ready: the data's fitted preprocessing (DataBundle.preprocessing), stored with
    # the run so that predict replays it without reading the training data again
    preprocessing: dict | None = None


@dataclass(frozen=True)
class EpochStarted(Event):
    epoch: int
    step: int


@dataclass(frozen=True)
class StepStarted(Event):
    step: int  # the update about to happen is step + 1
    epoch: int


@dataclass(frozen=True)
class StepEnded(Event):
    step: int
    epoch: int
    samples: int  # samples that went into this update


@dataclass(frozen=True)
class MetricsLogged(Event):
    """Once per logging interval: the only time values are read off the device."""
    step: int
    epoch: int
    loss: float  # mean training loss over the interval (penalties included)
    lr: float
    grad_norm: float  # total L2 norm of the gradients at this step, before clipping
    samples_per_s: float
    wall_s: float  # seconds of training since the run first started


@dataclass(frozen=True)
class ValidationEnded(Event):
    step: int
    epoch: int
    metrics: dict[str, float] = field(default_factory=dict)  # val_loss, val_accuracy, ...


@dataclass(frozen=True)
class EpochEnded(Event):
    epoch: int
    step: int
    train_loss: float
    lr: float
    wall_s: float
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class EnergyMeasured(Event):
    """The energy the run has used so far (engine.monitor.energy): after each epoch end and
    once when the loop has left (``final``). ``joules`` None: not available, ``note`` says why.
    A resumed run's figures include its earlier sessions'."""
    step: int
    epoch: int  # epochs completed
    joules: float | None
    per_epoch_j: float | None  # per epoch's worth of training samples
    per_1k_samples_j: float | None
    samples: int  # training samples the figure covers
    source: str | None  # "nvml" | "nvml-power" | "rapl"
    note: str = ""
    final: bool = False


@dataclass(frozen=True)
class CheckpointSaved(Event):
    path: str
    epoch: int
    step: int
    reason: str  # "interval" | "end" | "stop"


@dataclass(frozen=True)
class Paused(Event):
    step: int


@dataclass(frozen=True)
class Resumed(Event):
    step: int


@dataclass(frozen=True)
class StopRequested(Event):
    step: int
    reason: str  # "user" | "early_stopping" | "max_steps"


@dataclass(frozen=True)
class ExceptionRaised(Event):
    step: int
    epoch: int
    kind: str  # "nan" | "oom" | "error"
    message: str  # what happened and what to try
    traceback: str = ""


@dataclass(frozen=True)
class LoopEnded(Event):
    """The loop has left; handlers finish up (final checkpoint, best weights) before RunEnded."""
    status: str  # "completed" | "stopped" | "failed"
    step: int
    epoch: int
    cause: str = ""  # "disk_full": no checkpoint can be written, the last good one stays


@dataclass(frozen=True)
class RunEnded(Event):
    status: str
    steps: int
    epochs_completed: int
    wall_s: float
    steps_per_s: float
    best_val: float | None
    best_metric: str
    error: str | None
    checkpoint: str | None
    failed_at: int | None = None  # a failed run: the step it failed at (see RunResult)
