"""The Trainer: a small event loop that runs one training run and tells the world about it.

Features (early stopping, checkpoints, the workspace writer, progress bars,
the app's bridge) are handlers that subscribe to events with ``on``. Control
from other threads is cooperative: ``pause``, ``resume`` and ``stop`` set flags
read between optimizer steps. Values are read off the device once per logging
interval, never per step, so the loop does not stall the accelerator.
"""

from __future__ import annotations

import math
import threading
import time
import traceback
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import RunConfig
from ..data import load_dataset, settle_task
from ..data.augment import build_augment
from ..distributed import data_parallel
from ..models import build_model
from ..models.fit import InitSource, start_from
from ..models.transfer import freeze
from ..profiling.options import LOG_ANNOTATION
from ..workspace.diskspace import disk_full_message, is_disk_full
from ..workspace.diskspace import stated as stated_disk_full
from . import events as ev
from .checkpointing import CheckpointState
from .control import RunControl
from .footprint import check_data_fits, check_model_fits
from .handlers import Checkpointer, EarlyStopping
from .loader import BatchLoader
from .rng import seed_everything
from .setup import (
    Precision,
    RunSettings,
    build_loss,
    build_optimizer,
    build_scheduler,
    class_weights,
    decay_split,
    num_outputs,
    resolve_device,
    sample_weights,
    steps_per_epoch,
)
from .steps import OptimizerSteps
from .validation import evaluate, is_better

LossHook = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class NonFiniteLoss(Exception):
    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step  # the step whose loss was not finite (counted from 1, like progress)


@dataclass(frozen=True)
class RunResult:
    status: str  # "completed" | "stopped" | "failed"
    steps: int
    epochs_completed: int
    wall_s: float
    steps_per_s: float
    best_val: float | None
    best_metric: str
    error: str | None
    checkpoint: str | None
    # The step a failure belongs to (the one in progress, or whose loss was NaN), counted
    # like progress: a NaN is found at the next logging, steps after it happened.
    failed_at: int | None = None


class Trainer(RunControl, OptimizerSteps, CheckpointState):
    """Builds data, model, optimizer and schedule from a RunConfig and trains on ``run()``.

    Construction does all the building, so a bad configuration fails here with
    a ConfigError (or ModelError) before any event is emitted.
    """

    def __init__(self, config: RunConfig, *, run_id: str | None = None,
                 checkpoint_dir: str | Path | None = None, model: torch.nn.Module | None = None,
                 loss_hook: LossHook | None = None, init: InitSource | None = None):
        """``model`` trains instead of one built from the config (``model.init``: a pruned
        model); ``loss_hook(x, out, task_loss)`` returns the loss to minimise, validation
        still reports the task loss alone. Distillation is such a loss provider, attached
        from outside (``distill.teacher``: engine.run_builder builds the run and attaches
        it), so training depends on neither compression nor export. ``init`` holds the
        weights of a run that ``model.init`` names (engine.run_builder reads them)."""
        config.validate()
        self.config = cfg = config
        self.run_id = run_id
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self._handlers: dict[type, list[Callable]] = defaultdict(list)
        self._late: dict[type, list[Callable]] = defaultdict(list)
        self._stateful: dict[str, object] = {}
        self._control = threading.Condition()
        self._flagged = False  # fast check in the loop: pause or stop asked for
        self._paused = False
        self._stop_reason: str | None = None

        self.device = resolve_device(cfg.train.device)
        self.dist = data_parallel(cfg, self.device)  # None in one process
        if self.dist is not None:
            self.device = self.dist.device  # cuda: this rank's own GPU
        self.precision = Precision(cfg.precision.amp, self.device)
        self.settings = RunSettings(cfg, self.device)  # threads, TF32: for each run() only
        seed_everything(cfg.train.seed)
        check_data_fits(cfg)
        self.data = load_dataset(cfg)
        self.config = cfg = settle_task(cfg, self.data)  # a table's data.task = 'auto'
        self.task = self.data.task
        # for the log, said when the run starts: what the data decided, then the model's build
        self.notes: list[str] = [f"data: {note}" for note in self.data.notes]
        self.notes += self.settings.notes
        backbone: set[str] = set()
        if model is None:
            check_model_fits(cfg, self.data, self.device)
            outputs = num_outputs(cfg, self.data.num_classes)
            model = build_model(cfg, tuple(self.data.input_shape), outputs)
            if cfg.model.init:
                report = start_from(model, init or cfg.model.init,
                                    input_shape=tuple(self.data.input_shape), outputs=outputs)
                self.notes += report.lines()
                backbone = report.loaded_parameters(model)
        if self.dist is not None:
            model = self.dist.sync_batchnorm(model, cfg.train.sync_batchnorm, self.notes)
        self.frozen_norms = freeze(model, cfg.model.freeze)
        if cfg.model.freeze:
            self.notes.append(f"model.freeze: {', '.join(cfg.model.freeze)} stay fixed ("
                              f"{sum(not p.requires_grad for p in model.parameters())} tensors)")
        self.model = model.to(self.device)
        self.loss_hook = loss_hook
        self.channels_last = cfg.precision.channels_last and len(self.data.input_shape) == 3
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        net = self.model
        if self.dist is not None:  # ddp: a wrapper; fsdp: shards the model in place
            net = self.dist.wrap(self.model)
            self.notes += filter(None, [self.dist.wrap_note()])
            self.dist.attach(self)
        self.forward = torch.compile(net) if cfg.precision.compile else net
        self.loss_fn = build_loss(cfg, class_weights(cfg, self.data)).to(self.device)
        self.optimizer = build_optimizer(cfg, self.model, backbone)
        self.penalized, _ = decay_split(self.model)
        r = cfg.regularization
        self.penalized_on = bool(r.l1 or r.l2) and bool(self.penalized)
        self.params = [p for g in self.optimizer.param_groups for p in g["params"]]
        self.train_loader = BatchLoader(self.data.x_train, self.data.y_train, cfg.data.batch_size,
                                        shuffle=True, seed=cfg.train.seed,
                                        num_workers=cfg.data.num_workers,
                                        pin_memory=cfg.data.pin_memory, device=self.device,
                                weights=sample_weights(cfg, self.data),
                                        **(self.dist.loader_share(cfg, self.notes)
                                           if self.dist is not None else {}))
        val_x, val_y = self.data.x_val, self.data.y_val
        if self.dist is not None:  # each rank validates its share; rank 0 reduces
            val_x, val_y = self.dist.shard(val_x, val_y)
        self.val_loader = BatchLoader(val_x, val_y,
                                      max(cfg.data.batch_size, 512), shuffle=False,
                                      device=self.device,
                                      num_workers=cfg.data.num_workers
                                      if self.train_loader.streamed else 0)
        self._val_forwards = (None if self.dist is None else  # fsdp: as many on every rank
                              self.dist.validation_forwards(len(self.val_loader)))
        self.augment = build_augment(cfg, self.data, self.device)  # training batches only
        self.accum = cfg.train.grad_accum_steps
        self.steps_per_epoch = steps_per_epoch(len(self.train_loader), self.accum)
        total = cfg.train.epochs * self.steps_per_epoch
        self.total_steps = min(total, cfg.train.max_steps) if cfg.train.max_steps else total
        self.scheduler = build_scheduler(cfg, self.optimizer, self.steps_per_epoch,
                                         self.total_steps)
        self.plateau = isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
        self.monitor = cfg.regularization.early_stopping_metric
        self.metric_names = (("val_loss", "val_accuracy") if self.task == "classification"
                             else ("val_loss", "val_mse", "val_mae", "val_r2"))
        self.num_params = sum(p.numel() for p in self.model.parameters())

        # progress: the next batch to train is batch `batch_in_epoch` of epoch `epoch`
        self.step = 0
        self.epoch = 1
        self.batch_in_epoch = 0
        self.wall_s = 0.0
        self.samples_trained = 0
        self.best_val: float | None = None
        self.last_checkpoint: str | None = None
        self.checkpoint_reason: str | None = None  # why the loaded checkpoint was written
        self._epoch_loss_sum, self._epoch_steps = 0.0, 0
        self._pending: list[torch.Tensor] = []  # per-micro-batch weighted losses, unread
        self._pending_steps: list[int] = []
        self._grad_norm: torch.Tensor | None = None

        r = cfg.regularization
        if r.early_stopping_patience:
            EarlyStopping(r.early_stopping_metric, r.early_stopping_patience,
                          r.early_stopping_min_delta).attach(self)
        self._checkpointer: Checkpointer | None = None
        # Under a process group every rank takes part in each save (rank 0 names the folder)
        if self.checkpoint_dir is not None or self.dist is not None:
            self.enable_checkpoints(self.checkpoint_dir)

    # --- subscription and control (control methods are safe from any thread) ---
    def on(self, event_type: type, callback: Callable, *, last: bool = False) -> None:
        """Call ``callback(event)`` for each event of the type; ``last`` callbacks run after
        all others, whenever subscribed (the checkpointer: a checkpoint must never be ahead
        of what the sinks have stored, or a kill right after it loses those metrics)."""
        (self._late if last else self._handlers)[event_type].append(callback)

    def enable_checkpoints(self, folder: str | Path | None) -> None:
        """Write ``folder/last.pt`` every train.checkpoint_every epochs, at the end and on stop."""
        self.checkpoint_dir = Path(folder) if folder is not None else None
        if self._checkpointer is None:
            self._checkpointer = Checkpointer(self.config.train.checkpoint_every)
            self._checkpointer.attach(self)

    def register_state(self, name: str, obj) -> None:
        """Include ``obj.state_dict()`` in checkpoints and restore it on resume."""
        self._stateful[name] = obj

    def emit(self, event: ev.Event) -> None:
        for callback in self._handlers.get(type(event), ()):
            callback(event)
        for callback in self._late.get(type(event), ()):
            callback(event)

    # --- the run -------------------------------------------------------------
    def run(self) -> RunResult:
        """Train until the configured end, a stop or a failure; a later call continues.

        A stop asked for before the call (Stop pressed while the run was being
        built) ends the run at its first step boundary. The run's thread count and TF32
        mode hold during the call only."""
        with self.settings.applied():
            return self._run()

    def _run(self) -> RunResult:
        if self.config.distill.teacher and self.loss_hook is None:
            raise RuntimeError("distill.teacher is set but no distillation is attached to this "
                               "Trainer: build the run with engine.run_builder.build_trainer")
        with self._control:
            self._flagged = self._paused or self._stop_reason is not None
        started = time.perf_counter()
        start_step = self.step
        status, error, failed_at = "completed", None, None
        self._in_step = False
        self.emit(ev.RunStarted(self.run_id, self.num_params, str(self.device), self.task,
                                self.config.train.epochs, self.steps_per_epoch, self.total_steps,
                                self.step, self.epoch, self.metric_names,
                                tuple(self.notes), self.data.preprocessing))
        self._wall_mark = self._interval_mark = time.perf_counter()
        self._interval_samples = 0
        self.samples_trained = 0  # in this call of run(): what energy per sample divides by
        try:
            self._loop()
            self._log()
            status = "stopped" if self._stop_reason == "user" else "completed"
        except NonFiniteLoss as exc:
            status, error, failed_at = "failed", str(exc), exc.step
            self.emit(ev.ExceptionRaised(failed_at, self.epoch, "nan", error))
        except torch.OutOfMemoryError:
            failed_at = self._failing_step()
            status, error = "failed", self._oom_message(failed_at)
            self.emit(ev.ExceptionRaised(failed_at, self.epoch, "oom", error,
                                         traceback.format_exc()))
        except Exception as exc:  # every other failure ends the run with its message
            if is_disk_full(exc):
                status, error = "stopped", self._disk_full_message(exc)
                self.emit(ev.ExceptionRaised(self.step, self.epoch, "disk_full", error))
            else:
                failed_at = self._failing_step()
                status, error = "failed", f"{type(exc).__name__}: {exc}"
                if self.dist is not None:  # a rank that stopped answering is named
                    error = self.dist.name_the_silent(exc, error)
                self.emit(ev.ExceptionRaised(failed_at, self.epoch, "error", error,
                                             traceback.format_exc()))
        self._tick_wall()
        try:
            self.emit(ev.LoopEnded(status, self.step, self.epoch,
                                   "disk_full" if error and status == "stopped" else ""))
        except Exception as exc:
            if is_disk_full(exc):
                status, error = "stopped", self._disk_full_message(exc)
                self.emit(ev.ExceptionRaised(self.step, self.epoch, "disk_full", error))
            else:
                status, failed_at = "failed", self.step
                error = f"while finishing the run: {type(exc).__name__}: {exc}"
                self.emit(ev.ExceptionRaised(self.step, self.epoch, "error", error,
                                             traceback.format_exc()))
        session = time.perf_counter() - started
        done = self.step - start_step
        # A session that trained no step (a resume that only finishes the record) reports
        # the run's own rate.
        rate = (done / session if done and session > 0 else
                self.step / self.wall_s if not done and self.wall_s > 0 else 0.0)
        result = RunResult(status, self.step, self.epoch - 1, self.wall_s, rate, self.best_val,
                           self.monitor, error, self.last_checkpoint,
                           failed_at if status == "failed" else None)
        with self._control:
            self._stop_reason = None  # this stop is spent: a later call continues
        self.emit(ev.RunEnded(**result.__dict__))
        return result

    def _loop(self) -> None:
        cfg = self.config
        max_steps = cfg.train.max_steps
        while self.epoch <= cfg.train.epochs:
            if max_steps and self.step >= max_steps:
                self.stop("max_steps")
            if (self._flagged or self.dist is not None) and self._check_control():
                return
            self.emit(ev.EpochStarted(self.epoch, self.step))
            if self.batch_in_epoch == 0:
                self._epoch_loss_sum, self._epoch_steps = 0.0, 0
            self.model.train()
            for module in self.frozen_norms:  # frozen layers keep their statistics
                module.eval()
            if not self._train_epoch(max_steps):
                return
            self._end_epoch()

    def _train_epoch(self, max_steps: int) -> bool:
        """Train the rest of the current epoch; False when the run stops part-way."""
        loader = self.train_loader
        n_batches, k = len(loader), self.accum
        log_every = self.config.train.log_every
        step_started = bool(self._handlers.get(ev.StepStarted))
        step_ended = bool(self._handlers.get(ev.StepEnded))
        lbfgs = isinstance(self.optimizer, torch.optim.LBFGS)
        move = self.train_loader.on_device != self.device  # worker-loaded batches
        augment = self.augment
        b = self.batch_in_epoch
        group_end, group_total = b, 0
        dist = self.dist is not None  # ranks agree on a stop at every step boundary
        no_sync = self.dist.no_sync if dist and k > 1 else None
        weigh = k > 1 or dist  # by sample count: a last batch may be smaller
        world = self.dist.world if dist else 1
        for x, y in loader.epoch(self.epoch, b):
            if b == group_end:  # first micro-batch of an optimizer step
                if (self._flagged or dist) and self._check_control():
                    return False
                self._in_step = True
                if step_started:
                    self.emit(ev.StepStarted(self.step, self.epoch))
                group_end = min(b + k, n_batches)
                group_total = loader.samples_in(b, group_end)
                log_now = (self.step + 1) % log_every == 0 or group_end == n_batches
            if move:
                x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            if augment is not None:
                x, y = augment(x, y)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            if lbfgs:
                self._lbfgs_step(x, y)
            elif no_sync is not None and b + 1 < group_end:  # all-reduce on the last one only
                with no_sync():
                    self._backward(x, y, len(x) * world / group_total)
            else:
                self._backward(x, y, len(x) * world / group_total if weigh else 1.0)
            b += 1
            if b < group_end:
                continue
            if not lbfgs:
                self._optimizer_step(log_now)
            self.step += 1
            self._in_step = False
            self.batch_in_epoch = b
            self._interval_samples += group_total
            self.samples_trained += group_total
            if step_ended:
                self.emit(ev.StepEnded(self.step, self.epoch, group_total))
            if log_now and b < n_batches:
                self._log()
            if max_steps and self.step >= max_steps:
                self.stop("max_steps")
                if b < n_batches:
                    return False
        return True

    # --- reading values: once per interval -----------------------------------
    def _log(self) -> None:
        if not self._pending:
            return
        with torch.profiler.record_function(LOG_ANNOTATION):
            self._log_interval()

    def _log_interval(self) -> None:
        losses = torch.stack(self._pending).float()
        if self.dist is not None:  # every rank then reads the same losses, NaN included
            losses = self.dist.mean(losses)
        losses = losses.cpu()  # the one sync of the interval
        steps = self._pending_steps
        self._pending, self._pending_steps = [], []
        finite = torch.isfinite(losses)
        if not bool(finite.all()):
            bad = steps[int((~finite).nonzero()[0, 0])]
            raise NonFiniteLoss(
                f"loss became {losses[~finite][0].item()} at step {bad} (epoch {self.epoch}): "
                f"try a lower optim.lr (now {self.config.optim.lr:g}), gradient clipping "
                f"(train.grad_clip_norm=1.0)" + (", or precision.amp='bf16' instead of 'fp16'"
                                                 if self.config.precision.amp == "fp16" else ""),
                bad)
        n_steps = len(set(steps))
        loss_sum = float(losses.sum())
        self._epoch_loss_sum += loss_sum
        self._epoch_steps += n_steps
        elapsed = time.perf_counter() - self._interval_mark
        self._tick_wall()
        norm = float(self._grad_norm) if self._grad_norm is not None else math.nan
        self._grad_norm = None
        self.emit(ev.MetricsLogged(self.step, self.epoch, loss_sum / n_steps, self.lr, norm,
                                   self._interval_samples / elapsed if elapsed > 0 else 0.0,
                                   self.wall_s))
        self._interval_mark = time.perf_counter()
        self._interval_samples = 0

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def _tick_wall(self) -> None:
        now = time.perf_counter()
        self.wall_s += now - self._wall_mark
        self._wall_mark = now

    # --- epoch end: validation -------------------------------------------------
    def _end_epoch(self) -> None:
        self._log()
        metrics = self.validate()
        value = metrics.get(self.monitor, math.nan)
        if math.isfinite(value) and (self.best_val is None or is_better(
                self.monitor, value, self.best_val)):
            self.best_val = value
        if self.plateau:
            self.scheduler.step(value)
        self.emit(ev.ValidationEnded(self.step, self.epoch, metrics))
        finished = self.epoch
        train_loss = self._epoch_loss_sum / max(1, self._epoch_steps)
        self.epoch += 1
        self.batch_in_epoch = 0
        self._tick_wall()
        self.emit(ev.EpochEnded(finished, self.step, train_loss, self.lr, self.wall_s, metrics))
        self._interval_mark = time.perf_counter()

    def validate(self) -> dict[str, float]:
        """Loss and task metrics on the validation split (metrics in the data's own units)."""
        dist = self.dist  # under DDP the model itself: DDP's forward is a collective
        return evaluate(self.forward if dist is None else self.model, self.model,
                        self.val_loader, self.loss_fn, self.precision, self.data,
                        channels_last=self.channels_last, device=self.device,
                        reduce=None if dist is None else dist.metrics,
                        forwards=self._val_forwards)

    def _disk_full_message(self, exc: BaseException) -> str:
        """One line for a full disk, whichever write hit it (checkpoint, database, log)."""
        where = self.checkpoint_dir if self.checkpoint_dir is not None else Path.cwd()
        said = stated_disk_full(exc)
        resume = f"`torchwork resume {self.run_id}`" if self.run_id else "resume the run"
        action = (f"the run is stopped at step {self.step} and its last good checkpoint kept; "
                  f"free some space, then {resume}")
        return f"{said}: {action}" if said else disk_full_message(where, action)

    def _failing_step(self) -> int:
        """The step an exception belongs to: the one in progress, else the last one done
        (validation, or a handler after the step)."""
        return self.step + 1 if self._in_step else self.step

    def _oom_message(self, step: int) -> str:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        bs = self.config.data.batch_size
        return (f"{self.device.type.upper()} out of memory at batch size {bs} (step "
                f"{step}): try a smaller batch (data.batch_size={max(1, bs // 2)}), "
                f"mixed precision (precision.amp='bf16' or 'fp16'), or gradient accumulation "
                f"(train.grad_accum_steps) to keep the effective batch")
