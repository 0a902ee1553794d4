"""The training process the window starts for each run. No Qt here.

Training in its own process shares no GIL with the window: pyqtgraph paints
in Python, and on a small machine every millisecond the GUI thread held the
GIL was a millisecond the training loop waited. Only plain data crosses: the
engine's event dataclasses go out through a queue, commands ("pause",
"resume", "stop", or ("profile", CaptureOptions)) come in through a pipe.
"""

from __future__ import annotations

import threading
import traceback
from functools import partial

from engine.training.relay import DONE, Outbox, RunInfo, listen, relay_events

__all__ = ["DONE", "RunInfo", "main", "message"]


def message(exc: BaseException) -> str:
    text = str(exc)
    return text if text else type(exc).__name__


def main(config_toml: str | None, resume_run: int | None, workspace_dir, events,
         commands, name: str | None = None, kind: str = "train") -> None:
    """Build the run (called ``name``, or a name from its config; a workspace run of
    ``kind``), train it, and report everything on ``events`` as lists of (name, args)."""
    outbox = Outbox(events.put)
    try:
        _train(config_toml, resume_run, workspace_dir, outbox.post, commands, name, kind)
    finally:
        outbox.post(DONE)
        events.close()
        events.join_thread()  # everything is in the pipe before the process ends


def _train(config_toml, resume_run, workspace_dir, post, commands, name, kind) -> None:
    from engine.profiling.capture import ProfilerCapture
    from engine.workspace import Workspace

    stop_early = threading.Event()
    holder: list = []  # the trainer training now
    profiler = ProfilerCapture(on_done=lambda result: post("profileDone", result))

    listen(commands, holder, stop_early, profiler)  # while the run is built and trains
    try:
        ws = Workspace(workspace_dir)
    except Exception as exc:
        post("buildFailed", f"cannot open the workspace: {message(exc)}")
        return
    try:
        for trainer, run in _runs(ws, config_toml, resume_run, name, kind, post):
            _train_run(trainer, run, ws, post, profiler, holder, resume_run is not None,
                       stop_early)
            if stop_early.is_set():  # Stop ends a cross-validation group, not only its fold
                break
    finally:
        ws.close()


def _runs(ws, config_toml, resume_run, name, kind, post):
    """The (trainer, workspace run) pairs to train, in order: one, or each fold of a
    cross-validation group (train.cv_folds = K, every run created before the first
    trains, as `torchwork run` does). A config, model file or checkpoint that cannot
    be built is posted as buildFailed and ends the sequence."""
    from engine.config import RunConfig
    from engine.crossval import create_group, fold_configs
    from engine.run_builder import build_trainer
    from engine.training.resume import prepare_resume
    from engine.workspace.records import default_run_name

    try:
        if resume_run is not None:
            resumption = prepare_resume(ws, resume_run,
                                        build=partial(build_trainer, workspace=ws))
            yield resumption.trainer, resumption.run
            return
        config = RunConfig.from_toml(config_toml)
        if not (config.train.cv_folds and not config.train.cv_fold):
            trainer = build_trainer(config, ws)
            yield trainer, ws.create_run(trainer.config, name, kind)  # the task its data decided
            return
        configs = fold_configs(config)
        trainer = build_trainer(configs[0], ws)  # a config the data refuses fails here
        _group, runs = create_group(ws, configs, name or default_run_name(config))
    except Exception as exc:  # a bad config, model file or checkpoint: the user can act
        post("buildFailed", message(exc))
        return
    yield trainer, runs[0]
    for config, run in zip(configs[1:], runs[1:]):
        try:
            trainer = build_trainer(config, ws)
        except Exception as exc:
            post("buildFailed", f"fold {config.train.cv_fold} of {len(configs)}: "
                                f"{message(exc)}")
            return
        yield trainer, run


def _train_run(trainer, run, ws, post, profiler, holder: list, resumed: bool,
               stop_early: threading.Event) -> None:
    from engine.monitor.recorder import record_run

    record_run(trainer, ws, run, on_sample=partial(post, "hardwareSampled"))
    profiler.worker = f"run{run.id}"
    profiler.attach(trainer, run.dir)  # always: steps then carry the step events it needs
    relay_events(trainer, post)
    holder[:] = [trainer]
    if stop_early.is_set():  # Stop pressed while the run was still being built
        trainer.stop()
    post("runCreated", RunInfo(run.id, run.name, str(run.dir), resumed))
    try:
        trainer.run()
    except Exception as exc:  # a handler failed after the run ended (e.g. a full disk)
        post("internalError", message(exc), traceback.format_exc())

