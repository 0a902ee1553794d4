"""Runs as a table one can filter, sort and pick columns of: `torchwork runs` and `compare`.

A column or filter key is a record field (``status``, ``name``, ``best_val``,
``duration``, ``steps_per_s``, ``tags``, ...), an epoch metric (``val_accuracy``:
its last value) or a dotted config key (``optim.lr``). ``status``, ``tag``,
``study``, ``group``, ``kind`` and ``text`` compared with ``=`` are filtered in
SQL; the rest on the rows those return.
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass, fields
from typing import Any

from engine.workspace.config_columns import MISSING, ConfigColumns, show_value
from engine.workspace.records import RunRecord

OPERATORS = {"=": operator.eq, "!=": operator.ne, ">=": operator.ge, "<=": operator.le,
             ">": operator.gt, "<": operator.lt, "~": None}
SQL_KEYS = {"status": "status", "tag": "tag", "study": "study", "group": "group",
            "kind": "kind", "text": "text"}
DERIVED = ("duration", "steps_per_s", "tags", "group", "best")
RECORD_FIELDS = tuple(f.name for f in fields(RunRecord))
FILTER_FORMS = ("KEY=VALUE, KEY!=VALUE, KEY>N, KEY>=N, KEY<N, KEY<=N or KEY~TEXT (contains), "
                "where KEY is status, tag, study, group, kind, text (name or notes), a run "
                "field (name, steps, best_val, duration, steps_per_s, ...), a metric "
                "(val_accuracy) or a config key (optim.lr)")
_EXPR = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(!=|>=|<=|=|>|<|~)\s*(.*?)\s*$")


class QueryError(ValueError):
    """A filter, sort or column the runs table cannot use; the text says which and why."""


@dataclass(frozen=True)
class Filter:
    key: str
    op: str
    value: str

    @property
    def in_sql(self) -> bool:
        return self.op == "=" and self.key in SQL_KEYS


def parse_filter(expr: str) -> Filter:
    m = _EXPR.match(expr)
    if not m or not m.group(3):
        raise QueryError(f"bad filter {expr!r}: use {FILTER_FORMS}")
    return Filter(*m.groups())


def parse_sort(spec: str) -> tuple[str, bool]:
    key, _, order = spec.partition(":")
    if not key.strip() or order not in ("", "asc", "desc"):
        raise QueryError(f"bad sort {spec!r}: use KEY or KEY:desc (e.g. val_accuracy:desc)")
    return key.strip(), order == "desc"


class RunTable:
    """Values of any column for a list of runs; metrics and configs are read once, when a
    column needs them."""

    def __init__(self, ws, runs: list[RunRecord]):
        self.ws, self.runs = ws, runs
        self._tags: dict[int, list[str]] | None = None
        self._metrics: dict[int, dict[str, float]] | None = None
        self._configs: ConfigColumns | None = None

    @property
    def tags(self) -> dict[int, list[str]]:
        if self._tags is None:
            self._tags = self.ws.all_tags()
        return self._tags

    @property
    def metrics(self) -> dict[int, dict[str, float]]:
        if self._metrics is None:
            self._metrics = self.ws.last_metrics([r.id for r in self.runs]) if self.runs else {}
        return self._metrics

    @property
    def configs(self) -> ConfigColumns:
        if self._configs is None:
            self._configs = ConfigColumns.of_runs(self.ws, self.runs)
        return self._configs

    def check_key(self, key: str, what: str) -> None:
        if key in RECORD_FIELDS or key in DERIVED or key in SQL_KEYS:
            return
        if "." in key and self.configs.known(key):
            return
        if any(key in m for m in self.metrics.values()):
            return
        raise QueryError(f"{what} {key!r} is not a run field, a metric of these runs or a "
                         f"config key: use a field such as name, status, steps, best_val, "
                         f"duration, steps_per_s, tags, a metric such as val_accuracy or a "
                         f"config key such as optim.lr")

    def value(self, run: RunRecord, key: str) -> Any:
        if key in ("group", "run_group"):
            return run.run_group
        if key == "duration":
            return run.wall_s
        if key == "steps_per_s":
            return run.steps / run.wall_s if run.wall_s and run.steps else None
        if key in ("tags", "tag"):
            return ",".join(self.tags.get(run.id, []))
        if key == "best":
            return run.best_val
        if key in RECORD_FIELDS:
            value = getattr(run, key)
            return str(value) if key == "dir" else value
        if "." in key and self.configs.known(key):
            return self.configs.value(run.id, key)
        return self.metrics.get(run.id, {}).get(key)

    def matches(self, run: RunRecord, f: Filter) -> bool:
        if f.key in ("tag", "tags"):
            tags = self.tags.get(run.id, [])
            return (f.value in tags) == (f.op != "!=") if f.op in ("=", "!=") else any(
                f.value in t for t in tags)
        if f.key == "text":
            haystack = f"{run.name}\n{run.notes or ''}".lower()
            return (f.value.lower() in haystack) == (f.op != "!=")
        value = self.value(run, f.key)
        if value is None or value is MISSING:
            return f.op == "!="
        if f.op == "~":
            return f.value.lower() in show_value(value).lower()
        left, right = _comparable(value, f.value)
        try:
            return OPERATORS[f.op](left, right)
        except TypeError:  # a number against text: only (in)equality can hold
            return f.op == "!="

    def sorted(self, runs: list[RunRecord], key: str, descending: bool) -> list[RunRecord]:
        """Runs ordered by a column; runs without a value come last either way."""
        present = [r for r in runs if self.value(r, key) not in (None, MISSING)]
        absent = [r for r in runs if self.value(r, key) in (None, MISSING)]
        present.sort(key=lambda r: _sort_key(self.value(r, key)), reverse=descending)
        return present + absent


def query(ws, filters: list[str], *, sort: str | None = None, kind: str | None = None,
          include_trashed: bool | str = False) -> tuple[list[RunRecord], RunTable]:
    """The runs the filters keep, sorted, with the table that resolves their columns."""
    parsed = [parse_filter(e) for e in filters]
    sql: dict[str, Any] = {"kind": kind}
    for f in parsed:
        if f.in_sql:
            if sql.get(SQL_KEYS[f.key]) not in (None, f.value):
                return [], RunTable(ws, [])  # status=a and status=b: nothing
            sql[SQL_KEYS[f.key]] = f.value
    runs = ws.list_runs(include_trashed=include_trashed, **sql)
    table = RunTable(ws, runs)
    rest = [f for f in parsed if not f.in_sql]
    for f, expr in zip(parsed, filters):
        if not f.in_sql:
            table.check_key(f.key, f"in filter {expr!r}, key")
    kept = [r for r in runs if all(table.matches(r, f) for f in rest)]
    if sort:
        key, descending = parse_sort(sort)
        table.check_key(key, "sort key")
        kept = table.sorted(kept, key, descending)
    return kept, table


def compare(ws, refs: list) -> dict:
    """Runs side by side: the config keys that differ, and each metric's last and best."""
    runs = [ws.get_run(r) for r in refs]
    ids = [r.id for r in runs]
    configs = ConfigColumns.of_runs(ws, runs)
    keys = configs.differing(ids)
    last, best = ws.last_metrics(ids), ws.best_metrics(ids)
    names = sorted({n for i in ids for n in last.get(i, {})})
    return {
        "runs": [{"id": r.id, "name": r.name, "status": r.status, "steps": r.steps,
                  "duration": r.wall_s, "best_metric": r.best_metric, "best_val": r.best_val}
                 for r in runs],
        "config": {k: [_plain(configs.value(i, k)) for i in ids] for k in keys},
        "metrics": {n: {"last": [last.get(i, {}).get(n) for i in ids],
                        **({"best": [best.get(i, {}).get(n) for i in ids]} if n not in UNRANKED
                           else {})} for n in names},
    }


# Epoch metrics that are settings, not scores: they have a last value but no best.
UNRANKED = frozenset({"lr"})


def show_cell(value) -> str:
    if value is None or value is MISSING:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return show_value(value)


def _plain(value):
    return list(map(_plain, value)) if isinstance(value, tuple) else value


def _comparable(value, text: str):
    if isinstance(value, bool):
        return value, text.lower() in ("true", "1", "yes")
    if isinstance(value, int | float):
        try:
            return float(value), float(text)
        except ValueError:
            return show_value(value), text
    return show_value(value), text


def _sort_key(value):
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, show_value(value))
