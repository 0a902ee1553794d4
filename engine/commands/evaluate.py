"""`torchwork evaluate RUN [--split val|test] [--data PATH] [--json]`: judge a run's model.

The same report as the window's Evaluation dock and as the one written at the
end of every completed run: the run's model is rebuilt from its checkpoint and
run on the split (or on the rows of PATH, through the run's stored
preprocessing), the report is stored in the run's folder and printed. Exit 2
for bad input (unknown run, no checkpoint, no test split, an unreadable file).
"""

from __future__ import annotations

import json
import sys

SPLITS = ("val", "test")  # engine.evaluation.SPLITS, spelled out: that import loads sklearn


def register(subparsers, common) -> None:
    p = subparsers.add_parser(
        "evaluate", parents=[common], help="judge a run's trained model on its val/test split",
        description="Evaluate the trained model of RUN on its validation split (or its test "
                    "split, or the rows of a file): accuracy, balanced accuracy, per-class "
                    "precision/recall/F1, confusion matrix, ROC-AUC, log loss and calibration "
                    "error; MSE, RMSE, MAE and R² for regression. The report is stored in the "
                    "run's folder, where the window's Evaluation dock reads it.")
    p.add_argument("run", metavar="RUN", help="run id or folder name as `torchwork runs` shows")
    p.add_argument("--split", choices=SPLITS, default="val",
                   help="validation split (default) or the held-out test split")
    p.add_argument("--data", metavar="PATH",
                   help="evaluate on this table or image folder instead, prepared with the "
                        "run's stored preprocessing (runs trained on table: or images: data)")
    p.add_argument("--json", action="store_true",
                   help="print the metrics as one JSON object (fractions in [0, 1])")
    p.set_defaults(handler=cmd_evaluate)


def cmd_evaluate(args) -> int:
    from engine.cli import EXIT_OK, UsageError
    from engine.evaluation import EvaluationError, headline
    from engine.evaluation.runs import evaluate_run

    if args.data is not None and args.split != "val":
        raise UsageError("--data and --split test exclude each other: --data evaluates on the "
                         "rows of its file")
    try:
        report = evaluate_run(args.workspace, args.run, args.split, data=args.data)
    except EvaluationError as exc:
        raise UsageError(str(exc)) from None
    if "note" in report:
        print(f"torchwork evaluate: note: {report['note']}", file=sys.stderr)
    if args.json:
        print(json.dumps(headline(report), indent=1))
        return EXIT_OK
    print("\n".join(text_report(report)))
    return EXIT_OK


def text_report(report: dict) -> list[str]:
    from engine.evaluation.report import SPLIT_NAMES
    from engine.evaluation.runs import summary

    run = report["run"]
    where = (report["data"] if report["split"] == "data"
             else f"its {SPLIT_NAMES[report['split']]} split")
    lines = [f"run {run['id']} ({run['name']}), weights at step {report['step']}, on {where}: "
             f"{report['n']} samples", summary(report)]
    r = report["metrics"]
    if report["task"] != "classification":
        return lines
    rows = [("CLASS", "PRECISION", "RECALL", "F1", "SUPPORT")]
    rows += [(c["class"], f"{c['precision']:.3f}", f"{c['recall']:.3f}", f"{c['f1']:.3f}",
              str(c["support"])) for c in r["per_class"]]
    rows += [("macro avg", "", "", f"{r['macro_f1']:.3f}", ""),
             ("weighted avg", "", "", f"{r['weighted_f1']:.3f}", "")]
    lines += ["", *_table(rows), "", "confusion matrix (rows: true class, columns: predicted)"]
    names = report["class_names"]
    lines += _table([("", *names)] + [(names[i], *map(str, row))
                                      for i, row in enumerate(r["confusion_matrix"])])
    return lines


def _table(rows) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.rjust(w) if i else cell.ljust(w)
                      for i, (cell, w) in enumerate(zip(row, widths))).rstrip() for row in rows]
