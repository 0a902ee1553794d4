"""The Runs dock in the main window: its panel acting through the window's own entry
points (File ▸ Open run, Run ▸ Resume from checkpoint, File ▸ Export trained model,
the Evaluation dock), so a run picked in the table is handled as the menus handle it."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from .runs_panel import SOURCE, RunActions, RunsPanel


def install(window) -> RunsPanel:
    """The Runs dock's panel in ``window.runs_dock``; it reads while the dock shows."""
    actions = RunActions(open=partial(_open, window), resume=partial(_resume, window),
                         export=partial(_export, window), evaluate=partial(_evaluate, window))
    panel = RunsPanel(window.workspace_dir, actions, log=window.log)
    window.runs_dock.widget().deleteLater()
    window.runs_dock.setWidget(panel)
    panel.set_shown(not window.runs_dock.visibleRegion().isEmpty())
    window.runs_dock.visibilityChanged.connect(panel.set_shown)
    panel.overlayRequested.connect(partial(_overlay, window))
    return panel


def _overlay(window, run_ids: list[int]) -> None:
    """Compare: the selected runs' curves together on the Training plots."""
    from engine.workspace import Workspace, WorkspaceError

    from .run_overlay import load_overlay

    try:
        with Workspace(window.workspace_dir) as ws:
            runs = load_overlay(ws, run_ids)
    except (WorkspaceError, OSError) as exc:
        window.messages.show_message(f"Cannot compare runs {', '.join(map(str, run_ids))}: "
                                     f"{exc}", "error", SOURCE)
        return
    window.plots.overlay_runs(runs, caption=f"{len(runs)} runs compared")
    window.training_dock.raise_()


def _open(window, run_id: int) -> None:
    if window.open_run(run_id):
        window.training_dock.raise_()


def _resume(window, run_id: int) -> None:
    if window.bridge.busy:
        window.messages.show_message("A run is training: resume this one when it has ended.",
                                     "info", SOURCE)
        return
    if window.open_run(run_id):
        window.training_dock.raise_()
        window.bridge.resume_run(run_id)


def _export(window, run_id: int) -> None:
    window.export_actions.current_run = run_id
    window.export_actions.export_model_dialog()


def _evaluate(window, run_id: int) -> None:
    from engine.workspace import Workspace, WorkspaceError

    try:
        with Workspace(window.workspace_dir) as ws:
            run = ws.get_run(run_id)
    except (WorkspaceError, OSError) as exc:
        window.messages.show_message(f"Cannot evaluate run {run_id}: {exc}", "error", SOURCE)
        return
    window.evaluation.set_run(run.id, Path(run.dir), run.name)
    window.evaluation_dock.raise_()
    window.evaluation.evaluate()
