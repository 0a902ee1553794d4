"""The Search dock's model of a `[search]` section: its settings and its space, as plain data.

No Qt here. The dock's form edits a ``SearchSpec``; ``search_toml`` writes it
with the form's configuration into the TOML that `torchwork search` reads, and
``spec_from_toml`` reads the section back. The space is checked the way the
engine checks any value (``engine.config.check_value``), so a bound or a choice
that no run could take is refused with a message naming its key before a
process is started.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import tomli_w
import tomllib

from engine.config import ConfigError, RunConfig, all_keys, field_type
from engine.experiments.space import parse_search, spec_errors

OBJECTIVES = ("val_accuracy", "val_loss", "val_mse", "val_mae", "val_r2")
DIRECTIONS = ("maximize", "minimize")
SAMPLERS = ("tpe", "random", "grid", "cmaes", "gp", "qmc")
PRUNERS = ("median", "hyperband", "successive_halving", "none")
KINDS = ("float", "int", "choice")
MINIMIZED = ("val_loss", "val_mse", "val_mae")  # the objectives whose natural direction is down


class SpecError(ValueError):
    """A search section that cannot be used; ``messages`` name the key of each problem."""

    def __init__(self, messages: list[str]):
        super().__init__("; ".join(messages))
        self.messages = messages


@dataclass
class Param:
    """One dimension of the space: a range (``float``/``int``, optionally ``log`` and
    ``step``) or a list of ``choices``."""
    kind: str = "float"
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: list = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "choice":
            return {"choices": list(self.choices)}
        cast = int if self.kind == "int" else float
        out: dict[str, Any] = {"low": cast(self.low), "high": cast(self.high)}
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = cast(self.step)
        return out

    @classmethod
    def from_dict(cls, key: str, data: Any) -> Param:
        where = f'search.space."{key}"'
        if not isinstance(data, dict):
            raise SpecError([f"{where} must be a table such as {{ low = 1e-4, high = 1e-1 }} "
                             f"or {{ choices = [32, 64] }} (got {data!r})"])
        unknown = set(data) - {"low", "high", "log", "step", "choices"}
        if unknown:
            raise SpecError([f"{where}: unknown field {sorted(unknown)[0]!r}; use low, high, "
                             f"log, step or choices"])
        if "choices" in data:
            return cls(kind="choice", choices=list(data["choices"]))
        low, high, step = data.get("low"), data.get("high"), data.get("step")
        is_int = all(isinstance(v, int) and not isinstance(v, bool)
                     for v in (low, high, step) if v is not None)
        return cls(kind="int" if is_int else "float", low=low, high=high,
                   log=bool(data.get("log", False)), step=step)


@dataclass
class SearchSpec:
    """The ``[search]`` section: what to optimize, how, and over which ``space``."""
    objective: str = "val_accuracy"
    direction: str = "maximize"
    sampler: str = "tpe"
    pruner: str = "median"
    n_trials: int = 20
    timeout: float = 0.0  # seconds; 0: no limit
    workers: int = 1
    seed: int | None = None
    storage: str = ""  # "": the workspace's search.sqlite
    study: str = ""
    heartbeat: int | None = None  # seconds; None: the search's default
    space: dict[str, Param] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"objective": self.objective, "direction": self.direction,
                               "sampler": self.sampler, "pruner": self.pruner,
                               "n_trials": int(self.n_trials), "workers": int(self.workers)}
        if self.timeout:
            out["timeout"] = float(self.timeout)
        if self.seed is not None:
            out["seed"] = int(self.seed)
        if self.storage:
            out["storage"] = self.storage
        if self.study:
            out["study"] = self.study
        if self.heartbeat is not None:
            out["heartbeat"] = int(self.heartbeat)
        out["space"] = {key: param.to_dict() for key, param in self.space.items()}
        return out

    @classmethod
    def from_dict(cls, data: dict) -> SearchSpec:
        if not isinstance(data, dict):
            raise SpecError([f"[search] must be a table of options (got {data!r})"])
        known = {"objective", "direction", "sampler", "pruner", "n_trials", "timeout",
                 "workers", "seed", "storage", "study", "heartbeat", "space"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SpecError([f"search.{unknown[0]} is not a search option; the options are "
                             f"{', '.join(sorted(known))}"])
        space = data.get("space", {})
        if not isinstance(space, dict):
            raise SpecError([f"search.space must be a table of dotted config keys "
                             f"(got {space!r})"])
        errors, params = [], {}
        for key, value in space.items():
            try:
                params[key] = Param.from_dict(key, value)
            except SpecError as exc:
                errors.extend(exc.messages)
        if errors:
            raise SpecError(errors)
        fields = {k: v for k, v in data.items() if k != "space"}
        return cls(**fields, space=params)

    def errors(self) -> list[str]:
        """Every problem of the section, each naming its key, the cause and what is allowed."""
        settings = {k: v for k, v in self.to_dict().items() if k != "space"}
        try:
            parse_search(settings)  # each setting as `torchwork search` checks it
            out = []
        except ConfigError as exc:
            out = list(exc.messages)
        if not self.space:
            out.append("search.space is empty: add a row (a config key and its range or "
                       "choices) to search over")
        for key, param in self.space.items():
            out.extend(param_errors(key, param))
        return out


def param_errors(key: str, param: Param) -> list[str]:
    """What is wrong with one dimension, by the engine's own checks of [search.space]
    (engine.experiments.space: the messages `torchwork search` gives), after what only the
    form can get wrong: a row without both bounds, or a fractional range of a whole-number
    option."""
    where = f'search.space."{key}"'
    if param.kind != "choice":
        if param.low is None or param.high is None:
            return [f"{where}: a range needs both low and high"]
        if param.kind == "float" and key in all_keys() and field_type(key) is int:
            return [f"{where}: {key} takes whole numbers; make the range int"]
    return spec_errors(key, param.to_dict())


def suggested_param(cfg: RunConfig, key: str) -> Param:
    """A first row for ``key`` around the form's value: a decade either side on a log
    scale for a positive float, half to double for an int, the value itself as a choice."""
    value, tp = cfg.get(key), field_type(key)
    if tp is float and isinstance(value, float) and value > 0:
        return Param("float", _round(value / 10), _round(value * 10), log=True)
    if tp is float:
        return Param("float", 0.0, 1.0)
    if tp is int and not isinstance(value, bool):
        low = max(1, value // 2) if value > 0 else 0
        return Param("int", low, max(low + 1, value * 2))
    return Param("choice", choices=[value])


def _round(x: float) -> float:
    return float(f"{x:.3g}") if math.isfinite(x) else x


def search_toml(cfg: RunConfig, spec: SearchSpec) -> str:
    """The file `torchwork search` reads: the form's configuration (its choices, as Save
    writes them) with ``spec`` as its [search] section."""
    data = tomllib.loads(cfg.to_toml(changes_only=True))
    section = spec.to_dict()
    space = section.pop("space")
    data["search"] = section
    rows = "".join(f"{_literal(key)} = {{ " + ", ".join(f"{name} = {_literal(value)}"
                                                     for name, value in param.items()) + " }\n"
                   for key, param in space.items())
    return ("# Torchwork search: the run configuration and the [search] section of the Search "
            "dock.\n\n" + tomli_w.dumps(data) + "\n[search.space]\n" + rows)


def spec_from_toml(text: str, origin: str = "the file") -> SearchSpec:
    """The [search] section of a TOML text (``origin`` names it in messages)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError([f"{origin} is not valid TOML: {exc}"]) from None
    if "search" not in data:
        raise SpecError([f"{origin} has no [search] section"])
    return SearchSpec.from_dict(data["search"])


def parse_choices(text: str, key: str) -> list:
    """``32, 64, 128`` or ``[64], [128, 64]`` or ``"adam", "sgd"`` as typed in the form."""
    text = text.strip()
    if not text:
        return []
    try:
        return tomllib.loads(f"v = [{text}]")["v"]
    except tomllib.TOMLDecodeError:
        if field_type(key) is str:  # bare words for a text option: adam, sgd
            return [w.strip() for w in text.split(",") if w.strip()]
        raise SpecError([f'search.space."{key}": choices {text!r} are not a list of values; '
                         f'write them as in TOML, e.g. 32, 64 or [64], [128, 64] or '
                         f'"adam", "sgd"']) from None


def format_choices(choices: list) -> str:
    """The form's text of ``choices``: what ``parse_choices`` reads back."""
    return ", ".join(_literal(c) for c in choices)


def _literal(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return tomli_w.dumps({"v": value})[len("v = "):].strip()
