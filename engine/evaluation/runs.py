"""Evaluating a workspace run: after training (a handler) and on demand (a command, the dock).

After training, the report is made from the Trainer's own model and data at
the end of a completed run (the best epoch's weights when early stopping
restored them), so no second load is needed. On demand, the run's model is
rebuilt from its config and checkpoint the way export rebuilds it, with the
same seeded split and preprocessing as in training.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .external import image_rows, table_rows
from .report import (
    SPLIT_NAMES,
    EvaluationError,
    evaluate_model,
    save_report,
    split_batches,
)

# How `--data PATH` reads a file through a run's stored preprocessing, by the prefix of the
# run's data.dataset: loader(path, bundle, config) -> a DataBundle-like object whose
# x_val/y_val hold the file's rows (engine/evaluation/external.py).
EXTERNAL_LOADERS: dict[str, Callable] = {"table:": table_rows, "images:": image_rows}


class EvaluateAtEnd:
    """At the end of a completed training run: evaluate on the validation split (and the test split
    when the data has one), store the reports in the run folder and say so in its log.

    The run has succeeded by then: a report that cannot be made is written to the log
    (with the command that retries it), not turned into a failed run.
    """

    def __init__(self, run, log=None):
        self.run = run
        self.log = log
        self.trainer = None

    def attach(self, trainer) -> EvaluateAtEnd:
        from engine.training.events import RunEnded

        self.trainer = trainer
        trainer.on(RunEnded, self._on_run_ended)
        return self

    def _on_run_ended(self, event) -> None:
        if event.status != "completed" or self.run.kind != "train":
            return  # a profile capture's few steps make no model to judge
        t = self.trainer
        has_test = any(getattr(t.data, name, None) is not None
                       for name in ("x_test", "test_dataset"))
        splits = ["val", "test"] if has_test else ["val"]
        model = None  # the trained model whole (a sharded run's: rebuilt from its checkpoint)
        for split in splits:
            try:
                model = t.whole_model() if model is None else model
                report = evaluate_model(model, t.data, split, run=self.run, step=event.steps,
                                        device=t.device)
                save_report(self.run.dir, report)
            except Exception as exc:  # the log says it; the run stays completed
                self._say(f"evaluation on the {SPLIT_NAMES[split]} split failed: "
                          f"{type(exc).__name__}: {exc}; retry with `torchwork evaluate "
                          f"{self.run.id} --split {split}`")
                continue
            self._say(f"evaluation on the {SPLIT_NAMES[split]} split ({report['n']} samples): "
                      f"{summary(report)}")

    def _say(self, text: str) -> None:
        if self.log is not None:
            self.log.write(text)


def summary(report: dict) -> str:
    """One line of the headline numbers, for logs and status bars."""
    r = report["metrics"]
    if report["task"] == "classification":
        auc = "-" if r["roc_auc"] is None else f"{r['roc_auc']:.3f}"
        return (f"accuracy {r['accuracy']:.3f}, balanced accuracy {r['balanced_accuracy']:.3f}, "
                f"macro F1 {r['macro_f1']:.3f}, ROC-AUC {auc}, log loss {r['log_loss']:.3f}, "
                f"ECE {r['ece']:.3f}")
    if r["mse"] is None:
        return "predictions are not finite: no regression metric"
    r2 = "-" if r["r2"] is None else f"{r['r2']:.3f}"
    return f"RMSE {r['rmse']:.4g}, MAE {r['mae']:.4g}, R² {r2}"


def evaluate_run(workspace, run_ref, split: str = "val", *, data: str | Path | None = None,
                 store: bool = True) -> dict:
    """The report of a workspace run on ``split``, made now from its checkpoint; stored in
    the run's folder (unless ``store`` is False or ``data`` names another file).

    Raises EvaluationError for a run that cannot be rebuilt or has no such split.
    """
    from engine.export import ExportInputError, load_run_model

    try:
        loaded = load_run_model(workspace, run_ref)
    except ExportInputError as exc:
        raise EvaluationError(str(exc)) from None
    bundle = loaded.bundle
    if data is not None:
        bundle, split = external_bundle(loaded.config, bundle, Path(data)), "val"
    split_batches(bundle, split)  # no such split: say so before any work
    report = evaluate_model(loaded.model, bundle, split, run=loaded.run, step=loaded.step)
    if data is not None:
        report["split"], report["data"] = "data", str(Path(data).resolve())
    elif store:
        try:
            save_report(loaded.run.dir, report)
        except OSError as exc:  # a read-only or full workspace: the report is still made
            report["note"] = (f"the report is not stored in {loaded.run.dir} "
                              f"({exc.strerror or exc})")
    report.pop("thumbnails", None)
    return report


def external_bundle(config, bundle, path: Path):
    """The rows of the file ``path`` prepared with the run's stored preprocessing, through
    the loader registered for the run's kind of dataset."""
    dataset = config.data.dataset
    prefix = next((p for p in EXTERNAL_LOADERS if dataset.startswith(p)), None)
    if prefix is None:
        kinds = ", ".join(f"{p}…" for p in EXTERNAL_LOADERS) or "none in this Torchwork yet"
        raise EvaluationError(f"--data {path}: this run trained on {dataset!r}, and a file can "
                              f"only be evaluated through the stored preprocessing of a run "
                              f"that trained on a file of its kind (table: or images: "
                              f"datasets; readers here: {kinds}); evaluate its own splits "
                              f"with --split val|test")
    if not path.exists():
        raise EvaluationError(f"--data {path}: not found")
    return EXTERNAL_LOADERS[prefix](path, bundle, config)
