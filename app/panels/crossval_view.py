"""A cross-validation group in the Training dock: its folds' curves together and
each metric's mean ± std across the folds, above the plots.

A group (train.cv_folds = K) is K ordinary workspace runs sharing
``RunRecord.run_group``. Opening any of them (File ▸ Open run…), or the end of a
group trained from the window, overlays the folds, named "fold 1".."fold K", on
the training plots (app.panels.run_overlay) with the summary engine.crossval
computes for `torchwork runs` (the same numbers, not a second computation).
"""

from __future__ import annotations

import html

from PySide6.QtCore import QObject

from app.panels.run_overlay import OverlayRun, run_style
from app.panels.training_plots import TrainingPlots


def group_overlay(ws, group: str) -> tuple[list[OverlayRun], dict]:
    """The group's folds, in fold order, as overlay runs, and engine.crossval's summary."""
    from engine.crossval import summarize

    summary = summarize(ws, group)
    folds = sorted(summary["folds"], key=lambda f: f["fold"])
    runs = [OverlayRun(f"fold {f['fold']}", ws.step_metrics(f["run_id"]),
                       ws.epoch_metrics(f["run_id"])) for f in folds]
    return runs, summary


def summary_html(summary: dict) -> str:
    """A compact table: a row per validation metric, its mean ± std over the completed
    folds, then each fold's final value under the fold's colour."""
    folds = sorted(summary["folds"], key=lambda f: f["fold"])
    head = "".join(f'<th align="right"><span style="color:{run_style(i)[0]}">&#9632;</span> '
                   f'fold {f["fold"]}</th>' for i, f in enumerate(folds))
    rows = []
    for name, m in summary["metrics"].items():
        cells = "".join(
            f'<td align="right">{_value(f["metrics"][name]) if name in f["metrics"] else "–"}'
            f'</td>' for f in folds)
        rows.append(f"<tr><td>{html.escape(name)}</td><td align=\"right\"><b>"
                    f"{m['mean']:.4g} ± {m['std']:.2g}</b></td>{cells}</tr>")
    stopped = [f"fold {f['fold']} {f['status']}" for f in folds if f["status"] != "completed"]
    title = (f"<b>Cross-validation {html.escape(summary['group'])}</b>: "
             f"{summary['completed']} of {summary['k']} folds completed"
             + (f" ({html.escape(', '.join(stopped))})" if stopped else "")
             + ("; mean ± std over the completed folds" if summary["metrics"] else ""))
    table = (f'<table cellspacing="0" cellpadding="2"><tr><th align="left">metric</th>'
             f'<th align="right">mean ± std</th>{head}</tr>{"".join(rows)}</table>'
             if rows else "")
    return title + table


def _value(v: float) -> str:
    return f"{v:.4g}"


class CrossValView(QObject):
    """Shows a run's cross-validation group on ``plots`` when asked (``show_run``) and when
    the window's run process ends after training a group (``on_state``, the bridge's
    stateChanged)."""

    def __init__(self, plots: TrainingPlots, workspace_dir, parent: QObject | None = None):
        super().__init__(parent)
        self.plots, self.workspace_dir = plots, workspace_dir
        self._last_run: int | None = None  # the last run the window's process trained
        self.group: str | None = None  # the group shown, if any

    def on_run_created(self, info) -> None:
        self._last_run = info.run_id

    def on_state(self, state: str) -> None:
        """The run process ended (idle): if it trained a group, show the whole group."""
        if state == "idle" and self._last_run is not None:
            run, self._last_run = self._last_run, None
            self.show_run(run)

    def show_run(self, run_id: int) -> bool:
        """Overlay the folds of run ``run_id``'s group, with the summary; False (and nothing
        changed) for a run of no group or one that cannot be read."""
        from engine.workspace import Workspace, WorkspaceError

        try:
            with Workspace(self.workspace_dir) as ws:
                group = ws.get_run(run_id).run_group
                if not group:
                    return False
                runs, summary = group_overlay(ws, group)
        except (WorkspaceError, OSError):
            return False  # the window says why when it opens the run itself
        self.group = group
        self.plots.overlay_runs(runs, caption=summary_html(summary))
        return True


def install(window) -> CrossValView:
    """Wire the view into the main window: the bridge's run ends and Open run."""
    view = CrossValView(window.plots, window.workspace_dir, window)
    window.bridge.runCreated.connect(view.on_run_created)
    window.bridge.stateChanged.connect(view.on_state)
    return view
