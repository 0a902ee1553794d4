"""Does any value a user can give end in a traceback? A config fuzzer over every run option.

Hypothesis generates ``--cases`` command lines `torchwork run BASE.toml --set KEY=VALUE ...`
over every key of `torchwork options` (in range, at and past the edges, wrong
types, numbers past 64 bits and past Python's 4,300-digit limit, arrays
nested thousands deep, unicode); ``--cases`` more with up to 8 values each
field allows on its own, edges included, so combinations reach the builders
(a schedule's gamma with its name, an optimizer's momentum); and ``--files``
corrupted TOML files (flipped and cut bytes, invalid UTF-8, hostile lines and
values spliced in). Each goes through engine.cli.main in this process up to a
built Trainer; with ``--train`` it also trains one step. A case counts as a
traceback when an exception escapes main or stderr holds one; an exit 2 with
more than one stderr line counts as a multi-line error. Both must stay 0.

Large in-range sizes are refused by the memory check against a budget of
``--memory-mib`` (default 256) instead of being generated for minutes.

    python bench/fuzz_config.py [--cases 500] [--files 50] [--seed 0] [--train]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import math
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import get_args, get_origin

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import cli  # noqa: E402
from engine.config import RunConfig, all_keys, field_meta, field_type  # noqa: E402
from engine.training import footprint  # noqa: E402

BASE = {"data.dataset": "moons", "data.n_samples": 200, "data.batch_size": 32,
        "model.hidden": [8], "train.epochs": 2, "train.device": "cpu"}
WORDS = ["", "true", "false", "yes", "off", "[1, 2]", "[]", "{a = 1}", "1979-05-27",
         "07:32:00", "'quoted'", '"str"', "x=y", "1e400", "-1e400", "nan", "-inf", "0x10",
         "0b101", "1_000", "+1", "-0", "1.", ".5", "1e-400", "[1,", "]", "#", "a\nb = 1",
         "1, 2, 3", "None", "null", "\u2603", "\u0661\u0662", "\U0001f600" * 20]
VALUES = ["0", "-1", "1", "2", "1.0", "0.5", "1e308", "-1e308", "inf", "nan", "99999999999",
          "[]", "[0]", "[1, 1]", "[1000000]", '""', '"x"', "true", "2024-01-01", "[[1]]",
          "{}", "9" * 400, "[" + "9" * 5000 + "]"]
HOSTILE_LINES = ["seed = " + "9" * 5000, "lr = " + "9" * 400, "hidden = " + "[" * 3000 + "]" * 3000,
                 "hidden = [1000000000]", "n_samples = 100000000", 'arch = "custom:\\u0000.py"',
                 "[data]", "[[model]]", "name = {a = 1}", "epochs = 1e400", "gamma = 1.0",
                 'name = "plateau"', "warmup_steps = 1", "betas = [0.9]", "= 1", "lr = 'x",
                 "[optim]\nname = 'lbfgs'", "[schedule]\nname = 'onecycle'\nwarmup_steps = 1"]


def render(value) -> str:
    """A value as a person would type it after --set."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") \
            if math.isinf(value) else repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(render(v) for v in value) + "]"
    return str(value)


def in_range_numbers(tp: type, lo, hi, lo_open: bool, hi_open: bool) -> st.SearchStrategy:
    """Allowed numbers, the edges themselves (or the nearest inside an open edge) often."""
    if tp is int:
        lo = (lo + lo_open) if lo is not None else -(2**40)
        hi = (hi - hi_open) if hi is not None else 2**40
        return st.one_of(st.sampled_from([lo, hi, lo + 1, hi - 1]), st.integers(lo, hi))
    lo_edge = lo if lo is not None else -1e6
    hi_edge = hi if hi is not None else 1e6
    edges = [math.nextafter(lo_edge, math.inf) if lo_open else lo_edge,
             math.nextafter(hi_edge, -math.inf) if hi_open else hi_edge]
    return st.one_of(st.sampled_from(edges),
                     st.floats(lo_edge, hi_edge, exclude_min=lo_open, exclude_max=hi_open))


def out_of_range_numbers(tp: type, lo, hi) -> st.SearchStrategy:
    """Just past each edge, far out, and the odd floats."""
    step = 1 if tp is int else 1e-9
    edges = [x for b in (lo, hi) if b is not None for x in (b - step, b + step, b * 10)]
    edges += [0, -1, 2**31, 2**63, -(2**63)]
    odd = [1.5, 1e300, -0.0] if tp is int else [math.nan, math.inf, -math.inf, 5e-324, 1e308]
    return st.sampled_from(edges + odd)


def in_range_values(key: str) -> st.SearchStrategy:
    """Values validation lets through on their own: what reaches the builders."""
    meta, tp = field_meta(key), field_type(key)
    if get_origin(tp) is list:
        item = in_range_numbers(get_args(tp)[0], meta["item_min"], meta["item_max"], False,
                                meta["item_max_exclusive"])
        least = meta["min_items"] or (1 if meta["item_min"] is not None else 0)
        values = st.lists(item, min_size=least, max_size=min(meta["max_items"] or 6, 6),
                          unique=True)
        return (values.map(sorted) if key == "schedule.milestones" else values).map(render)
    if tp is bool:
        return st.booleans().map(render)
    if tp is str:
        texts = list(meta["choices"] or ()) or {
            "model.init": ["", "w.safetensors"], "distill.teacher": ["", "1", "w.safetensors"],
        }.get(key, [""])
        return st.sampled_from(texts)
    return in_range_numbers(tp, meta["min"], meta["max"], meta["min_exclusive"],
                            meta["max_exclusive"]).map(render)


def typed_values(key: str) -> st.SearchStrategy:
    """Values of the field's own type: in range, at and past the edges."""
    meta, tp = field_meta(key), field_type(key)
    if get_origin(tp) is list:
        item = out_of_range_numbers(get_args(tp)[0], meta["item_min"], meta["item_max"])
        wrong = st.one_of(st.lists(item, min_size=1, max_size=6),
                          st.lists(st.just(1), min_size=999, max_size=1002)).map(render)
    elif tp is bool:
        wrong = st.nothing()
    elif tp is str:
        texts = [*(meta["choices"] or ()), "custom:model.py", "custom:/nonexistent/x.py",
                 "custom:/dev/null.py", "custom:", "cuda:0", "cuda:999", "cuda:1000",
                 "w.safetensors", "/dev/null.safetensors", "/.safetensors", "1", "999", "0"]
        wrong = st.one_of(st.sampled_from(texts), st.sampled_from(texts).map(lambda s: s.upper()),
                          st.sampled_from(texts).map(lambda s: s + "x"))
    else:
        wrong = out_of_range_numbers(tp, meta["min"], meta["max"]).map(render)
    return st.one_of(in_range_values(key), wrong)


def field_values(key: str) -> st.SearchStrategy:
    """Half the field's own type, half hostile text."""
    typed = typed_values(key)
    huge = st.one_of(st.integers(19, 40), st.integers(300, 6000)).map(lambda n: "9" * n)
    nested = st.integers(2, 6000).map(lambda n: "[" * n + "1" + "]" * n)
    text = st.text(st.characters(blacklist_characters="\x00"), max_size=40)
    hostile = st.one_of(st.sampled_from(WORDS), huge, nested, text, huge.map(lambda s: f"[{s}]"),
                        typed.map(lambda s: f'"{s}"'))
    return st.one_of(typed, hostile)


@st.composite
def override_cases(draw, values=field_values, most: int = 4, always=()) -> list[str]:
    """Keys from anywhere, or (half the time) from one section, where the rules between
    options live (a schedule's name with its gamma, an optimizer with its momentum);
    the keys in ``always`` come first."""
    keys = all_keys()
    if draw(st.booleans()):
        sections = sorted({k.split(".")[0] for k in keys})
        section = draw(st.sampled_from(sections + ["optim", "schedule"] * 4))
        keys = [k for k in keys if k.startswith(section + ".")]
    chosen = [*always, *draw(st.lists(st.sampled_from(keys), min_size=1, max_size=most))]
    return [f"{key}={draw(values(key))}" for key in chosen]


@st.composite
def corrupted_files(draw, base_text: str) -> bytes:
    data = bytearray(base_text.encode())
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "splice", "garbage", "line", "value"]))
        pos = draw(st.integers(0, len(data)))
        if kind == "flip" and data:
            data[min(pos, len(data) - 1)] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[pos:]
        elif kind == "splice":
            data[pos:pos] = draw(st.sampled_from(HOSTILE_LINES)).encode() + b"\n"
        elif kind == "garbage":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=20))
        elif kind == "line":
            line_start = data.rfind(b"\n", 0, pos) + 1
            data[line_start:line_start] = (draw(st.sampled_from(HOSTILE_LINES)) + "\n").encode()
        else:  # a value replaced by another that is still valid TOML
            equals = data.find(b" = ", pos)
            if equals >= 0:
                end = data.find(b"\n", equals)
                end = len(data) if end < 0 else end
                data[equals + 3:end] = draw(st.sampled_from(VALUES)).encode()
    return bytes(data)


class Tally:
    def __init__(self):
        self.exits: collections.Counter = collections.Counter()
        self.tracebacks: list[str] = []
        self.multiline: list[str] = []
        self.cases = 0

    def run(self, argv: list[str], label: str) -> None:
        self.cases += 1
        out, err = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                    warnings.catch_warnings():
                warnings.simplefilter("ignore")
                code = cli.main(argv)
        except SystemExit as exc:  # argparse's --help and the like
            code = exc.code if isinstance(exc.code, int) else 2
        except BaseException:  # noqa: BLE001 - what the fuzzer is looking for
            self.exits["traceback"] += 1
            self.tracebacks.append(f"{label}\n{traceback.format_exc(limit=-3)}")
            return
        self.exits[code] += 1
        text = err.getvalue()
        if "Traceback (most recent call last)" in text:
            self.tracebacks.append(f"{label}\n{text[-1500:]}")
        elif code == 2 and len(text.strip().splitlines()) != 1:
            self.multiline.append(f"{label}\n{text[:1500]}")

    def row(self, name: str) -> str:
        other = sum(n for c, n in self.exits.items() if c not in (0, 1, 2))
        return (f"| {name} | {self.cases} | {self.exits[0]} | {self.exits[1]} | {self.exits[2]} "
                f"| {other} | {len(self.tracebacks)} | {len(self.multiline)} |")


def short(argv: list[str]) -> str:
    return " ".join(a if len(a) < 80 else a[:60] + f"...({len(a)} chars)" for a in argv)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=500, help="--set command lines")
    parser.add_argument("--files", type=int, default=50, help="corrupted TOML files")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory-mib", type=int, default=256)
    parser.add_argument("--train", action="store_true", help="also train one step per case")
    args = parser.parse_args()

    budget = args.memory_mib * 2**20
    real = footprint.available_bytes
    footprint.available_bytes = lambda: min(real(), budget)
    if not args.train:  # stop after the Trainer is built (and the run created)
        cli._train = lambda trainer, ws, *rest, **kwargs: ws.close() or cli.EXIT_OK

    folder = Path(tempfile.mkdtemp(prefix="fuzz-config-"))
    base = RunConfig()
    for key, value in BASE.items():
        base.set(key, value)
    base_path = folder / "base.toml"
    base.save(base_path)
    common = ["--workspace", str(folder / "ws")] + (["--max-steps", "1"] if args.train else [])
    fuzz = settings(database=None, deadline=None, phases=[Phase.generate],
                    suppress_health_check=list(HealthCheck))

    overrides = Tally()

    @seed(args.seed)
    @settings(fuzz, max_examples=args.cases)
    @given(override_cases())
    def fuzz_overrides(items):
        argv = ["run", str(base_path), *common]
        for item in items:
            argv += ["--set", item]
        overrides.run(argv, short(argv))

    typed = Tally()

    @seed(args.seed)
    @settings(fuzz, max_examples=args.cases)
    @given(override_cases(in_range_values, 8, always=("optim.name", "schedule.name")))
    def fuzz_typed(items):
        argv = ["run", str(base_path), *common]
        for item in items:
            argv += ["--set", item]
        typed.run(argv, short(argv))

    files = Tally()

    @seed(args.seed)
    @settings(fuzz, max_examples=args.files)
    @given(corrupted_files(base.to_toml()))
    def fuzz_files(data):
        path = folder / f"case{files.cases}.toml"
        path.write_bytes(data)
        files.run(["run", str(path), *common], f"{path}: {data[:300]!r}")

    start = time.perf_counter()
    fuzz_overrides()
    fuzz_typed()
    fuzz_files()
    wall = time.perf_counter() - start
    for tally in (overrides, typed, files):
        for report in tally.tracebacks + tally.multiline:
            print(report, end="\n\n")
    print(f"seed {args.seed}, {'one training step' if args.train else 'up to the built Trainer'}"
          f", memory budget {args.memory_mib} MiB, {wall:.0f} s; cases in {folder}")
    print("| cases | tried | exit 0 | exit 1 | exit 2 | other exit | tracebacks | "
          "multi-line errors |")
    print("|---|---|---|---|---|---|---|---|")
    print(overrides.row("`--set` overrides, any value"))
    print(typed.row("`--set` overrides, values in range (edges included)"))
    print(files.row("corrupted TOML files"))


if __name__ == "__main__":
    main()
