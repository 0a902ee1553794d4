"""`torchwork tune lr | batch-size | memory CONFIG`: tuners that run before a run is started.

Each builds CONFIG's run (data, model, optimizer) as `torchwork run` would but
writes nothing to the workspace. With ``--json`` the result is one JSON object
on stdout (the window's "Find LR…" and "Find batch size…" read it); progress
goes to stderr.
"""

from __future__ import annotations

import functools
import json
import sys


def register(subparsers, common) -> None:
    tune = subparsers.add_parser(
        "tune", help="LR range test, batch-size finder, memory forecast",
        description="Tune a configuration before training it: find a learning rate, a batch "
                    "size, or forecast the memory of a training step.")
    which = tune.add_subparsers(dest="tuner", metavar="TUNER", required=True,
                                parser_class=type(tune))
    lr = which.add_parser("lr", parents=[common], help="exponential LR sweep and a suggestion",
                          description="Exponential learning-rate sweep on a copy of the run "
                                      "and the suggested optim.lr, with its rule and reason.")
    _common(lr)
    lr.add_argument("--steps", type=int, default=300, metavar="N",
                    help="optimizer steps in the sweep (default 300)")
    lr.add_argument("--start-lr", type=float, default=1e-7, help="first rate (default 1e-7)")
    lr.add_argument("--end-lr", type=float, default=10.0, help="last rate (default 10)")
    lr.set_defaults(handler=cmd_tune_lr)
    bs = which.add_parser("batch-size", parents=[common],
                          help="throughput at growing batch sizes and the knee",
                          description="Real training steps at batch sizes 8, 16, 32, ... until "
                                      "memory or the data runs out; the throughput of each and "
                                      "the knee (smallest size within 90%% of the best).")
    _common(bs)
    bs.add_argument("--start", type=int, default=8, help="first batch size (default 8)")
    bs.add_argument("--limit", type=int, default=65536, help="largest size to try (default 65536)")
    bs.add_argument("--steps", type=int, default=5, metavar="N",
                    help="timed steps per size, after one warm-up step (default 5)")
    bs.set_defaults(handler=cmd_tune_batch_size)
    mem = which.add_parser("memory", parents=[common],
                           help="forecast the peak memory of one training step",
                           description="Forecast the peak memory of one training step on the "
                                       "run's device (torch's memory tracker over fake tensors) "
                                       "and the largest batch that fits.")
    _common(mem)
    mem.set_defaults(handler=cmd_tune_memory)


def _common(p) -> None:
    p.add_argument("config", help="path to a run configuration (.toml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one option, e.g. --set data.batch_size=128 (repeatable)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def _one_line(handler):
    """A failure of the model or the tuner itself ends the command with one line (exit 1),
    not a traceback; configuration errors go to the CLI's own handling (exit 2)."""
    @functools.wraps(handler)
    def run(args) -> int:
        from engine.cli import UsageError
        from engine.config import ConfigError

        try:
            return handler(args)
        except (UsageError, ConfigError):
            raise
        except Exception as exc:
            from engine.experiments.memory import ForecastError

            first = (str(exc).strip().splitlines() or [""])[0]
            kind = "" if isinstance(exc, ForecastError) else f"{type(exc).__name__}: "
            print(f"torchwork tune {args.tuner}: {kind}{first}", file=sys.stderr)
            return 1
    return run


def _trainer(args):
    from engine import cli

    args.max_steps = None
    return cli._build_trainer(cli._config_for_run(args))


def _progress(args, text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@_one_line
def cmd_tune_lr(args) -> int:
    from engine.experiments.lr_finder import lr_range_test

    trainer = _trainer(args)

    def step(i, lr, loss):
        if i % 25 == 0:
            _progress(args, f"step {i + 1}/{args.steps}: lr {lr:.2g}, loss {loss:.4g}")

    sweep = lr_range_test(trainer, start_lr=args.start_lr, end_lr=args.end_lr,
                          steps=args.steps, on_step=step)
    if args.json:
        print(json.dumps(sweep.as_json()))
        return 0
    lr = f"{sweep.suggested_lr:.3g}" if sweep.suggested_lr else "none"
    print(f"suggested optim.lr = {lr}\nrule: {sweep.rule}\nreason: {sweep.reason}")
    if sweep.suggested_lr:
        print(f"use it with: --set optim.lr={sweep.suggested_lr:.3g}")
    return 0


@_one_line
def cmd_tune_batch_size(args) -> int:
    from engine.experiments.batch_size import find_batch_size

    trainer = _trainer(args)

    def size(trial):
        rate = f"{trial.samples_per_s:.0f} samples/s" if trial.samples_per_s else "out of memory"
        _progress(args, f"batch {trial.batch_size}: {rate}")

    found = find_batch_size(trainer, start=args.start, limit=args.limit, steps=args.steps,
                            on_size=size)
    if args.json:
        print(json.dumps(found.as_json()))
        return 0
    for t in found.trials:
        rate = f"{t.samples_per_s:10.0f} samples/s" if t.samples_per_s else "   out of memory"
        print(f"batch {t.batch_size:>6}  {rate}")
    print(f"suggested data.batch_size = {found.suggested}\nreason: {found.reason}")
    return 0


@_one_line
def cmd_tune_memory(args) -> int:
    from engine import cli
    from engine.experiments.memory import forecast

    args.max_steps = None
    result = forecast(cli._config_for_run(args))
    if args.json:
        print(json.dumps(result.as_json()))
    else:
        print(result.summary())
    return 0
