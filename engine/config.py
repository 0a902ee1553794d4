"""RunConfig: the one source of truth for every option of a training run.

Each field carries its label, help text, range and choices as metadata, so the
desktop forms, the TOML files, the ``--set`` overrides and the validation all
come from this one declaration: a new option is one edit here.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import reprlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

import tomli_w


class ConfigError(ValueError):
    """A configuration a run cannot start from; the message says what to change."""

    def __init__(self, messages: str | list[str]):
        self.messages = [messages] if isinstance(messages, str) else list(messages)
        super().__init__("; ".join(self.messages))


def opt(default, label: str, help: str, *, min=None, max=None, min_exclusive=False,
        max_exclusive=False, choices=None, pattern=None, pattern_hint=None, item_min=None,
        item_max=None, item_max_exclusive=False, min_items=None, max_items=None):
    """A config field with the metadata forms and validation are built from.

    List fields bound each item (item_min, item_max) and their length (min_items,
    max_items; item_min also makes an empty list an error), so no value a file or
    --set can carry reaches the builders unchecked.
    """
    meta = dict(label=label, help=help, min=min, max=max, min_exclusive=min_exclusive,
                max_exclusive=max_exclusive, choices=tuple(choices) if choices else None,
                pattern=pattern, pattern_hint=pattern_hint, item_min=item_min,
                item_max=item_max, item_max_exclusive=item_max_exclusive,
                min_items=min_items, max_items=max_items)
    if isinstance(default, list):
        return field(default_factory=lambda d=tuple(default): list(d), metadata=meta)
    return field(default=default, metadata=meta)


DATASETS = ("digits", "iris", "wine", "breast_cancer", "diabetes", "synthetic", "moons")
REGRESSION_DATASETS = ("diabetes",)
IMAGE_DATASETS = ("digits",)
ARCHS = ("mlp", "cnn", "resnet")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad", "lbfgs")
SCHEDULES = ("constant", "step", "multistep", "exponential", "cosine", "warmup_cosine",
             "onecycle", "plateau")
CLASSIFICATION_LOSSES = ("cross_entropy", "bce", "hinge")
REGRESSION_LOSSES = ("mse", "l1", "huber")
MONITORED = ("val_loss", "val_accuracy", "val_mse", "val_mae", "val_r2")


@dataclass
class DataConfig:
    dataset: str = opt("digits", "Dataset", "Built-in dataset (no downloads): scikit-learn's "
                       "bundled sets, or generated 'synthetic' / 'moons' data.", choices=DATASETS)
    batch_size: int = opt(64, "Batch size", "Samples per forward pass (per micro-batch when "
                          "accumulating gradients).", min=1, max=1_000_000)
    val_fraction: float = opt(0.2, "Validation fraction", "Share of the data held out for "
                              "validation (stratified for classification).",
                              min=0.0, max=0.9, min_exclusive=True)
    n_samples: int = opt(2000, "Samples", "Number of generated samples (synthetic and moons).",
                         min=20, max=100_000_000)
    n_features: int = opt(20, "Features", "Number of generated features (synthetic).",
                          min=2, max=100_000)
    n_classes: int = opt(2, "Classes", "Number of generated classes (synthetic).", min=2, max=1000)
    noise: float = opt(0.2, "Noise", "Standard deviation of the noise added to 'moons'.",
                       min=0.0, max=10.0)
    standardize: bool = opt(True, "Standardize features", "Scale features to zero mean and unit "
                            "variance, fitted on the training split only.")
    num_workers: int = opt(0, "Loader workers", "DataLoader worker processes; 0 loads in the "
                           "training process, fastest for in-memory data.", min=0, max=64)
    pin_memory: bool = opt(False, "Pin memory", "Page-locked host batches for faster, "
                           "asynchronous copies to a CUDA device.")


@dataclass
class ModelConfig:
    arch: str = opt("mlp", "Architecture", "mlp, cnn (image data), resnet, or "
                    "custom:path/to/file.py exposing build_model(input_shape, num_outputs). "
                    "A custom file is Python code and runs when the model is built: load only "
                    "files you trust.", choices=ARCHS, pattern=r"custom:.+\.py",
                    pattern_hint="custom:path/to/file.py")
    hidden: list[int] = opt([128, 64], "Hidden widths", "Width of each hidden layer of the MLP "
                            "(and of the residual blocks of resnet on tabular data).",
                            item_min=1, item_max=10**9, max_items=1000)
    channels: list[int] = opt([32, 64], "Conv channels", "Output channels of each convolution "
                              "stage (cnn, resnet on image data).",
                              item_min=1, item_max=10**6, max_items=1000)
    activation: str = opt("relu", "Activation", "Non-linearity between layers.",
                          choices=("relu", "gelu", "silu", "tanh", "leaky_relu"))
    dropout: float = opt(0.0, "Dropout", "Probability of zeroing an activation during training.",
                         min=0.0, max=1.0, max_exclusive=True)
    batch_norm: bool = opt(False, "Batch norm", "Batch normalization after each hidden layer.")
    init: str = opt("", "Start from weights", "A .safetensors file (from `torchwork export` or "
                    "`torchwork compress`) whose weights the model starts from instead of a "
                    "random initialization; layers take the file's sizes, so a pruned model "
                    "fine-tunes as an ordinary run. Empty: random initialization.",
                    pattern=r"(.+\.safetensors)?", pattern_hint="path/to/model.safetensors")


@dataclass
class OptimConfig:
    name: str = opt("adam", "Optimizer", "Update rule.", choices=OPTIMIZERS)
    lr: float = opt(1e-3, "Learning rate", "Step size (the peak rate for schedules with warmup "
                    "or one-cycle).", min=0.0, max=10.0, min_exclusive=True)
    weight_decay: float = opt(0.0, "Weight decay", "Passed to the optimizer: decoupled decay for "
                              "AdamW, an L2 term folded into the gradient for the others.",
                              min=0.0, max=1.0)
    momentum: float = opt(0.9, "Momentum", "Momentum for SGD and RMSprop.", min=0.0, max=1.0,
                          max_exclusive=True)
    nesterov: bool = opt(False, "Nesterov", "Nesterov momentum (SGD with momentum > 0 only).")
    betas: list[float] = opt([0.9, 0.999], "Betas", "Adam/AdamW moment coefficients.",
                             item_min=0.0, item_max=1.0, item_max_exclusive=True,
                             min_items=2, max_items=2)
    lbfgs_history: int = opt(10, "L-BFGS history", "Update history size for L-BFGS.",
                             min=1, max=1000)


@dataclass
class ScheduleConfig:
    name: str = opt("constant", "Schedule", "Learning-rate schedule; all step per optimizer "
                    "step except plateau, which steps per epoch on the monitored metric.",
                    choices=SCHEDULES)
    warmup_steps: int = opt(0, "Warmup steps", "Linear warmup from lr/100 to lr over this many "
                            "optimizer steps before the schedule (not with plateau; for "
                            "onecycle it sets the rising phase).", min=0, max=10_000_000)
    step_size: int = opt(10, "Step size (epochs)", "Epochs between decays (step).",
                         min=1, max=100_000)
    milestones: list[int] = opt([30, 60], "Milestones (epochs)", "Epochs at which the rate "
                                "decays (multistep).", item_min=1, item_max=1_000_000,
                                max_items=1000)
    gamma: float = opt(0.1, "Decay factor", "Multiplier at each decay (step, multistep, plateau); "
                       "per epoch for exponential.", min=0.0, max=1.0, min_exclusive=True)
    min_lr: float = opt(0.0, "Minimum LR", "Floor of the rate (cosine, warmup_cosine, plateau).",
                        min=0.0, max=10.0)
    patience: int = opt(5, "Plateau patience", "Epochs without improvement before a plateau "
                        "decay.", min=0, max=10_000)


@dataclass
class RegularizationConfig:
    l1: float = opt(0.0, "L1 penalty", "Adds l1 * sum(|w|) over the weights to the loss "
                    "(drives weights to exactly zero).", min=0.0, max=10.0)
    l2: float = opt(0.0, "L2 penalty", "Adds l2/2 * sum(w^2) over the weights to the loss, so it "
                    "also flows through the optimizer's moment estimates (unlike decoupled "
                    "weight decay).", min=0.0, max=10.0)
    label_smoothing: float = opt(0.0, "Label smoothing", "Cross-entropy target smoothing.",
                                 min=0.0, max=1.0, max_exclusive=True)
    early_stopping_patience: int = opt(0, "Early stopping patience", "Epochs without improvement "
                                       "before stopping; 0 turns early stopping off. The best "
                                       "weights are restored.", min=0, max=10_000)
    early_stopping_min_delta: float = opt(0.0, "Min improvement", "Smallest change of the "
                                          "monitored metric that counts as improvement.",
                                          min=0.0, max=1e6)
    early_stopping_metric: str = opt("val_loss", "Monitored metric", "Validation metric watched "
                                     "by early stopping and the plateau schedule, and "
                                     "reported as the run's best.",
                                     choices=MONITORED)


@dataclass
class PrecisionConfig:
    amp: str = opt("off", "Mixed precision", "Autocast: fp16 (CUDA, with a gradient scaler) or "
                   "bf16 (CUDA and CPU).", choices=("off", "fp16", "bf16"))
    channels_last: bool = opt(False, "Channels last", "NHWC memory format for convolutional "
                              "models (faster on tensor cores).")
    compile: bool = opt(False, "torch.compile", "Compile the model; the first steps are slow "
                        "while it compiles.")


@dataclass
class TrainConfig:
    epochs: int = opt(10, "Epochs", "Passes over the training data.", min=1, max=1_000_000)
    max_steps: int = opt(0, "Max steps", "Stop after this many optimizer steps; 0 means no "
                         "limit.", min=0, max=10**12)
    grad_accum_steps: int = opt(1, "Gradient accumulation", "Micro-batches per optimizer step: "
                                "k batches of b act as one batch of k*b.", min=1, max=100_000)
    grad_clip_norm: float = opt(0.0, "Clip grad norm", "Rescale gradients to this total L2 norm; "
                                "0 turns it off.", min=0.0, max=1e9)
    grad_clip_value: float = opt(0.0, "Clip grad value", "Clamp each gradient element to "
                                 "[-v, v]; 0 turns it off.", min=0.0, max=1e9)
    loss: str = opt("auto", "Loss", "auto picks cross_entropy for classification and mse for "
                    "regression.", choices=("auto",) + CLASSIFICATION_LOSSES + REGRESSION_LOSSES)
    seed: int = opt(0, "Seed", "Seeds the split, the initialization, shuffling and dropout.",
                    min=0, max=2**32 - 1)
    device: str = opt("auto", "Device", "auto picks CUDA, then MPS, then the CPU.",
                      choices=("auto", "cpu", "cuda", "mps"), pattern=r"cuda:[0-9]{1,3}",
                      pattern_hint="cuda:N")
    checkpoint_every: int = opt(1, "Checkpoint every (epochs)", "Epochs between checkpoints; one "
                                "is also written at the end and on stop. 0 writes only those.",
                                min=0, max=100_000)
    log_every: int = opt(10, "Log every (steps)", "Optimizer steps between metric readings; "
                         "reading values off the device syncs it, so not every step.",
                         min=1, max=1_000_000)


@dataclass
class MonitorConfig:
    interval: float = opt(0.5, "Hardware sampling interval (s)", "Seconds between readings of "
                          "GPU utilization, memory, power and temperature (NVML), torch memory "
                          "and CPU/RAM while the run trains; stored with the run.",
                          min=0.1, max=10.0)


@dataclass
class DistillConfig:
    teacher: str = opt("", "Teacher", "Knowledge distillation: a trained run (its id or name in "
                       "the workspace) or a .safetensors export whose model teaches this one. "
                       "The loss becomes alpha * T^2 * KL(teacher || student) + (1 - alpha) * "
                       "task loss at temperature T. Empty: no distillation.")
    alpha: float = opt(0.7, "Teacher weight (alpha)", "Share of the loss that follows the "
                       "teacher's softened outputs; the rest is the task loss.",
                       min=0.0, max=1.0)
    temperature: float = opt(4.0, "Temperature", "Softens both models' outputs before they are "
                             "compared; 2 to 8 is usual.", min=0.0, max=100.0,
                             min_exclusive=True)


SECTIONS = {
    "data": DataConfig,
    "model": ModelConfig,
    "optim": OptimConfig,
    "schedule": ScheduleConfig,
    "regularization": RegularizationConfig,
    "precision": PrecisionConfig,
    "train": TrainConfig,
    "monitor": MonitorConfig,
    "distill": DistillConfig,
}

# How the desktop form groups the options: by what a person decides together,
# which is not always the TOML section a key lives in.
FORM_GROUPS = {
    "Data": ["data.*"],
    "Model": ["model.*"],
    "Optimizer & schedule": ["optim.*", "schedule.*", "train.loss"],
    "Regularization": ["regularization.*"],
    "Distillation": ["distill.*"],
    "Precision & efficiency": ["precision.amp", "train.grad_accum_steps", "train.grad_clip_norm",
                               "train.grad_clip_value", "precision.channels_last",
                               "precision.compile"],
    "Training": ["train.epochs", "train.max_steps", "train.device", "train.seed",
                 "train.checkpoint_every", "train.log_every", "monitor.interval"],
}


def form_groups() -> dict[str, list[str]]:
    """FORM_GROUPS with the section wildcards expanded; every key appears exactly once."""
    keys = all_keys()
    groups = {}
    for name, patterns in FORM_GROUPS.items():
        groups[name] = [k for p in patterns
                        for k in ([x for x in keys if x.startswith(p[:-1])] if p.endswith("*")
                                  else [p])]
    return groups


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    regularization: RegularizationConfig = field(default_factory=RegularizationConfig)
    precision: PrecisionConfig = field(default_factory=PrecisionConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)

    # --- conversion -------------------------------------------------------
    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, *, validate: bool = True) -> RunConfig:
        """Build from nested dicts (as TOML gives them); unknown keys are errors."""
        errors: list[str] = []
        if not isinstance(data, dict):
            raise ConfigError("a run configuration must be a table of sections")
        sections = {}
        for name, value in data.items():
            if name not in SECTIONS:
                errors.append(_unknown(name, SECTIONS))
                continue
            if not isinstance(value, dict):
                errors.append(f"{name} must be a table of options (got {show(value)})")
                continue
            section_cls = SECTIONS[name]
            kwargs = {}
            fields = {f.name: f for f in dataclasses.fields(section_cls)}
            for key, raw in value.items():
                if key not in fields:
                    errors.append(_unknown(f"{name}.{key}", all_keys()))
                    continue
                try:
                    kwargs[key] = coerce(f"{name}.{key}", raw)
                except ConfigError as exc:
                    errors.extend(exc.messages)
            sections[name] = section_cls(**kwargs)
        if errors:
            raise ConfigError(errors)
        cfg = cls(**sections)
        if validate:
            cfg.validate()
        return cfg

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    @classmethod
    def from_toml(cls, text: str, *, validate: bool = True) -> RunConfig:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"not valid TOML: {exc}") from None
        except (ValueError, RecursionError) as exc:  # raised from inside tomllib, unpositioned
            raise ConfigError(_unreadable_toml(text, exc)) from None
        return cls.from_dict(data, validate=validate)

    @classmethod
    def load(cls, path: str | Path, *, validate: bool = True) -> RunConfig:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"config file {path} not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from None
        try:
            return cls.from_toml(text, validate=validate)
        except ConfigError as exc:
            raise ConfigError([f"{path}: {m}" for m in exc.messages]) from None

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_toml(), encoding="utf-8")

    # --- access by dotted key --------------------------------------------
    def get(self, key: str) -> Any:
        section, name = _split_key(key)
        return getattr(getattr(self, section), name)

    def set(self, key: str, value: Any) -> None:
        """Set one option from a typed value or its text (as typed after --set)."""
        section, name = _split_key(key)
        if isinstance(value, str) and field_type(key) is not str:
            value = parse_text(value, key)
        setattr(getattr(self, section), name, coerce(key, value))

    def with_overrides(self, overrides: list[str]) -> RunConfig:
        """A copy with ``key=value`` overrides applied and validated."""
        cfg = self.copy()
        errors = []
        for item in overrides:
            key, sep, value = item.partition("=")
            if not sep:
                errors.append(f"override {show(item)} must look like key=value, "
                              f"e.g. optim.lr=3e-4")
                continue
            try:
                cfg.set(key.strip(), value.strip())
            except ConfigError as exc:
                errors.extend(exc.messages)
        if errors:
            raise ConfigError(errors)
        cfg.validate()
        return cfg

    def copy(self) -> RunConfig:
        return RunConfig.from_dict(self.to_dict(), validate=False)

    # --- validation --------------------------------------------------------
    def validate(self) -> None:
        """Check every value and the rules between them; raise ConfigError listing all problems."""
        errors = []
        for key in all_keys():
            errors.extend(check_value(key, self.get(key)))
        errors.extend(self._cross_checks())
        if errors:
            raise ConfigError(errors)

    def errors(self) -> list[str]:
        try:
            self.validate()
        except ConfigError as exc:
            return exc.messages
        return []

    @property
    def task(self) -> str:
        return "regression" if self.data.dataset in REGRESSION_DATASETS else "classification"

    def _cross_checks(self) -> list[str]:
        errs = []
        o, s, t, d, m = self.optim, self.schedule, self.train, self.data, self.model
        if o.nesterov and (o.name != "sgd" or o.momentum <= 0):
            errs.append(f"optim.nesterov=true needs optim.name='sgd' with optim.momentum > 0 "
                        f"(got name={show(o.name)}, momentum={o.momentum})")
        if o.name == "lbfgs":
            if t.grad_accum_steps != 1:
                errs.append(f"train.grad_accum_steps must be 1 with optim.name='lbfgs' (got "
                            f"{t.grad_accum_steps}): L-BFGS re-evaluates the loss in a closure")
            if o.weight_decay:
                errs.append(f"optim.weight_decay must be 0 with optim.name='lbfgs' (got "
                            f"{o.weight_decay}): use regularization.l2 instead")
            if self.precision.amp != "off":
                errs.append(f"precision.amp must be 'off' with optim.name='lbfgs' "
                            f"(got {show(self.precision.amp)})")
        if list(s.milestones) != sorted(set(s.milestones)):
            errs.append(f"schedule.milestones must be strictly increasing "
                        f"(got {show(s.milestones)})")
        if s.name == "plateau" and s.warmup_steps:
            errs.append(f"schedule.warmup_steps must be 0 with schedule.name='plateau' "
                        f"(got {s.warmup_steps}): pick warmup_cosine for a warmup")
        if s.name == "plateau" and s.gamma >= 1.0:
            errs.append(f"schedule.gamma must be < 1 with schedule.name='plateau' (got "
                        f"{s.gamma}): the rate is multiplied by it on a plateau, so 1 never "
                        f"lowers it")
        if s.name in ("cosine", "warmup_cosine", "plateau") and s.min_lr > o.lr:
            errs.append(f"schedule.min_lr ({s.min_lr}) must not exceed optim.lr ({o.lr}) with "
                        f"schedule.name={show(s.name)}: the floor would raise the rate; lower "
                        f"schedule.min_lr")
        task = self.task
        allowed = (CLASSIFICATION_LOSSES if task == "classification" else REGRESSION_LOSSES)
        if t.loss != "auto" and t.loss not in allowed:
            errs.append(f"train.loss={show(t.loss)} does not fit the {task} dataset "
                        f"{show(d.dataset)}: use one of auto, {', '.join(allowed)}")
        metric = self.regularization.early_stopping_metric
        metrics = ("val_loss", "val_accuracy") if task == "classification" else \
            ("val_loss", "val_mse", "val_mae", "val_r2")
        if metric not in metrics:
            errs.append(f"regularization.early_stopping_metric={show(metric)} is not measured for "
                        f"{task}: use one of {', '.join(metrics)}")
        if m.arch == "cnn" and d.dataset not in IMAGE_DATASETS:
            errs.append(f"model.arch='cnn' needs image data (data.dataset in "
                        f"{', '.join(IMAGE_DATASETS)}; got {show(d.dataset)}): use 'mlp' or "
                        f"'resnet'")
        if self.distill.teacher:
            if task != "classification":
                errs.append(f"distill.teacher needs a classification dataset: distillation "
                            f"matches class probabilities, and {show(d.dataset)} is {task}")
            if o.name == "lbfgs":
                errs.append("distill.teacher does not work with optim.name='lbfgs' (its "
                            "closure re-evaluates the task loss alone): use adamw")
        if d.dataset == "synthetic" and d.n_classes > d.n_features:
            errs.append(f"data.n_classes ({d.n_classes}) must not exceed data.n_features "
                        f"({d.n_features}) for synthetic data")
        return errs


# --- field helpers ---------------------------------------------------------

def all_keys() -> list[str]:
    return [f"{s}.{f.name}" for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)]


def field_meta(key: str) -> dict:
    section, name = _split_key(key)
    return _fields(SECTIONS[section])[name].metadata


def field_type(key: str) -> type:
    section, name = _split_key(key)
    return get_type_hints(SECTIONS[section])[name]


def field_default(key: str) -> Any:
    return RunConfig().get(key)


def _fields(cls) -> dict:
    return {f.name: f for f in dataclasses.fields(cls)}


def _split_key(key: str) -> tuple[str, str]:
    section, _, name = key.partition(".")
    if section not in SECTIONS or name not in _fields(SECTIONS[section]):
        raise ConfigError(_unknown(key, all_keys()))
    return section, name


def _unknown(key: str, known) -> str:
    hint = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    if not hint:  # a right option name under the wrong section, or with none
        name = key.split(".", 1)[-1]
        hint = [k for k in known if k.split(".", 1)[-1] == name][:1]
    msg = f"unknown key {show(key)}"
    return msg + (f": did you mean {hint[0]!r}?" if hint else "")


# Error messages show values through this: short, and safe for what Python cannot
# print (an int beyond its 4,300-digit limit) or recurse through (deep nesting).
_SHOW = reprlib.Repr()
_SHOW.maxlevel, _SHOW.maxlist, _SHOW.maxtuple = 3, 8, 8
_SHOW.maxstring, _SHOW.maxother, _SHOW.maxlong = 60, 60, 40


def show(value: Any) -> str:
    """A value as an error message quotes it: never huge, never raising."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**40:
        try:
            digits = len(str(abs(value)))
        except ValueError:  # past the int-str limit: count them from the logarithm
            digits = int(math.log10(abs(value))) + 1
        return f"a {digits}-digit number"
    try:
        return _SHOW.repr(value)
    except (ValueError, RecursionError):
        return f"a {type(value).__name__} too large to show"


def parse_text(text: str, key: str = "the value") -> Any:
    """Turn override text into a value: TOML syntax first, then yes/no words, else the string.

    Text TOML accepts but Python cannot hold (a decimal integer over the int-str
    digit limit, lists nested past the recursion limit) is a ConfigError naming ``key``.
    """
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        pass
    except (ValueError, RecursionError) as exc:
        raise ConfigError(_unreadable(key, text, exc)) from None
    low = text.lower()
    if low in ("yes", "on"):
        return True
    if low in ("no", "off"):
        return False
    if "," in text:
        return [parse_text(p.strip(), key) for p in text.split(",") if p.strip()]
    return text


def _unreadable(key: str, text: str, exc: Exception) -> str:
    """Why tomllib could not hold ``text`` (a ValueError or RecursionError from inside it)."""
    if isinstance(exc, RecursionError):
        try:
            expected = _type_name(field_type(key))
        except ConfigError:
            expected = "a flat value"
        return f"{key} nests arrays too deeply to read: give {expected}"
    if "digits" in str(exc):  # "Exceeds the limit (4300 digits) for integer string conversion"
        digits = max((len(m.replace("_", "")) for m in re.findall(r"\d[\d_]*", text)), default=0)
        return f"{key} is too large (got a {digits}-digit number){_limit(key)}"
    return f"{key} cannot be read ({exc})"


def _limit(key: str) -> str:
    """': must be <= N' for a field with an upper bound ('' for an unknown key or none)."""
    try:
        meta = field_meta(key)
    except ConfigError:
        return ""
    if meta["item_max"] is not None:
        return f": items must be {'<' if meta['item_max_exclusive'] else '<='} {meta['item_max']}"
    if meta["max"] is not None:
        return f": must be {'<' if meta['max_exclusive'] else '<='} {meta['max']}"
    return ""


def _unreadable_toml(text: str, exc: Exception) -> str:
    """The line and key where tomllib failed with an error that carries no position."""
    if isinstance(exc, RecursionError):
        found = re.search(r"(?:[\[{]\s*){50,}", text)
    else:
        found = re.search(r"\d[\d_]{999,}", text)
    if not found:
        return f"cannot read the file: {_unreadable('a value', text, exc)}"
    line = text.count("\n", 0, found.start()) + 1
    key = _key_before(text[:found.start()])
    return f"line {line}: {_unreadable(key, found.group(), exc)}"


def _key_before(text: str) -> str:
    """The dotted key whose value runs at the end of ``text`` (TOML before a position)."""
    name = None
    for line in reversed(text.split("\n")):
        header = re.fullmatch(r"\s*\[\[?\s*([\w.-]+)\s*\]\]?\s*(#.*)?", line)
        if header:
            return f"{header.group(1)}.{name}" if name else header.group(1)
        assignment = re.match(r"\s*([\w.-]+)\s*=", line)
        if assignment and name is None:
            name = assignment.group(1)
    return name or "a value"


def _type_name(tp) -> str:
    if get_origin(tp) is list:
        item = {int: "integers", float: "numbers"}.get(get_args(tp)[0], "values")
        return f"a list of {item}"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}[tp]


def coerce(key: str, value: Any) -> Any:
    """Convert a TOML/override value to the field's type or raise a ConfigError."""
    tp = field_type(key)

    def bad() -> ConfigError:
        return ConfigError(f"{key} must be {_type_name(tp)} (got {show(value)})")

    if get_origin(tp) is list:
        item_tp = get_args(tp)[0]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise bad()
        return [_coerce_scalar(key, item_tp, v, bad) for v in value]
    return _coerce_scalar(key, tp, value, bad)


def _coerce_scalar(key, tp, value, bad):
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad()
    if isinstance(value, bool):
        raise bad()
    if tp is int:
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise bad()
    if tp is float:
        if isinstance(value, (int, float)):
            try:
                return float(value)
            except OverflowError:  # an int beyond the largest float
                raise ConfigError(f"{key} is too large (got {show(value)}){_limit(key)}") from None
        raise bad()
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad()
    raise bad()  # pragma: no cover


def check_value(key: str, value: Any) -> list[str]:
    """Range, choice and pattern checks of one field, naming key, value and what is allowed."""
    meta = field_meta(key)
    if isinstance(value, list):
        return _check_list(key, meta, value)
    if isinstance(value, str) and "\x00" in value:
        return [f"{key} must not contain a NUL character (got {show(value)})"]
    errs = []
    if meta["choices"] is not None:
        pattern = meta["pattern"]
        if value not in meta["choices"] and not (pattern and re.fullmatch(pattern, str(value))):
            allowed = ", ".join(repr(c) for c in meta["choices"])
            if meta["pattern_hint"]:
                allowed += f" or {meta['pattern_hint']}"
            hint = difflib.get_close_matches(str(value), meta["choices"], n=1)
            errs.append(f"{key} must be one of {allowed} (got {show(value)})"
                        + (f": did you mean {hint[0]!r}?" if hint else ""))
        return errs
    if isinstance(value, str):
        if meta["pattern"] and not re.fullmatch(meta["pattern"], value):
            errs.append(f"{key} must be empty or {meta['pattern_hint']} (got {show(value)})")
        return errs
    lo, hi = meta["min"], meta["max"]
    if isinstance(value, float) and not math.isfinite(value):
        return [f"{key} must be a finite number (got {show(value)})"]
    if lo is not None and (value < lo or (meta["min_exclusive"] and value == lo)):
        op = ">" if meta["min_exclusive"] else ">="
        errs.append(f"{key} must be {op} {lo} (got {show(value)})")
    if hi is not None and (value > hi or (meta["max_exclusive"] and value == hi)):
        op = "<" if meta["max_exclusive"] else "<="
        errs.append(f"{key} must be {op} {hi} (got {show(value)})")
    return errs


def _check_list(key: str, meta: dict, value: list) -> list[str]:
    least, most = meta["min_items"], meta["max_items"]
    if (least is not None and len(value) < least) or (most is not None and len(value) > most):
        count = (f"{least}" if least == most else f"at least {least}" if most is None
                 else f"at most {most}" if least is None else f"{least} to {most}")
        return [f"{key} must list {count} values (got {len(value)})"]
    lo, hi, below = meta["item_min"], meta["item_max"], meta["item_max_exclusive"]

    def out(v) -> bool:
        return ((isinstance(v, float) and not math.isfinite(v))
                or (lo is not None and v < lo)
                or (hi is not None and (v > hi or (below and v == hi))))

    if (lo is not None and not value) or any(out(v) for v in value):
        bounds = ([f">= {lo}"] if lo is not None else []) + \
                 ([f"{'<' if below else '<='} {hi}"] if hi is not None else [])
        what = "a non-empty list of values" if lo is not None else "a list of values"
        return [f"{key} must be {what} {' and '.join(bounds)} (got {show(value)})"]
    return []
