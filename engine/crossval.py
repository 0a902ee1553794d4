"""Cross-validation as a group of ordinary runs (``train.cv_folds = K``).

Each fold is a workspace run whose config names its fold (``train.cv_fold``),
so it trains, resumes, opens and exports like any run; the runs share a group
tag. The group's result is read back from the workspace: each fold's final
validation metrics, and their mean and standard deviation across the folds
that completed (numpy's population std, as scikit-learn's ``cross_val_score``
results are usually summarised).
"""

from __future__ import annotations

import math

import numpy as np

from engine.config import RunConfig


def fold_configs(cfg: RunConfig) -> list[RunConfig]:
    """One config per fold of ``cfg`` (train.cv_folds = K, train.cv_fold = 0): fold 1 to K."""
    configs = []
    for fold in range(1, cfg.train.cv_folds + 1):
        one = cfg.copy()
        one.train.cv_fold = fold
        configs.append(one)
    return configs


def group_tag(first_run_id: int) -> str:
    """The group's tag, named after its first fold's run: "cv-0007"."""
    return f"cv-{first_run_id:04d}"


def create_group(workspace, configs: list[RunConfig], base: str) -> tuple[str, list]:
    """Every fold's run (named "<base>-fold<i>of<K>"), created before the first trains so
    the group is whole in the runs table from the start; returns (group tag, runs).
    `torchwork run` and the window's run process both start a group this way."""
    k = len(configs)
    runs = [workspace.create_run(configs[0], f"{base}-fold1of{k}")]
    group = group_tag(runs[0].id)
    workspace.update_run(runs[0].id, run_group=group)
    runs += [workspace.create_run(c, f"{base}-fold{i}of{k}", group=group)
             for i, c in enumerate(configs[1:], start=2)]
    return group, runs


def summarize(workspace, group: str) -> dict:
    """The group's folds and, per validation metric, mean and std over the completed folds.

    A fold's metrics are those of its last epoch (the model the run ends with;
    with early stopping, its best epoch's weights are restored, and ``best_val``
    is that epoch's monitored value, summarised too).
    """
    runs = sorted(workspace.list_runs(group=group), key=lambda r: r.id)
    folds = []
    for run in runs:
        series = workspace.epoch_metrics(run.id)
        final = {name: float(s.value[-1]) for name, s in sorted(series.items())
                 if name.startswith("val_") and len(s.value) and math.isfinite(s.value[-1])}
        cfg = run.config
        folds.append({"run_id": run.id, "name": run.name, "fold": cfg.train.cv_fold,
                      "status": run.status, "metrics": final, "best_val": run.best_val,
                      "best_metric": run.best_metric})
    done = [f for f in folds if f["status"] == "completed"]
    names = sorted({name for f in done for name in f["metrics"]})
    metrics = {}
    for name in names:
        values = np.array([f["metrics"][name] for f in done if name in f["metrics"]])
        metrics[name] = {"mean": float(values.mean()), "std": float(values.std()),
                         "folds": len(values)}
    best = [f["best_val"] for f in done if f["best_val"] is not None]
    k = runs[0].config.train.cv_folds if runs else 0
    return {"group": group, "k": k, "completed": len(done), "folds": folds, "metrics": metrics,
            "best": ({"metric": done[0]["best_metric"], "mean": float(np.mean(best)),
                      "std": float(np.std(best))} if best else None)}


def summary_line(summary: dict) -> str:
    """"group cv-0007: 5 of 5 folds completed; val_accuracy 0.953 ± 0.012, ..."."""
    shown = ", ".join(f"{name} {m['mean']:.4g} ± {m['std']:.2g}"
                      for name, m in summary["metrics"].items())
    return (f"group {summary['group']}: {summary['completed']} of {summary['k']} folds "
            f"completed" + (f"; {shown}" if shown else ""))
