"""When an option is used at all: the ``relevant_when`` rules of engine.run_options.

A rule is plain data, so the engine (validation, saved files, `torchwork options`)
and the desktop form (which rows it shows) evaluate the same thing. See
engine.run_options for the shape of a rule.
"""

from __future__ import annotations

import dataclasses

from engine.run_options import SECTIONS


@dataclasses.dataclass
class _Nothing:
    """A section with no fields: what an unknown section name looks up."""


def applies(rule, value_of) -> bool:
    """Evaluate a ``relevant_when`` rule (see engine.run_options) with ``value_of(key)``."""
    if rule is None:
        return True
    if isinstance(rule, list):
        return any(applies(part, value_of) for part in rule)
    return all(_holds(cond, value_of(key)) for key, cond in rule.items())


def _holds(cond, value) -> bool:
    if isinstance(cond, dict):  # every operator given must hold
        return all(_OPERATORS[op](value, arg) for op, arg in cond.items())
    return value in cond


_OPERATORS = {
    "not": lambda value, values: value not in values,
    "prefix": lambda value, starts: isinstance(value, str) and value.startswith(tuple(starts)),
    "not_prefix": lambda value, starts: not (isinstance(value, str)
                                             and value.startswith(tuple(starts))),
    ">": lambda value, bound: value > bound,
}


def describe_rule(rule) -> str:
    """A rule in words: "optim.name is sgd or rmsprop" ('' for an option always used)."""
    if rule is None:
        return ""
    if isinstance(rule, list):
        return "; or when ".join(describe_rule(part) for part in rule)
    return " and ".join(_describe(key, cond) for key, cond in rule.items())


def _describe(key: str, cond) -> str:
    def alternatives(values) -> str:
        return " or ".join(str(v) for v in values)

    if isinstance(cond, dict):
        return " and ".join(_describe_op(key, op, arg) for op, arg in cond.items())
    return f"{key} is {alternatives(cond)}"


def _describe_op(key: str, op: str, arg) -> str:
    def alternatives(values) -> str:
        return " or ".join(str(v) for v in values)

    if op == "not":
        return f"{key} is set" if list(arg) == [""] else f"{key} is not {alternatives(arg)}"
    if op == "prefix":
        return f"{key} starts with {alternatives(arg)}"
    if op == "not_prefix":
        return f"{key} does not start with {alternatives(arg)}"
    return f"{key} > {arg}"


def check_rule(key: str, rule) -> list[str]:
    """Problems of one field's rule: unknown keys, operators, or values a key cannot take."""
    parts = rule if isinstance(rule, list) else [] if rule is None else [rule]
    problems = []
    for part in parts:
        for other, cond in part.items():
            section, _, name = other.partition(".")
            fields = {f.name: f for f in dataclasses.fields(SECTIONS.get(section, _Nothing))}
            if name not in fields:
                problems.append(f"{key}: relevant_when names {other!r}, which is no option")
                continue
            choices = fields[name].metadata["choices"]
            if isinstance(cond, dict):
                if not cond or set(cond) - set(_OPERATORS):
                    problems.append(f"{key}: relevant_when on {other} uses {set(cond)}: "
                                    f"use a list of values, {{'not': [...]}}, "
                                    f"{{'prefix': [...]}}, {{'not_prefix': [...]}} or "
                                    f"{{'>': n}}")
                    continue
                values = cond.get("not", [])
            else:
                values = cond
            if choices and set(values) - set(choices) - {""}:
                problems.append(f"{key}: relevant_when lists {set(values) - set(choices)} "
                                f"for {other}, which takes {', '.join(choices)}")
    return problems
