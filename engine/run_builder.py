"""Building a run from its config: the Trainer, and what the config attaches to it.

The Trainer knows training alone. Distillation (``distill.teacher``) lives in
engine.compression and needs engine.export to load its teacher, so it is
attached here, from outside, as the Trainer's loss provider: engine.training
depends on neither (an import-linter contract in pyproject.toml keeps it so).
Every place that trains a config builds it here (`torchwork run`, `resume` and
`profile`, the window's run process, compression's fine-tuning runs), so a
student run distils however it was started or resumed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

    from engine.config import RunConfig


def build_trainer(config: RunConfig, workspace=None, **options):
    """The Trainer for ``config``, ready to ``run()``; ``options`` go to the Trainer.

    ``workspace`` (a Workspace or its folder) finds a teacher named by run id. A
    teacher that does not fit the run fails here with a ConfigError, before any event.
    """
    from engine.config import ConfigError
    from engine.training import Trainer

    if config.train.cv_folds and not config.train.cv_fold:
        raise ConfigError(f"train.cv_folds={config.train.cv_folds} trains a group of runs, one "
                          f"per fold: start it with `torchwork run CONFIG.toml`, or set "
                          f"train.cv_fold to train one fold here")
    if config.search is not None:  # a run trains the config's own values: [search] is
        config = config.copy()      # for `torchwork search`, and is not stored with the run
        config.search = None
    init = config.model.init
    if init and not init.endswith(".safetensors"):
        options["init"] = run_weights(workspace, init)
    trainer = Trainer(config, **options)
    if config.distill.teacher:
        from engine.compression.teacher import attach_distillation

        attach_distillation(trainer, workspace)
    return trainer


def run_weights(workspace, ref: str):
    """The trained weights of the run ``model.init`` names (id or name, as `torchwork runs`
    shows), as the Trainer's ``init``: its checkpoint's model state. Raises ConfigError
    naming model.init for an unknown run or one without a checkpoint."""
    from engine.config import ConfigError
    from engine.export.loading import run_checkpoint
    from engine.models.fit import InitSource
    from engine.training.checkpoint import WEIGHTS, CheckpointError, load_checkpoint
    from engine.workspace import Workspace, WorkspaceError

    if workspace is None:
        raise ConfigError(f"model.init={ref!r} names a run, but this run has no workspace to "
                          f"find it in: give a .safetensors file, or train in a workspace")
    try:
        if isinstance(workspace, Workspace):
            run = workspace.get_run(ref)
        else:
            with Workspace(workspace) as ws:
                run = ws.get_run(ref)
    except (WorkspaceError, OSError) as exc:
        raise ConfigError(f"model.init={ref!r}: {exc}") from None
    checkpoint = run_checkpoint(run)
    if checkpoint is None:
        raise ConfigError(f"model.init={ref!r}: run {run.id} ({run.name}) has no checkpoint yet "
                          f"(status {run.status}): train it first")
    try:
        state = load_checkpoint(checkpoint, map_location="cpu", need=WEIGHTS)
    except CheckpointError as exc:
        raise ConfigError(f"model.init={ref!r}: {exc}") from None
    return InitSource(state["model"], {}, f"run {run.id} ({run.name})")


def workspace_train(workspace, *, on_trainer: Callable[[object], None] | None = None
                    ) -> Callable[[RunConfig, str], nn.Module]:
    """A ``train`` for engine.compression.compress(): each config trains as a run of
    ``workspace`` (a Workspace or its folder) in this process; ``on_trainer`` sees each
    Trainer before it runs (a progress bar). A run that fails or is stopped raises
    CompressionError."""
    from engine.compression import CompressionError
    from engine.compression.pipeline import check_finished
    from engine.config import ConfigError
    from engine.export import ExportInputError, load_run_model
    from engine.models import ModelError
    from engine.monitor.recorder import record_run
    from engine.workspace import Workspace

    def train(config: RunConfig, name: str) -> nn.Module:
        ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
        try:
            trainer = build_trainer(config, ws)
            run = ws.create_run(trainer.config, name)
            recorder = record_run(trainer, ws, run)
            if on_trainer is not None:
                on_trainer(trainer)
            try:
                outcome = trainer.run()
            finally:
                recorder.stop()
            check_finished(run.id, outcome.status, outcome.error, outcome.steps)
            return load_run_model(ws, run.id).model
        except (ConfigError, ModelError, ExportInputError) as exc:
            raise CompressionError(f"the fine-tuning run cannot start: {exc}") from None
        finally:
            if ws is not workspace:
                ws.close()

    return train
