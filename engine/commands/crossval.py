"""`torchwork run` of a config with train.cv_folds = K: K fold runs as one group, then the summary.

Every fold run is created before the first trains, so the group is whole in
`torchwork runs` from the start; a fold the process did not reach is marked
interrupted when the workspace is next opened and `torchwork resume` trains it.
"""

from __future__ import annotations

import json
import sys

from engine.config import RunConfig


def run_folds(args, cfg: RunConfig) -> int:
    from engine import cli
    from engine.crossval import create_group, fold_configs, summarize, summary_line
    from engine.workspace.records import default_run_name

    configs = fold_configs(cfg)
    k = len(configs)
    base = args.name or default_run_name(cfg)
    ws = cli._open_workspace(args)
    try:
        trainer = cli._build_trainer(configs[0], ws)  # a config the data refuses fails here
        group, runs = create_group(ws, configs, base)
    finally:
        ws.close()
    for index, run in enumerate(runs):
        ws = cli._open_workspace(args)
        if index:
            try:
                trainer = cli._build_trainer(configs[index], ws)
            except BaseException:
                ws.close()
                raise
        if not args.json:
            print(f"fold {index + 1} of {k}: run {run.id} ({group})", file=sys.stderr)
        code = cli._train(trainer, ws, run, args.json)  # closes ws
        if code != cli.EXIT_OK:
            rest = " ".join(str(r.id) for r in runs[index:])
            print(f"cross-validation {group} ended at fold {index + 1} of {k}: `torchwork "
                  f"resume RUN` for each of runs {rest} completes it", file=sys.stderr)
            return code
    with cli._open_workspace(args) as ws:
        summary = summarize(ws, group)
    if args.json:
        print(json.dumps({"event": "cv_summary", **summary}))
    else:
        print(summary_line(summary))
    return cli.EXIT_OK
