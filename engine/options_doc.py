"""Every run option described from the RunConfig metadata: docs/config.md and `torchwork options`.

Generated, never written by hand, so the reference cannot drift from the code.
"""

from __future__ import annotations

from typing import get_args, get_origin

from .config import SECTIONS, all_keys, describe_rule, field_default, field_meta, field_type
from .run_options import SearchConfig

SEARCH_KEYS = [f"search.{name}" for name in SearchConfig.__dataclass_fields__ if name != "space"]
SPACE_NOTE = ("`[search.space]`: each key is a quoted dotted run option, searched over a range "
              "(int and float options: `{ low = 1e-5, high = 0.1, log = true }`, ints with "
              "`step`) or a list of `{ choices = [...] }` (any option, lists included: "
              "`\"model.hidden\" = { choices = [[64], [128, 64]] }`). `torchwork run` ignores "
              "[search]; `torchwork search` uses it.")

INTRO = ("Every option of a run, generated from `engine/config.py` by "
         "`torchwork options --markdown`. Set them in the run's TOML file under their "
         "section, or on the command line with `--set section.key=value`.")


def allowed(key: str) -> str:
    meta, tp = field_meta(key), field_type(key)
    if meta["choices"]:
        text = ", ".join(f"`{c}`" for c in meta["choices"])
        return text + (f", `{meta['pattern_hint']}`" if meta["pattern_hint"] else "")
    if get_origin(tp) is list:
        item = {str: "name"}.get(get_args(tp)[0], get_args(tp)[0].__name__)
        low, high = meta["item_min"], meta["item_max"]
        bounds = ([f">= {_num(low)}"] if low is not None else []) + \
                 ([f"{'<' if meta['item_max_exclusive'] else '<='} {_num(high)}"]
                  if high is not None else [])
        least, most = meta["min_items"], meta["max_items"]
        count = ("" if most is None else f"{most} " if least == most else f"at most {most} ")
        return f"list of {count}{item}s" + (f", each {', '.join(bounds)}" if bounds else "")
    if tp is bool:
        return "true, false"
    parts = []
    if meta["min"] is not None:
        parts.append(f"{'>' if meta['min_exclusive'] else '>='} {_num(meta['min'])}")
    if meta["max"] is not None:
        parts.append(f"{'<' if meta['max_exclusive'] else '<='} {_num(meta['max'])}")
    if not parts and meta["pattern_hint"]:  # free text of a known form
        return f"`\"\"` or {meta['pattern_hint']}"
    return ", ".join(parts) or tp.__name__


def _num(value: float) -> str:
    if float(value).is_integer() and abs(value) < 1e13:
        return str(int(value))
    return f"{value:g}"


def _default(key: str) -> str:
    value = getattr(SearchConfig(), key[len("search."):]) if key.startswith("search.") \
        else field_default(key)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def applies_when(key: str) -> str:
    """The sentence saying when an option is used ("Applies when optim.name is sgd.").

    Empty for an option every run uses.
    """
    rule = describe_rule(field_meta(key)["relevant_when"])
    return f"Applies when {rule}." if rule else ""


def _section_keys(section: str) -> list[str]:
    if section == "search":
        return SEARCH_KEYS
    return [k for k in all_keys() if k.startswith(section + ".")]


def markdown() -> str:
    lines = ["# Run options", "", INTRO, ""]
    for section in [*SECTIONS, "search"]:
        lines += [f"## [{section}]", ""] + ([SPACE_NOTE, ""] if section == "search" else [])
        lines += ["| key | default | allowed | meaning |", "|---|---|---|---|"]
        for key in _section_keys(section):
            meta = field_meta(key)
            when = applies_when(key)
            text = f"**{meta['label']}.** {meta['help']}" + (f" *{when}*" if when else "")
            text = text.replace("|", "\\|")
            lines.append(f"| `{key}` | `{_default(key)}` | {allowed(key)} | {text} |")
        lines.append("")
    return "\n".join(lines)


def plain() -> str:
    lines = []
    for section in [*SECTIONS, "search"]:
        lines.append(f"[{section}]")
        for key in _section_keys(section):
            meta = field_meta(key)
            lines.append(f"  {key} = {_default(key)}    ({allowed(key).replace('`', '')})")
            lines.append(f"      {meta['label']}: {meta['help']}")
            if applies_when(key):
                lines.append(f"      {applies_when(key)}")
        if section == "search":
            lines.append(f"  {SPACE_NOTE.replace('`', '')}")
        lines.append("")
    return "\n".join(lines)
