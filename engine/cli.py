"""The headless `torchwork` command: run, list and resume training runs from a terminal.

Exit codes: 0 a completed run, 1 a failed run (or one that cannot continue),
2 a bad configuration or command line, 130 a run stopped with Ctrl-C (its
checkpoint is written, `torchwork resume` continues it).
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from functools import partial
from pathlib import Path

from .config import ConfigError, RunConfig
from .run_files import resolve_beside

EXIT_OK, EXIT_FAILED, EXIT_BAD_CONFIG, EXIT_STOPPED = 0, 1, 2, 130


# Further subcommands, one module each in engine/commands/: each has
# register(subparsers, common) which adds its parser with set_defaults(handler=fn);
# fn(args) returns the exit code and may raise UsageError or ConfigError.
COMMAND_MODULES: tuple[str, ...] = ("profile", "export", "compress", "monitor", "augment",
                                   "evaluate", "predict", "runs", "tune", "search", "summary",
                                   "advise")


class UsageError(Exception):
    """A command line or configuration the command cannot start from (exit 2)."""


class _ArgumentError(Exception):
    def __init__(self, prog: str, message: str):
        super().__init__(f"{prog}: {message} (see {prog} --help)")


class Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line, not the usage block, and exit 2 via main.

    Subparsers are made with the parent's class, so every subcommand gets this too.
    """

    def error(self, message: str):
        raise _ArgumentError(self.prog, message)


def build_parser() -> Parser:
    common = Parser(add_help=False)
    common.add_argument("--workspace", metavar="DIR",
                        help="workspace folder (default: $TORCHWORK_WORKSPACE or the user data "
                             "folder)")
    parser = Parser(
        prog="torchwork",
        description="Train PyTorch models efficiently. With no command, opens the desktop app.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    run = sub.add_parser("run", parents=[common], help="train from a TOML config",
                         description="Train from a TOML config, writing the run to the "
                                     "workspace.")
    run.add_argument("config", help="path to a run configuration (.toml)")
    _run_options(run)
    run.add_argument("--name", help="run name (default: dataset-arch)")
    _launch_options(run)

    resume = sub.add_parser("resume", parents=[common], help="continue a run from its checkpoint",
                            description="Continue a stopped or interrupted run exactly where "
                                        "its last checkpoint left it.")
    resume.add_argument("run_id", help="run id as shown by `torchwork runs`")
    _run_options(resume)
    _launch_options(resume)

    options = sub.add_parser("options", parents=[common],
                             help="list every run option with default and range")
    options.add_argument("--markdown", action="store_true", help="as the docs/config.md page")
    for name in COMMAND_MODULES:
        importlib.import_module(f"engine.commands.{name}").register(sub, common)
    return parser


def _run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one option, e.g. --set optim.lr=3e-4 (repeatable)")
    p.add_argument("--max-steps", type=int, metavar="N", help="stop after N optimizer steps")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object per event on stdout instead of a progress bar")


def _launch_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nproc-per-node", type=int, metavar="N",
                   help="train on N local processes (torchrun's agent, train.strategy ddp "
                        "or fsdp)")
    p.add_argument("--max-restarts", type=int, default=0, metavar="K",
                   help="with --nproc-per-node: restart every process up to K times after one "
                        "dies, resuming from the last checkpoint")


def main(argv: list[str] | None = None) -> int:
    """The command's exit code; output cut short by a closed pipe (`| head`) ends quietly."""
    try:
        try:
            return _main(argv)
        finally:  # here, not in the flush at exit, where it would print an ignored exception
            sys.stdout.flush()
    except BrokenPipeError:
        # Standard recipe: later writes (and the flush at exit) go nowhere instead of raising.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (AttributeError, OSError, ValueError):  # a stdout with no file descriptor
            pass
        return EXIT_OK


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _ArgumentError as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_CONFIG
    if args.command is None:
        parser.print_help()
        return EXIT_OK
    try:
        if getattr(args, "handler", None) is not None:
            return args.handler(args)
        if args.command == "run":
            return cmd_run(args)
        if args.command == "resume":
            return cmd_resume(args)
        if args.command == "options":
            from .options_doc import markdown, plain

            print(markdown() if args.markdown else plain())
        return EXIT_OK
    except (UsageError, ConfigError) as exc:
        print(f"torchwork {args.command}: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG


def _open_workspace(args):
    """The workspace of ``--workspace``. A command that adds runs to it first checks that it
    is writable and undamaged, so it stops before any work starts, not at its first commit."""
    from .workspace import Workspace, WorkspaceError

    try:
        ws = Workspace(args.workspace)
    except (WorkspaceError, OSError) as exc:
        raise UsageError(f"cannot open workspace: {exc}") from None
    if args.command in ("runs", "compare"):
        return ws  # a listing shows what can be read, even of a damaged database
    # compress only reads the workspace when it neither fine-tunes nor writes beside the run
    writes = not (args.command == "compress" and args.out and not args.finetune_epochs)
    try:
        if writes:
            ws.require_writable()
        ws.check()
    except WorkspaceError as exc:
        ws.close()
        raise UsageError(str(exc)) from None
    return ws


def _config_for_run(args) -> RunConfig:
    path = Path(args.config)
    cfg = RunConfig.load(path).with_overrides(args.overrides)
    if args.max_steps is not None:
        cfg = cfg.with_overrides([f"train.max_steps={args.max_steps}"])
    resolve_beside(cfg, path)  # stored absolute, so the run can be resumed from any folder
    missing = cfg.file_errors()  # before a workspace run is created for it
    if missing:
        raise ConfigError(missing)
    return cfg


def _build_trainer(cfg: RunConfig, workspace=None):
    from .models import ModelError
    from .run_builder import build_trainer

    try:
        return build_trainer(cfg, workspace)
    except ModelError as exc:
        raise UsageError(str(exc)) from None


def cmd_run(args) -> int:
    _check_restarts(args)
    cfg = _config_for_run(args)
    cfg.search = None  # `torchwork search` reads [search]; a run neither uses nor stores it
    if args.nproc_per_node is not None:
        return _launch(args, cfg)
    from .distributed import launched_world, strategy_of

    if launched_world() > 1 and strategy_of(cfg) == "none":
        raise UsageError(f"torchrun started {launched_world()} processes, but train.strategy="
                         f"'none' trains in one: each would train the whole run; set "
                         f"train.strategy='ddp' (or 'auto')")
    if cfg.train.cv_folds and not cfg.train.cv_fold and strategy_of(cfg) != "none":
        raise UsageError(ONE_RUN_ONLY)
    if cfg.train.cv_folds and not cfg.train.cv_fold:
        from .commands.crossval import run_folds

        return run_folds(args, cfg)
    from .distributed import elastic

    launch = elastic.launch_folder(_workspace_root(args)) if launched_world() > 1 else None
    if elastic.attempt() > 0 and elastic.launched_run(launch) is not None:
        # torchrun's agent restarted every rank: continue the run the first attempt made
        return _resume(args, str(elastic.launched_run(launch)), [], launch=launch)
    if not _writes_workspace(cfg):  # a rank other than 0 of a torchrun launch
        return _train(_build_trainer(cfg, _open_workspace(args) if _reads_runs(cfg) else None),
                      None, None, args.json, launch=launch)
    ws = _open_workspace(args)
    try:
        trainer = _build_trainer(cfg, ws)
    except BaseException:
        ws.close()
        raise
    run = ws.create_run(trainer.config, args.name)  # with the task its data decided
    elastic.record_run(launch, run.id)
    return _train(trainer, ws, run, args.json, launch=launch)


def cmd_resume(args) -> int:
    _check_restarts(args)
    overrides = list(args.overrides)
    if args.max_steps is not None:
        overrides.append(f"train.max_steps={args.max_steps}")
    if args.nproc_per_node is not None:
        return _launch_resume(args)
    from .distributed import elastic, launched_world

    launch = elastic.launch_folder(_workspace_root(args)) if launched_world() > 1 else None
    return _resume(args, args.run_id, overrides, launch=launch)


def _resume(args, run_ref: str, overrides: list[str], *, launch=None) -> int:
    """Continue run ``run_ref``; under torchrun every rank does, rank 0 alone writing."""
    from .distributed import elastic, launched_world
    from .training.resume import ResumeError, prepare_resume

    world = launched_world()
    writer = world == 1 or os.environ.get("RANK", "0") == "0"
    ws = _open_workspace(args)
    try:
        resumption = prepare_resume(ws, run_ref, overrides, world=world, writer=writer,
                                    build=lambda cfg: _build_trainer(cfg, ws))
    except ResumeError as exc:
        ws.close()
        if exc.usage:
            raise UsageError(str(exc)) from None
        print(f"torchwork resume: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except BaseException:
        ws.close()
        raise
    trainer = resumption.trainer
    if elastic.attempt() > 0:
        trainer.notes.append(elastic.restart_note(launch, world, trainer.step))
    if not writer:
        ws.close()
        return _train(trainer, None, None, args.json, launch=launch)
    return _train(trainer, ws, resumption.run, args.json, launch=launch)


def _launch_resume(args) -> int:
    """`torchwork resume RUN --nproc-per-node N`: continue a run on N processes."""
    from .distributed.launch import launch_local

    if args.nproc_per_node < 1:
        raise UsageError(f"--nproc-per-node must be >= 1 (got {args.nproc_per_node})")
    argv = ["resume", args.run_id, *[f"--set={o}" for o in args.overrides]]
    for flag, value in (("--max-steps", args.max_steps), ("--workspace", args.workspace)):
        if value is not None:
            argv.append(f"{flag}={value}")
    return launch_local(args.nproc_per_node, argv + (["--json"] if args.json else []),
                        max_restarts=args.max_restarts)


def _check_restarts(args) -> None:
    if args.max_restarts < 0:
        raise UsageError(f"--max-restarts must be >= 0 (got {args.max_restarts})")
    if args.max_restarts and args.nproc_per_node is None:
        raise UsageError("--max-restarts restarts the processes of --nproc-per-node N: give "
                         "both (under torchrun itself, give torchrun --max-restarts)")


def _workspace_root(args) -> Path:
    from .workspace.store import default_workspace_dir

    return Path(args.workspace).expanduser() if args.workspace else default_workspace_dir()


def _launch(args, cfg: RunConfig) -> int:
    """`torchwork run --nproc-per-node N`: the same command on N processes under torchrun."""
    from .distributed.launch import launch_local

    if args.nproc_per_node < 1:
        raise UsageError(f"--nproc-per-node must be >= 1 (got {args.nproc_per_node})")
    if cfg.train.strategy == "none" and args.nproc_per_node > 1:
        raise UsageError("--nproc-per-node trains on several processes, but train.strategy="
                         "'none' trains in one: set train.strategy='ddp' (or 'auto')")
    if cfg.train.cv_folds and not cfg.train.cv_fold:
        raise UsageError(ONE_RUN_ONLY)
    cfg.validate()  # a bad option is one line here, before any process starts
    argv = ["run", args.config, *[f"--set={o}" for o in args.overrides]]
    for flag, value in (("--max-steps", args.max_steps), ("--name", args.name),
                        ("--workspace", args.workspace)):
        if value is not None:
            argv.append(f"{flag}={value}")
    return launch_local(args.nproc_per_node, argv + (["--json"] if args.json else []),
                        max_restarts=args.max_restarts)


ONE_RUN_ONLY = ("several processes train one run: a cross-validation group (train.cv_folds) "
                "trains its folds one after another in one process; set train.cv_fold to "
                "train one fold on several")


def _writes_workspace(cfg: RunConfig) -> bool:
    """Only rank 0 of a distributed run writes the workspace, the console and checkpoints."""
    from .distributed import strategy_of

    return strategy_of(cfg) == "none" or os.environ.get("RANK", "0") == "0"


def _reads_runs(cfg: RunConfig) -> bool:
    """A rank other than 0 opens the workspace only to read a run the config names."""
    init = cfg.model.init
    return bool(cfg.distill.teacher) or bool(init and not init.endswith(".safetensors"))


def _train(trainer, ws, run, as_json: bool, *, launch=None) -> int:
    """Train ``trainer`` as workspace run ``run``; ``ws`` None: a rank other than 0 of a
    distributed run, which trains its share silently and writes nothing. ``launch``: the
    torchrun launch's folder, where a rank that did not die says so (engine.distributed.
    elastic)."""
    from .distributed import elastic, leave_group
    from .monitor.recorder import record_run
    from .reporting import JsonLines, ProgressBar
    from .training.relay import connect_window

    # What the hardware monitor cannot read matters on a GPU run only ("No NVIDIA GPU found").
    on_gpu = trainer.device.type == "cuda"
    recorder = link = None
    if ws is not None:
        link = connect_window()  # a run the window started on several processes
        recorder = record_run(trainer, ws, run, on_problem=_say_hardware if on_gpu else None,
                              on_sample=None if link is None else
                              partial(link.post, "hardwareSampled"))
        (JsonLines() if as_json else ProgressBar()).attach(trainer)
        if link is not None:
            link.follow(trainer, run)
    interrupted = []
    # Under torchrun a Ctrl-C reaches each rank twice (the terminal, then the agent): the
    # stop is agreed between the ranks, and the agent ends a rank that does not answer.
    distributed = trainer.dist is not None

    def on_signal(signum, frame):
        if interrupted and distributed:
            return
        if interrupted:  # a second Ctrl-C: leave now; the run is marked interrupted
            raise KeyboardInterrupt
        interrupted.append(signum)
        if distributed:
            elastic.mark_alive(launch, trainer.dist.rank)
        if ws is not None:
            print("\nstopping after this step and writing a checkpoint"
                  + ("" if distributed else " (Ctrl-C again to abort)"), file=sys.stderr)
        trainer.stop("user")

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = trainer.run()
    except KeyboardInterrupt:
        ws.update_run(run.id, status="interrupted")
        print(f"aborted: run {run.id} is marked interrupted; `torchwork resume {run.id}` "
              f"continues from its last checkpoint", file=sys.stderr)
        return EXIT_STOPPED
    finally:
        if distributed:  # before the signals are restored: the agent's SIGTERM may be near
            elastic.mark_alive(launch, trainer.dist.rank)
        for s, handler in previous.items():
            signal.signal(s, handler)
        if ws is not None:
            recorder.stop()
            ws.close()
        if distributed:
            leave_group()
        if link is not None:  # the window hears the end once the run is written
            link.close()
    if ws is None:  # rank 0 says how the run ended: a non-zero exit here would make
        return EXIT_OK  # torchrun's agent end rank 0 while it writes the run's end
    if result.status == "failed":
        if as_json:
            print(f"torchwork: run {run.id} failed: {result.error}", file=sys.stderr)
        return EXIT_FAILED
    if result.status == "stopped":
        if not as_json:
            print(f"continue with: torchwork resume {run.id}"
                  + (f" --workspace {ws.root}" if ws.root else ""), file=sys.stderr)
        return EXIT_STOPPED
    return EXIT_OK


def _say_hardware(text: str) -> None:
    print(f"hardware monitor: {text}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
