"""`torchwork search`: a hyperparameter search of a config's [search] space with Optuna.

`torchwork search CONFIG.toml` starts (or continues) the study; `torchwork search
--join STUDY --storage URL` adds this machine's workers to a study started
elsewhere, reading its config from the study. Ctrl-C ends the running trials at
their next step (their runs stay resumable); a second Ctrl-C kills the workers.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path


def register(sub, common) -> None:
    p = sub.add_parser("search", parents=[common], help="hyperparameter search with Optuna",
                       description="Search the [search.space] of a config with Optuna: each "
                                   "trial is a workspace run; the study lives in --storage.")
    p.add_argument("config", nargs="?", help="run configuration with [search] (.toml)")
    p.add_argument("--join", metavar="STUDY",
                   help="add workers to this existing study (with --storage; no config needed)")
    p.add_argument("--storage", metavar="URL",
                   help="SQLAlchemy URL of the study (default: search.storage, else "
                        "sqlite:///WORKSPACE/search.sqlite)")
    p.add_argument("--study", metavar="NAME",
                   help="study name (default: search.study, else the config file's name)")
    p.add_argument("--workers", type=int, metavar="N", help="trial processes on this machine")
    p.add_argument("--n-trials", type=int, metavar="N", help="trials of the whole study")
    p.add_argument("--timeout", type=float, metavar="S",
                   help="start no trial after S seconds")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one option of the config, e.g. --set train.epochs=5")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per finished trial, then one for the search")
    p.set_defaults(handler=cmd_search)


def cmd_search(args) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from engine import cli
    from engine.config import ConfigError
    from engine.experiments.search import Plan, joined_config, run_search, start_study, summary
    from engine.experiments.space import search_only_errors
    from engine.experiments.storage import SearchError, default_storage

    if bool(args.config) == bool(args.join):
        raise cli.UsageError("give a CONFIG.toml to start a search, or --join STUDY --storage "
                             "URL to add workers to one")
    if args.join and not args.storage:
        raise cli.UsageError("--join needs --storage URL: the database the study lives in")
    for name in ("workers", "n_trials"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise cli.UsageError(f"--{name.replace('_', '-')} must be at least 1")
    if args.timeout is not None and args.timeout <= 0:
        raise cli.UsageError("--timeout must be > 0 seconds")
    ws = cli._open_workspace(args)
    root = str(ws.root)
    ws.close()
    try:
        if args.join:
            cfg, study, storage = joined_config(args.storage, args.join), args.join, args.storage
            cfg = cfg.with_overrides(args.overrides)
        else:
            cfg = cli._config_for_run(_as_run_args(args))
            if cfg.search is None:
                raise ConfigError(f"{args.config} has no [search] section: add one with a "
                                  f"[search.space], e.g. \"optim.lr\" = {{ low = 1e-5, "
                                  f"high = 0.1, log = true }}")
            storage = args.storage or cfg.search.storage or default_storage(root)
            study = args.study or cfg.search.study or Path(args.config).stem
        if search_only_errors(cfg):
            raise ConfigError(search_only_errors(cfg))
        search = cfg.search
        workers = args.workers or search.workers
        if not args.join:
            start_study(cfg, storage, study, root)
        plan = Plan(cfg.to_toml(), storage, study, root, args.n_trials or search.n_trials,
                    args.timeout or search.timeout, None if args.join else search.seed)
        stop, abort = threading.Event(), threading.Event()
        print_event = _JsonOut() if args.json else _TextOut(search.objective)
        previous = _on_interrupt(stop, abort)
        try:
            run_search(plan, workers, print_event, stop, abort)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        result = summary(storage, study, search.heartbeat)
    except SearchError as exc:
        print(f"torchwork search: {exc}", file=sys.stderr)
        return cli.EXIT_FAILED
    except SQLAlchemyError as exc:  # the database went away or refused a write mid-search
        reason = str(exc).strip().splitlines()[0]
        print(f"torchwork search: the study's storage failed: {reason}", file=sys.stderr)
        return cli.EXIT_FAILED
    print_event(result)
    if stop.is_set():
        return cli.EXIT_STOPPED
    return cli.EXIT_OK if result["complete"] else cli.EXIT_FAILED


def _as_run_args(args):
    """The arguments `torchwork run` reads its config from."""
    import argparse

    return argparse.Namespace(config=args.config, overrides=args.overrides, max_steps=None)


def _on_interrupt(stop: threading.Event, abort: threading.Event) -> dict:
    def on_signal(signum, frame):
        if stop.is_set():
            abort.set()
            return
        stop.set()
        print("\nstopping: the running trials end at their next step (their runs stay "
              "resumable); Ctrl-C again to kill the workers", file=sys.stderr)

    return {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}


class _JsonOut:
    def __call__(self, event: dict) -> None:
        print(json.dumps(event), flush=True)


class _TextOut:
    def __init__(self, objective: str):
        self.objective = objective

    def __call__(self, event: dict) -> None:
        kind = event["event"]
        if kind == "worker_error":
            print(f"worker: {event['error']}", file=sys.stderr)
        elif kind == "trial_finished":
            run = f" (run {event['run_id']})" if event.get("run_id") is not None else ""
            value = (f" {self.objective} {event['value']:.4g}" if event.get("value") is not None
                     else "")
            error = f": {event['error']}" if event["state"] == "FAIL" and event.get("error") \
                else ""
            print(f"trial {event['number']} {event['state'].lower()}{value}{run}{error}",
                  flush=True)
        elif kind == "search_finished":
            line = (f"study {event['study']}: {event['trials']} trials ({event['complete']} "
                    f"complete, {event['pruned']} pruned, {event['failed']} failed)")
            if event["best_trial"] is not None:
                line += (f"; best trial {event['best_trial']}: {self.objective} "
                         f"{event['best_value']:.4g}, run {event['best_run_id']}")
            print(line, flush=True)
