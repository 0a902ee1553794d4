"""Turn the options of a RunConfig into torch objects: device, precision, optimizer, schedule, loss.

Problems that depend on the machine (no CUDA, fp16 on a CPU) are found here and
raised as ConfigError, so they read like any other configuration mistake.
"""

from __future__ import annotations

import contextlib
import math
import os

import numpy as np
import torch
from torch import nn
from torch.optim import lr_scheduler

from ..config import ConfigError, RunConfig
from ..run_options import FUSED_OPTIMIZERS

LOWER_IS_BETTER = {"val_loss": True, "val_mse": True, "val_mae": True,
                   "val_accuracy": False, "val_r2": False}


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"train.device={name!r} but this torch ({torch.__version__}) sees "
                              f"no CUDA device: use 'cpu' or 'auto'")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(f"train.device={name!r} but only {torch.cuda.device_count()} CUDA "
                              f"device(s) exist: use cuda:0 .. cuda:{torch.cuda.device_count()-1}")
        return torch.device("cuda", index)
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("train.device='mps' but MPS is not available here: use 'cpu' or 'auto'")
    return torch.device(name)


class Precision:
    """Autocast context and gradient scaler for precision.amp on a device."""

    def __init__(self, amp: str, device: torch.device):
        self.amp = amp
        self.scaler = None
        if amp == "off":
            self.dtype = None
        elif amp == "fp16":
            if device.type != "cuda":
                raise ConfigError(f"precision.amp='fp16' needs a CUDA device (running on "
                                  f"{device.type}): use 'bf16' or 'off'")
            self.dtype = torch.float16
            self.scaler = torch.amp.GradScaler("cuda")
        else:
            if device.type == "cuda" and not torch.cuda.is_bf16_supported():
                raise ConfigError("precision.amp='bf16' is not supported by this GPU: use 'fp16'")
            self.dtype = torch.bfloat16
        self.device_type = device.type

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)


class RunSettings:
    """The process-wide torch settings a run asks for (train.threads, precision.tf32):
    set for each call of Trainer.run and put back after it, so a run inside a long-lived
    process (an A/B's two sides taking turns, a search worker, the tests) leaves no
    trace on the next one. ``notes`` says what was ignored and why, for the run's log."""

    def __init__(self, cfg: RunConfig, device: torch.device):
        self.threads = cfg.train.threads
        self.tf32 = cfg.precision.tf32 if device.type == "cuda" else "auto"
        self.notes: list[str] = []
        if cfg.precision.tf32 != "auto" and device.type != "cuda":
            self.notes.append(f"precision.tf32={cfg.precision.tf32!r} is ignored on "
                              f"{device.type}: TF32 is a mode of CUDA GPUs")
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
            (os.cpu_count() or 0)  # the cores this process may run on
        if cores and self.threads > cores:
            self.notes.append(f"train.threads={self.threads} is more than this machine's "
                              f"{cores} cores: the threads take turns on them, which is "
                              f"usually slower; {cores} or fewer is usual")

    @contextlib.contextmanager
    def applied(self):
        threads = torch.get_num_threads()
        matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        try:
            if self.threads:
                torch.set_num_threads(self.threads)
            if self.tf32 != "auto":
                on = self.tf32 == "on"
                torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = on
            yield self
        finally:
            if self.threads and torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
            if self.tf32 != "auto":
                torch.backends.cuda.matmul.allow_tf32 = matmul
                torch.backends.cudnn.allow_tf32 = cudnn


def decay_split(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """Weights of linear and conv layers (decayed, penalized) and the rest (biases, norms)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    return decay, no_decay


def build_optimizer(cfg: RunConfig, model: nn.Module,
                    backbone: set[str] | frozenset[str] = frozenset()) -> torch.optim.Optimizer:
    """The optimizer; a value torch refuses that validation let through names the optim keys.

    ``backbone`` names the parameters loaded by ``model.init``: with
    optim.backbone_lr_scale < 1 they get their own groups at that fraction of the
    rate, after the groups of the fresh layers (group 0 is what the run reports).
    """
    try:
        return _optimizer(cfg, model, backbone)
    except ValueError as exc:
        raise ConfigError(f"optim.name={cfg.optim.name!r} refuses these settings ({exc}): "
                          f"check optim.lr, optim.momentum, optim.betas, "
                          f"optim.weight_decay") from None


def _groups(cfg: RunConfig, model: nn.Module, backbone) -> list[dict]:
    o = cfg.optim
    scale = o.backbone_lr_scale if cfg.applies("optim.backbone_lr_scale") else 1.0
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if scale == 1.0 or not backbone:
        parts = [(1.0, [p for _, p in named])]
    else:
        parts = [(1.0, [p for n, p in named if n not in backbone]),
                 (scale, [p for n, p in named if n in backbone])]
    groups = []
    for part_scale, params in parts:
        extra = {} if part_scale == 1.0 else {"lr": o.lr * part_scale}
        if o.weight_decay:  # biases and norm parameters are not decayed
            groups += [{"params": [p for p in params if p.ndim > 1],
                        "weight_decay": o.weight_decay, **extra},
                       {"params": [p for p in params if p.ndim <= 1],
                        "weight_decay": 0.0, **extra}]
        else:  # one group, in the model's own order
            groups.append({"params": params, "weight_decay": 0.0, **extra})
    return [g for g in groups if g["params"]]


def _optimizer(cfg: RunConfig, model: nn.Module, backbone) -> torch.optim.Optimizer:
    o = cfg.optim
    if o.name == "lbfgs":
        decay, no_decay = decay_split(model)
        return torch.optim.LBFGS(decay + no_decay, lr=o.lr, history_size=o.lbfgs_history,
                                 line_search_fn="strong_wolfe", max_iter=1)
    groups = _groups(cfg, model, backbone)
    impl = _implementation(cfg, model)
    if o.name == "sgd":
        return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov, **impl)
    if o.name == "adam":
        return torch.optim.Adam(groups, lr=o.lr, betas=tuple(o.betas), **impl)
    if o.name == "adamw":
        return torch.optim.AdamW(groups, lr=o.lr, betas=tuple(o.betas), **impl)
    if o.name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=o.lr, momentum=o.momentum, **impl)
    if o.name == "adagrad":
        return torch.optim.Adagrad(groups, lr=o.lr, **impl)
    raise ConfigError(f"optim.name={o.name!r} is not supported")  # pragma: no cover


IMPLEMENTATION_KEYS = ("fused", "foreach")


def keep_implementation(optimizer: torch.optim.Optimizer, saved: dict) -> dict:
    """``saved`` (an optimizer's state dict, to load into ``optimizer``) with this run's
    optim.implementation: torch's load_state_dict takes every group setting from the
    checkpoint, so a run saved with a for-loop optimizer would otherwise resume on it
    whatever the configuration says now (and its step counters on the wrong device for
    a fused kernel). Edits ``saved`` in place."""
    for old, new in zip(saved.get("param_groups", ()), optimizer.param_groups, strict=False):
        for key in IMPLEMENTATION_KEYS:
            if key in new:
                old[key] = new[key]
    return saved


def _implementation(cfg: RunConfig, model: nn.Module) -> dict:
    """optim.implementation as torch.optim's keywords. auto: fused where torch has the
    kernel for this optimizer on the parameters' device (the same update in far fewer
    operations), else torch's own choice. Fused kernels exist on some devices only, and
    torch would find that out at the first step: "fused" on another device is refused
    here, naming the key."""
    impl = cfg.optim.implementation
    devices = {p.device.type for p in model.parameters() if p.requires_grad}
    missing = sorted(devices - set(FUSED_OPTIMIZERS.get(cfg.optim.name, ())))
    # FSDP2's parameters are DTensors, and torch has no sharding rule for every fused
    # kernel (aten._fused_sgd_ has none): the sharded run keeps torch's own choice
    sharded = any(type(p).__name__ == "DTensor" for p in model.parameters())
    if impl == "auto":
        return {} if missing or sharded else {"fused": True}
    if impl == "fused":
        if sharded:
            raise ConfigError("optim.implementation='fused' cannot step the sharded "
                              "parameters of train.strategy='fsdp' (torch has no sharded "
                              "fused kernel for every optimizer): use 'foreach' (or 'auto')")
        if missing:
            raise ConfigError(f"optim.implementation='fused': torch has no fused "
                              f"{cfg.optim.name} on {', '.join(missing)}: use 'foreach' "
                              f"(or 'auto')")
        return {"fused": True}
    return {"foreach": impl == "foreach"}


def build_scheduler(cfg: RunConfig, optimizer, steps_per_epoch: int, total_steps: int):
    """Per-optimizer-step schedule (None for a constant rate), or ReduceLROnPlateau per epoch.

    A value torch refuses that validation let through names the schedule keys.
    """
    try:
        return _scheduler(cfg, optimizer, steps_per_epoch, total_steps)
    except (ValueError, ZeroDivisionError) as exc:
        raise ConfigError(f"schedule.name={cfg.schedule.name!r} refuses these settings "
                          f"({exc}) over {total_steps} steps: check schedule.gamma, "
                          f"schedule.warmup_steps, schedule.min_lr, schedule.milestones") from None


def _scheduler(cfg: RunConfig, optimizer, steps_per_epoch: int, total_steps: int):
    s = cfg.schedule
    spe = max(1, steps_per_epoch)
    warmup = min(s.warmup_steps, max(0, total_steps - 1))
    # Each group's share of optim.lr (optim.backbone_lr_scale): the schedule keeps it, so
    # peaks and floors given as rates are scaled per group.
    shares = [g["lr"] / cfg.optim.lr for g in optimizer.param_groups]
    if s.name == "plateau":
        mode = "min" if LOWER_IS_BETTER[cfg.regularization.early_stopping_metric] else "max"
        return lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode, factor=s.gamma,
                                              patience=s.patience,
                                              min_lr=[s.min_lr * k for k in shares])
    if s.name == "onecycle":
        # OneCycleLR divides by the rise's length, pct_start * total_steps - 1 steps:
        # a one-step warmup would make it zero, so the rise takes at least two.
        pct = max(warmup, 2) / total_steps if warmup else 0.3
        cycle = any(k in optimizer.defaults for k in ("betas",)) or \
            optimizer.defaults.get("momentum", 0) > 0
        return lr_scheduler.OneCycleLR(optimizer, max_lr=[cfg.optim.lr * k for k in shares],
                                       total_steps=total_steps,
                                       pct_start=min(max(pct, 0.01), 0.99),
                                       cycle_momentum=cycle)
    rest = max(1, total_steps - warmup)
    if s.name == "constant":
        main = None
    elif s.name == "step":
        main = lr_scheduler.StepLR(optimizer, step_size=s.step_size * spe, gamma=s.gamma)
    elif s.name == "multistep":
        main = lr_scheduler.MultiStepLR(optimizer, milestones=[m * spe for m in s.milestones],
                                        gamma=s.gamma)
    elif s.name == "exponential":
        main = lr_scheduler.ExponentialLR(optimizer, gamma=s.gamma ** (1.0 / spe))
    elif s.name in ("cosine", "warmup_cosine") and len(set(shares)) > 1:
        # CosineAnnealingLR has one floor for all groups: the slowed layers would end at
        # the head's floor, or rise to it. The same curve as a factor keeps each share.
        main = lr_scheduler.LambdaLR(optimizer, _Cosine(rest, s.min_lr / cfg.optim.lr))
    elif s.name in ("cosine", "warmup_cosine"):
        main = lr_scheduler.CosineAnnealingLR(optimizer, T_max=rest, eta_min=s.min_lr)
    else:  # pragma: no cover
        raise ConfigError(f"schedule.name={s.name!r} is not supported")
    if not warmup:
        return main
    ramp = lr_scheduler.LinearLR(optimizer, start_factor=0.01, total_iters=warmup)
    if main is None:
        return ramp
    return lr_scheduler.SequentialLR(optimizer, [ramp, main], milestones=[warmup])


class _Cosine:
    """CosineAnnealingLR's closed form as a factor of each group's rate: 1 at step 0, the
    floor ``floor`` (min_lr / lr) after ``steps`` steps and beyond."""

    def __init__(self, steps: int, floor: float):
        self.steps, self.floor = steps, floor

    def __call__(self, step: int) -> float:
        t = min(step, self.steps) / self.steps
        return self.floor + (1 - self.floor) * (1 + math.cos(math.pi * t)) / 2


class _BCEWithLogits(nn.Module):
    """BCE on one logit (binary) or one-vs-rest over all outputs (multi-class)."""

    def __init__(self):
        super().__init__()
        self.fn = nn.BCEWithLogitsLoss()

    def forward(self, out, y):
        if y.ndim == 2:  # soft targets (mixup, CutMix): class probabilities
            if out.shape[1] == 1:
                return self.fn(out[:, 0], y[:, 1].to(out.dtype))
            return self.fn(out, y.to(out.dtype))
        if out.shape[1] == 1:
            return self.fn(out[:, 0], y.to(out.dtype))
        return self.fn(out, nn.functional.one_hot(y, out.shape[1]).to(out.dtype))


class _OnFirstColumn(nn.Module):
    """Regression losses compare the single output column to the target vector."""

    def __init__(self, fn: nn.Module):
        super().__init__()
        self.fn = fn

    def forward(self, out, y):
        return self.fn(out[:, 0], y.to(out.dtype))


def loss_name(cfg: RunConfig) -> str:
    if cfg.train.loss != "auto":
        return cfg.train.loss
    return "cross_entropy" if cfg.task == "classification" else "mse"


def class_weights(cfg: RunConfig, data) -> torch.Tensor | None:
    """train.class_weights = 'balanced': n / (k * count) per class of the training split
    (scikit-learn's 'balanced'); None otherwise."""
    if cfg.train.class_weights != "balanced" or data.task != "classification":
        return None
    from sklearn.utils.class_weight import compute_class_weight

    y = data.y_train.numpy()
    present = np.unique(y)
    weights = np.ones(data.num_classes)
    weights[present] = compute_class_weight("balanced", classes=present, y=y)
    return torch.tensor(weights, dtype=torch.float32)


def sample_weights(cfg: RunConfig, data) -> torch.Tensor | None:
    """data.oversample: each training sample drawn with weight 1 / (its class's count in
    the training split), so every class is drawn equally often on average; None otherwise."""
    if not cfg.data.oversample or data.task != "classification":
        return None
    counts = torch.bincount(data.y_train, minlength=data.num_classes).double()
    return (1.0 / counts)[data.y_train]


def build_loss(cfg: RunConfig, weights: torch.Tensor | None = None) -> nn.Module:
    """The task loss; ``weights`` (per class, see class_weights) weigh cross-entropy."""
    name = loss_name(cfg)
    if name == "cross_entropy":
        return nn.CrossEntropyLoss(weight=weights,
                                   label_smoothing=cfg.regularization.label_smoothing)
    if name == "bce":
        return _BCEWithLogits()
    if name == "hinge":
        return nn.MultiMarginLoss(weight=weights)
    return _OnFirstColumn({"mse": nn.MSELoss(), "l1": nn.L1Loss(),
                           "huber": nn.HuberLoss()}[name])


def num_outputs(cfg: RunConfig, num_classes: int | None) -> int:
    if cfg.task == "regression":
        return 1
    if loss_name(cfg) == "bce" and num_classes == 2:
        return 1
    return int(num_classes)


def predict(out: torch.Tensor, task: str) -> torch.Tensor:
    """Class index (classification) or the value (regression) from model outputs."""
    if task == "regression":
        return out[:, 0].float()
    if out.shape[1] == 1:
        return (out[:, 0] > 0).long()
    return out.argmax(dim=1)


def steps_per_epoch(n_batches: int, accum: int) -> int:
    return math.ceil(n_batches / accum)
