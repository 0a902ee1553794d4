"""The ``[search]`` section and its ``[search.space]``: reading, checking and sampling them.

The space's keys are dotted run options; each names a range (``{ low, high, log,
step }``, for int and float options) or a list of ``choices`` (any option, lists
included). Every bound and choice is checked by the option's own validation, so a
space can only produce values the option accepts; the rules between options are
checked on each sampled config. Optuna sees each key as one parameter; a choice
that is not a plain scalar (``model.hidden = [128, 64]``) is shown to it as its
TOML text, so the study stays readable in optuna-dashboard.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass
from typing import Any

import tomli_w

from engine.config import (
    ConfigError,
    RunConfig,
    _literal,
    all_keys,
    check_value,
    coerce,
    field_default,
    field_type,
)
from engine.run_options import SearchConfig
from engine.show import show

RANGE_KEYS = ("low", "high", "log", "step")
# The metrics each task's validation measures (engine.training.validation).
TASK_METRICS = {"classification": ("val_loss", "val_accuracy"),
                "regression": ("val_loss", "val_mse", "val_mae", "val_r2")}
ALWAYS_SAVED = ("objective", "direction")


@dataclass(frozen=True)
class Param:
    """One searched option: a float or int range, or a list of choices."""

    key: str
    kind: str  # "float" | "int" | "choice"
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple = ()

    @property
    def labels(self) -> tuple:
        """The choices as Optuna holds them: scalars as they are, lists as TOML text."""
        return tuple(_label(c) for c in self.choices)

    def suggest(self, trial) -> Any:
        """The value of this option for an Optuna trial, as the run config takes it."""
        if self.kind == "float":
            return trial.suggest_float(self.key, self.low, self.high, log=self.log,
                                       step=self.step)
        if self.kind == "int":
            return trial.suggest_int(self.key, self.low, self.high, step=self.step or 1,
                                     log=self.log)
        label = trial.suggest_categorical(self.key, self.labels)
        return self.choices[self.labels.index(label)]

    def grid(self) -> list | None:
        """Every value, for the grid sampler; None for a continuous range."""
        if self.kind == "choice":
            return list(self.labels)
        if self.kind == "int":
            return list(range(self.low, self.high + 1, self.step or 1))
        if self.step is None:
            return None
        count = int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1
        return [self.low + i * self.step for i in range(count)]


def _label(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return _literal(value)


def _where(key: str) -> str:
    return f"search.space.{_quoted(key)}"


def _quoted(key: str) -> str:
    return tomli_w.dumps({key: 0}).split(" = ")[0]


# --- reading --------------------------------------------------------------

def parse_search(raw: Any) -> SearchConfig:
    """The [search] table as TOML gives it, every value and the space checked; raises a
    ConfigError listing each problem by its key."""
    if not isinstance(raw, dict):
        raise ConfigError(f"search must be a table of options (got {show(raw)})")
    errors: list[str] = []
    names = [f.name for f in dataclasses.fields(SearchConfig) if f.name != "space"]
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name == "space":
            continue
        key = f"search.{name}"
        if name not in names:
            hint = difflib.get_close_matches(key, [f"search.{n}" for n in names + ["space"]], 1)
            errors.append(f"unknown key {show(key)}" + (f": did you mean {hint[0]!r}?"
                                                        if hint else ""))
            continue
        try:
            values[name] = coerce(key, value)
        except ConfigError as exc:
            errors.extend(exc.messages)
            continue
        errors.extend(check_value(key, values[name]))
    space = raw.get("space", {})
    if not isinstance(space, dict):
        errors.append(f"search.space must be a table of dotted run options, e.g. "
                      f"\"optim.lr\" = {{ low = 1e-5, high = 0.1, log = true }} "
                      f"(got {show(space)})")
        space = {}
    for key, spec in space.items():
        errors.extend(_param(key, spec)[1])
    if errors:
        raise ConfigError(errors)
    return SearchConfig(**values, space={k: dict(v) for k, v in space.items()})


def params(search: SearchConfig) -> list[Param]:
    """The searched options of a checked [search] (parse_search), in the file's order."""
    return [_param(key, spec)[0] for key, spec in search.space.items()]


def spec_errors(key: str, spec: Any) -> list[str]:
    """What is wrong with one entry of [search.space] (``spec`` as TOML gives it), each
    message naming the key; [] when it is a searchable range or list of choices."""
    return _param(key, spec)[1]


def _param(key: str, spec: Any) -> tuple[Param | None, list[str]]:
    where = _where(key)
    if key not in all_keys():
        hint = difflib.get_close_matches(key, all_keys(), n=1, cutoff=0.6)
        return None, [f"{where}: unknown run option {show(key)}"
                      + (f": did you mean {hint[0]!r}?" if hint else ": give a dotted key "
                         "such as \"optim.lr\" (`torchwork options` lists them)")]
    example = "{ low = 1e-5, high = 0.1, log = true } or { choices = [32, 64] }"
    if not isinstance(spec, dict):
        return None, [f"{where} must be a table such as {example} (got {show(spec)})"]
    unknown = sorted(set(spec) - {"choices", *RANGE_KEYS})
    if unknown or ("choices" in spec and set(spec) & set(RANGE_KEYS)) or not spec:
        return None, [f"{where} must be {example}: either a range or choices (got keys "
                      f"{', '.join(spec) or 'none'})"]
    if "choices" in spec:
        return _choices(key, spec["choices"])
    return _range(key, spec)


def _choices(key: str, choices: Any) -> tuple[Param | None, list[str]]:
    where = _where(key)
    if not isinstance(choices, list) or not choices:
        return None, [f"{where}: choices must be a non-empty list of values for {key} "
                      f"(got {show(choices)})"]
    values, errors = [], []
    for choice in choices:
        try:
            value = coerce(key, choice)
        except ConfigError as exc:
            errors += [f"{where}: choice {show(choice)}: {m}" for m in exc.messages]
            continue
        problems = check_value(key, value)
        errors += [f"{where}: choice {show(choice)}: {m}" for m in problems]
        values.append(value)
    if errors:
        return None, errors
    return Param(key, "choice", choices=tuple(values)), []


def _range(key: str, spec: dict) -> tuple[Param | None, list[str]]:
    where = _where(key)
    tp = field_type(key)
    if tp not in (int, float):
        return None, [f"{where}: {key} is {type(field_default(key)).__name__}, not a number: "
                      f"give {{ choices = [...] }}"]
    if "low" not in spec or "high" not in spec:
        return None, [f"{where}: a range needs both low and high (got {', '.join(spec)})"]
    errors = []
    bounds = {}
    for end in ("low", "high"):
        try:
            bounds[end] = coerce(key, spec[end])
        except ConfigError as exc:
            errors += [f"{where}: {end}: {m}" for m in exc.messages]
            continue
        errors += [f"{where}: {end}: {m}" for m in check_value(key, bounds[end])]
    log, step = spec.get("log", False), spec.get("step")
    if not isinstance(log, bool):
        errors.append(f"{where}: log must be true or false (got {show(log)})")
    if step is not None:
        numeric = isinstance(step, (int, float)) and not isinstance(step, bool)
        if not numeric or (tp is int and not float(step).is_integer()) or step <= 0 \
                or not math.isfinite(step):
            kind = "a whole number" if tp is int else "a number"
            errors.append(f"{where}: step must be {kind} > 0 (got {show(step)})")
        elif log is True:
            errors.append(f"{where}: step and log = true cannot go together (Optuna samples "
                          f"a log range continuously): drop one")
        else:
            step = tp(step)
    if errors:
        return None, errors
    low, high = bounds["low"], bounds["high"]
    if low >= high:
        return None, [f"{where}: low ({low}) must be < high ({high})"]
    if log and low <= 0:
        return None, [f"{where}: log = true needs low > 0 (got {low})"]
    kind = "int" if tp is int else "float"
    return Param(key, kind, low=low, high=high, log=log, step=step), []


# --- rules with the run config ---------------------------------------------

def search_errors(cfg: RunConfig) -> list[str]:
    """What a search of ``cfg`` cannot do, as RunConfig.validate reports it."""
    search, errors = cfg.search, []
    if not search.space:
        errors.append("search.space names no option to search: add one, e.g. "
                      "\"optim.lr\" = { low = 1e-5, high = 0.1, log = true }")
    task = cfg.task
    if task in TASK_METRICS and search.objective not in TASK_METRICS[task]:
        errors.append(f"search.objective={show(search.objective)} is not measured for "
                      f"{task}: use one of {', '.join(TASK_METRICS[task])}")
    if search.sampler == "grid":
        continuous = [p.key for p in params(search) if p.grid() is None]
        if continuous:
            errors.append(f"search.sampler='grid' needs values it can list: "
                          f"{', '.join(_where(k) for k in continuous)} is a continuous "
                          f"range: give it a step or choices")
    return errors


def search_only_errors(cfg: RunConfig) -> list[str]:
    """What `torchwork search` refuses though `torchwork run` of the config is fine."""
    if "train.cv_folds" in cfg.search.space or cfg.train.cv_folds:
        return ["search: each trial is one run, so train.cv_folds must be 0 and not searched "
                "(`torchwork run` trains the cross-validation)"]
    return []


def trial_config(base: RunConfig, values: dict[str, Any]) -> RunConfig:
    """The run config of one trial: ``base`` with the sampled values, without [search];
    a ConfigError when the values break a rule between options."""
    cfg = base.copy()
    cfg.search = None
    for key, value in values.items():
        cfg.set(key, value)
    cfg.validate()
    return cfg


# --- writing ---------------------------------------------------------------

def search_toml(search: SearchConfig) -> str:
    """[search] and [search.space] as a saved file writes them: the options set, and each
    searched option on one line."""
    default = SearchConfig()
    lines = ["[search]"]
    for f in dataclasses.fields(SearchConfig):
        value = getattr(search, f.name)
        if f.name != "space" and (f.name in ALWAYS_SAVED or value != getattr(default, f.name)):
            lines.append(f"{f.name} = {_literal(value)}")
    lines += ["", "[search.space]"]
    for key, spec in search.space.items():
        inner = ", ".join(f"{name} = {_literal(value)}" for name, value in spec.items())
        lines.append(f"{_quoted(key)} = {{ {inner} }}")
    return "\n".join(lines) + "\n"
