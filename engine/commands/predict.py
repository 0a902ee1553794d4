"""`torchwork predict RUN --data PATH --out PATH.csv`: a run's model on new rows or images.

One CSV row per input (engine.predict documents its columns), written atomically.
Notes (ignored columns, skipped images) and the progress bar go to stderr; exit 2
for bad input (unknown run, unreadable file, missing column), with nothing written.
"""

from __future__ import annotations

import json
import sys


def register(subparsers, common) -> None:
    p = subparsers.add_parser(
        "predict", parents=[common], help="predict with a run's model on a table or images",
        description="Run the trained model of RUN on new data: a table (.csv, .tsv, .parquet) "
                    "or images (a folder, an image file, or a .csv/.txt list of paths), "
                    "through the preprocessing fitted on the run's training split. Writes one "
                    "CSV row per input: an id (row or path), the predicted class and one "
                    "prob_<class> column per class, or the predicted value in the target's "
                    "original units.")
    p.add_argument("run", metavar="RUN", help="run id or folder name as `torchwork runs` shows")
    p.add_argument("--data", required=True, metavar="PATH", help="table file or images")
    p.add_argument("--out", required=True, metavar="PATH.csv", help="CSV file to write")
    p.add_argument("--batch-size", type=int, default=256, metavar="N",
                   help="rows per forward pass (default 256)")
    p.add_argument("--json", action="store_true", help="print a one-line JSON summary")
    p.set_defaults(handler=cmd_predict)


def cmd_predict(args) -> int:
    from tqdm import tqdm

    from engine.cli import EXIT_OK, UsageError
    from engine.predict import PredictError, predict_file

    bar: list[tqdm] = []

    def progress(done: int, total: int) -> None:
        if not bar:
            bar.append(tqdm(total=total, unit="row", desc="predict", file=sys.stderr,
                            dynamic_ncols=True, leave=False))
        bar[0].update(done - bar[0].n)

    try:
        report = predict_file(args.workspace, args.run, args.data, args.out,
                              batch_size=args.batch_size, progress=progress)
    except PredictError as exc:
        raise UsageError(str(exc)) from None
    finally:
        if bar:
            bar[0].close()
    for note in report.notes():
        print(f"note: {note}", file=sys.stderr)
    run = report.run
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        print(f"run {run['id']} ({run['name']}), weights at step {run['step']}: "
              f"{report.rows} prediction(s) written to {report.out}")
    return EXIT_OK
