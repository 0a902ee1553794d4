"""RunConfig: the one source of truth for every option of a training run.

Each field (declared in engine.run_options) carries its label, help text, range
and choices as metadata, so the desktop forms, the TOML files, the ``--set``
overrides and the validation all come from one declaration: a new option is one
edit there. Here: reading, converting and validating those values.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

import tomli_w

from engine import config_rules
from engine.files import write_text_atomic
from engine.relevance import applies, describe_rule
from engine.run_files import FILE_KEYS, file_problem
from engine.run_options import (
    ARCHS,
    CLASSIFICATION_LOSSES,
    DATASETS,
    IMAGE_DATASETS,
    MONITORED,
    OPTIMIZERS,
    REGRESSION_DATASETS,
    REGRESSION_LOSSES,
    SCHEDULES,
    SECTIONS,
    AugmentConfig,
    DataConfig,
    DistillConfig,
    ModelConfig,
    MonitorConfig,
    OptimConfig,
    PrecisionConfig,
    PreprocessConfig,
    RegularizationConfig,
    ScheduleConfig,
    SearchConfig,
    TrainConfig,
)
from engine.show import show

# The option declarations are read through this module as before.
__all__ = ["ARCHS", "CLASSIFICATION_LOSSES", "DATASETS", "IMAGE_DATASETS", "MONITORED",
           "OPTIMIZERS", "REGRESSION_DATASETS", "REGRESSION_LOSSES", "SCHEDULES", "SECTIONS",
           "AugmentConfig",
           "ConfigError", "DataConfig", "DistillConfig", "ModelConfig", "MonitorConfig",
           "OptimConfig", "PrecisionConfig", "PreprocessConfig", "RegularizationConfig",
           "RunConfig", "ScheduleConfig", "TrainConfig", "all_keys", "applies", "check_value",
           "coerce", "describe_rule", "field_default", "field_meta", "field_type", "file_problem",
           "form_groups", "parse_text", "show"]


class ConfigError(ValueError):
    """A configuration a run cannot start from; the message says what to change."""

    def __init__(self, messages: str | list[str]):
        self.messages = [messages] if isinstance(messages, str) else list(messages)
        super().__init__("; ".join(self.messages))


# How the desktop form groups the options: by what a person decides together,
# which is not always the TOML section a key lives in.
FORM_GROUPS = {
    "Data": ["data.*"],
    "Preprocessing": ["preprocess.*"],
    "Model": ["model.*"],
    "Optimizer & schedule": ["optim.*", "schedule.*", "train.loss", "train.class_weights"],
    "Regularization": ["regularization.*"],
    "Distillation": ["distill.*"],
    "Augmentation": ["augment.*"],
    "Precision & efficiency": ["precision.amp", "train.grad_accum_steps", "train.grad_clip_norm",
                               "train.grad_clip_value", "precision.channels_last",
                               "precision.compile", "precision.tf32", "train.threads"],
    "Training": ["train.epochs", "train.max_steps", "train.device", "train.seed",
                 "train.checkpoint_every", "train.log_every", "monitor.interval",
                 "train.cv_folds", "train.cv_fold", "train.strategy", "train.backend",
                 "train.sync_batchnorm"],
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
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    # [search] and [search.space]: read by `torchwork search` alone (engine.experiments).
    search: SearchConfig | None = None

    # --- conversion -------------------------------------------------------
    def to_dict(self) -> dict[str, dict[str, Any]]:
        data = dataclasses.asdict(self)
        if data["search"] is None:
            del data["search"]
        return data

    @classmethod
    def from_dict(cls, data: dict, *, validate: bool = True) -> RunConfig:
        """Build from nested dicts (as TOML gives them); unknown keys are errors."""
        errors: list[str] = []
        if not isinstance(data, dict):
            raise ConfigError("a run configuration must be a table of sections")
        sections = {}
        for name, value in data.items():
            if name == "search":
                from engine.experiments.space import parse_search

                try:
                    sections[name] = parse_search(value)
                except ConfigError as exc:
                    errors.extend(exc.messages)
                continue
            if name not in SECTIONS:
                errors.append(_unknown(name, [*SECTIONS, "search"]))
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

    def to_toml(self, *, changes_only: bool = False) -> str:
        """Every value, or (``changes_only``) what a person would write: see ``changes``."""
        if not changes_only:
            return tomli_w.dumps(self.to_dict())
        sections = [f"[{section}]\n" + "".join(f"{name} = {_literal(value)}\n"
                                               for name, value in values.items())
                    for section, values in self.changes().items()]
        if self.search is not None:
            from engine.experiments.space import search_toml

            sections.append(search_toml(self.search))
        return SAVED_HEADER + "\n".join(sections)

    def changes(self) -> dict[str, dict[str, Any]]:
        """The options that apply and differ from their defaults, plus the always-saved keys,
        by section: loading them gives this run back, and a reader sees only choices made."""
        default = RunConfig()
        out: dict[str, dict[str, Any]] = {}
        for key in all_keys():
            value = self.get(key)
            if key in ALWAYS_SAVED or (self.applies(key) and value != default.get(key)):
                section, name = key.split(".", 1)
                out.setdefault(section, {})[name] = value
        return out

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

    def save(self, path: str | Path, *, changes_only: bool = False) -> None:
        write_text_atomic(path, self.to_toml(changes_only=changes_only))

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

    def applies(self, key: str) -> bool:
        """Whether the run uses ``key`` at all under the other values (its relevant_when)."""
        return applies(field_meta(key)["relevant_when"], self.get)

    # --- validation --------------------------------------------------------
    def validate(self) -> None:
        """Check every value and the rules between them; raise ConfigError listing all problems."""
        errors = []
        for key in all_keys():
            # An option that does not apply is never read: only what no file may hold is refused.
            check = check_value if self.applies(key) else check_sane
            errors.extend(check(key, self.get(key)))
        errors.extend(config_rules.cross_checks(self))
        if self.search is not None:
            from engine.experiments.space import search_errors

            errors.extend(search_errors(self))
        if errors:
            raise ConfigError(errors)

    def errors(self) -> list[str]:
        try:
            self.validate()
        except ConfigError as exc:
            return exc.messages
        return []

    def file_errors(self) -> list[str]:
        """Files the run would read that are not there (the model file, its starting weights,
        an exported teacher). Kept out of ``validate``, which also reads stored runs whose
        files may since have moved; checked before a run is started."""
        found = [file_problem(key, value) for key in FILE_KEYS
                 if (value := self.get(key)) and self.applies(key)]
        return [problem for problem in found if problem]

    @property
    def task(self) -> str:
        """classification or regression; for a table, data.task, where 'auto' means the
        data decides: load_dataset resolves it (engine.data.settle_task)."""
        if self.data.dataset.startswith("table:"):
            return self.data.task
        return "regression" if self.data.dataset in REGRESSION_DATASETS else "classification"

    def task_errors(self, task: str) -> list[str]:
        """The rules that depend on the task: checked in validate when the config names the
        task, and by load_dataset once a table's data has decided it."""
        return config_rules.task_errors(self, task)

def _literal(value: Any) -> str:
    """A TOML value on one line (tomli_w puts each item of an array on its own line)."""
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return tomli_w.dumps({"v": value})[len("v = "):].strip()


# Saved files always name these, so a reader sees what the run trains, on what.
ALWAYS_SAVED = ("data.dataset", "model.arch")
SAVED_HEADER = ("# Torchwork run configuration: the options that differ from their defaults.\n"
                "# `torchwork options` lists every option with its default.\n\n")


# --- field helpers ---------------------------------------------------------

def all_keys() -> list[str]:
    return [f"{s}.{f.name}" for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)]


def field_meta(key: str) -> dict:
    """The metadata of a run option, or of a [search] option ("search.sampler")."""
    cls, name = _declared(key)
    return _fields(cls)[name].metadata


def field_type(key: str) -> type:
    cls, name = _declared(key)
    return _type_hints(cls)[name]


def _declared(key: str) -> tuple[type, str]:
    section, _, name = key.partition(".")
    if section == "search" and name in _fields(SearchConfig) and name != "space":
        return SearchConfig, name
    section, name = _split_key(key)
    return SECTIONS[section], name


@functools.cache
def _type_hints(cls) -> dict[str, Any]:
    """Resolved once per section: the form asks for each field's type on every read."""
    return get_type_hints(cls)


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
        item = {int: "integers", float: "numbers", str: "names"}.get(get_args(tp)[0], "values")
        return f"a list of {item}"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}[tp]


def coerce(key: str, value: Any) -> Any:
    """Convert a TOML/override value to the field's type or raise a ConfigError."""
    tp = field_type(key)

    def bad() -> ConfigError:
        return ConfigError(f"{key} must be {_type_name(tp)} (got {show(value)})")

    if get_origin(tp) is list:
        item_tp = get_args(tp)[0]
        if (isinstance(value, (int, float)) and not isinstance(value, bool)) or \
                (isinstance(value, str) and item_tp is str):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise bad()
        if item_tp is str:  # names such as nn.Sequential's layer "0" read as numbers
            value = [str(v) if isinstance(v, int) and not isinstance(v, bool) else v
                     for v in value]
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


def check_sane(key: str, value: Any) -> list[str]:
    """What no option may hold even where it does not apply: non-finite numbers, NUL, or
    more list items than it allows (a file is stored with every run)."""
    items = value if isinstance(value, list) else [value]
    most = field_meta(key)["max_items"]
    if most is not None and len(items) > most:
        return [f"{key} must list at most {most} values (got {len(items)})"]
    if any(isinstance(v, float) and not math.isfinite(v) for v in items):
        return [f"{key} must be finite numbers (got {show(value)})"]
    if isinstance(value, str) and "\x00" in value:
        return [f"{key} must not contain a NUL character (got {show(value)})"]
    return []


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
