"""`torchwork runs` (filter, sort, pick columns), `torchwork compare` and `torchwork trash`."""

from __future__ import annotations

import json
import math

from engine.workspace.schema import RUN_KINDS

DEFAULT_COLUMNS = ("id", "name", "kind", "status", "epochs_completed", "steps", "best",
                   "energy_j", "group", "created_at")
JSON_COLUMNS = ("id", "name", "kind", "status", "created_at", "steps", "epochs_completed",
                "best_val", "best_metric", "wall_s", "energy_j", "energy_per_epoch_j",
                "energy_per_1k_samples_j", "energy_source", "energy_note", "group", "study",
                "trial", "tags", "notes", "dir")
MAX_HP_COLUMNS = 6
HEADERS = {"epochs_completed": "EPOCHS", "created_at": "CREATED", "best_val": "BEST",
           "energy_j": "ENERGY_J"}


def register(sub, common) -> None:
    runs = sub.add_parser("runs", parents=[common], help="list the runs of the workspace",
                          description="List the runs of the workspace, newest first.")
    runs.add_argument("--json", action="store_true", help="print a JSON array")
    runs.add_argument("--kind", choices=RUN_KINDS,
                      help="only runs of this kind: train (trained models) or profile "
                           "(dedicated profiler captures)")
    runs.add_argument("--filter", dest="filters", action="append", default=[], metavar="EXPR",
                      help="keep runs where EXPR holds, e.g. status=completed, tag=baseline, "
                           "study=NAME, group=NAME, val_accuracy>0.9, optim.lr<0.01, "
                           "text~mnist (repeatable: all must hold)")
    runs.add_argument("--sort", metavar="KEY[:desc]",
                      help="order by a field, metric or config key, e.g. val_accuracy:desc")
    runs.add_argument("--columns", metavar="A,B,C",
                      help="columns to show: run fields, metrics or dotted config keys")
    runs.add_argument("--trash", action="store_true", help="list the trashed runs instead")
    runs.set_defaults(handler=cmd_runs)

    compare = sub.add_parser("compare", parents=[common], help="compare runs side by side",
                             description="The config keys that differ between the runs, and "
                                         "each metric's last and best value, side by side.")
    compare.add_argument("runs", nargs="+", metavar="RUN", help="run ids or folder names")
    compare.add_argument("--json", action="store_true", help="print one JSON object")
    compare.set_defaults(handler=cmd_compare)

    trash = sub.add_parser("trash", parents=[common], help="move runs to the trash, restore "
                           "them, or empty it",
                           description="Trashed runs leave every list (`torchwork runs --trash` "
                                       "shows them) until the trash is emptied, which deletes "
                                       "their records and folders.")
    trash.add_argument("runs", nargs="*", metavar="RUN", help="runs to move to the trash")
    trash.add_argument("--restore", action="store_true", help="take the RUNs out of the trash")
    trash.add_argument("--empty", action="store_true",
                       help="delete every trashed run's records and folder (cannot be undone)")
    trash.set_defaults(handler=cmd_trash)


def cmd_runs(args) -> int:
    from engine import cli
    from engine.run_query import QueryError, query, show_cell
    from engine.workspace import WorkspaceError

    columns = [c.strip() for c in args.columns.split(",") if c.strip()] if args.columns else []
    ws = cli._open_workspace(args)
    try:
        runs, table = query(ws, args.filters, sort=args.sort, kind=args.kind,
                            include_trashed="only" if args.trash else False)
        for column in columns:
            table.check_key(column, "column")
        more: list[str] = []
        if not columns:
            columns, more = _default_columns(table, runs, args.json)
        rows = [[table.value(r, c) for c in columns] for r in runs]
        groups = sorted({r.run_group for r in runs if r.run_group})
        summaries = _summaries(ws, groups) if groups and not args.json else []
    except (WorkspaceError, QueryError) as exc:
        raise cli.UsageError(str(exc)) from None
    finally:
        ws.close()
    if args.json:
        print(json.dumps([{c: _json_value(v) for c, v in zip(columns, row)} for row in rows],
                         indent=1))
        return cli.EXIT_OK
    if not runs:
        print(_nothing(args, ws.root))
        return cli.EXIT_OK
    cells = [[HEADERS.get(c, c.upper() if "." not in c else c) for c in columns]]
    for run, row in zip(runs, rows):
        cells.append([_best(run) if c == "best" else
                      (v or "")[:19] if c == "created_at" else show_cell(v)
                      for c, v in zip(columns, row)])
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    for row in cells:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    if more:
        print(f"{len(more)} more config keys differ between these runs: --columns shows "
              f"them ({', '.join(more[:4])}{', ...' if len(more) > 4 else ''})")
    for line in summaries:
        print(line)
    return cli.EXIT_OK


def cmd_compare(args) -> int:
    from engine import cli
    from engine.run_query import compare, show_cell
    from engine.workspace import WorkspaceError

    ws = cli._open_workspace(args)
    try:
        result = compare(ws, args.runs)
    except WorkspaceError as exc:
        raise cli.UsageError(str(exc)) from None
    finally:
        ws.close()
    if args.json:
        print(json.dumps(result, indent=1, default=_json_value))
        return cli.EXIT_OK
    head = ["", *(f"{r['id']} {r['name']}" for r in result["runs"])]
    rows = [head, ["status", *(r["status"] for r in result["runs"])]]
    rows += [[key, *map(show_cell, values)] for key, values in result["config"].items()]
    if not result["config"]:
        rows.append(["(config)", *(["same"] * len(result["runs"]))])
    for name, values in result["metrics"].items():
        rows.append([f"{name} last", *map(show_cell, values["last"])])
        if "best" in values:
            rows.append([f"{name} best", *map(show_cell, values["best"])])
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return cli.EXIT_OK


def cmd_trash(args) -> int:
    from engine import cli
    from engine.workspace import WorkspaceError

    if args.empty == bool(args.runs):
        raise cli.UsageError("give RUN ids to move to the trash (or --restore), or --empty "
                             "alone to delete the trashed runs")
    ws = cli._open_workspace(args)
    try:
        if args.empty:
            ids = ws.empty_trash()
            print(f"deleted {len(ids)} trashed run(s)" + (f": {', '.join(map(str, ids))}"
                                                          if ids else ""))
            return cli.EXIT_OK
        for ref in args.runs:
            (ws.restore_run if args.restore else ws.trash_run)(ref)
        verb = "restored" if args.restore else "moved to the trash"
        print(f"{verb}: {', '.join(args.runs)}"
              + ("" if args.restore else " (`torchwork trash --empty` deletes them)"))
        return cli.EXIT_OK
    except WorkspaceError as exc:
        raise cli.UsageError(str(exc)) from None
    finally:
        ws.close()


def _default_columns(table, runs, as_json: bool) -> tuple[list[str], list[str]]:
    """The standard columns with the config keys that differ between the listed runs
    after the status (the table shows MAX_HP_COLUMNS of them; JSON all)."""
    fixed = list(JSON_COLUMNS if as_json else DEFAULT_COLUMNS)
    differing = table.configs.differing([r.id for r in runs]) if len(runs) > 1 else []
    shown = differing if as_json else differing[:MAX_HP_COLUMNS]
    at = fixed.index("status") + 1
    return fixed[:at] + shown + fixed[at:], differing[len(shown):]


def _summaries(ws, groups) -> list[str]:
    from engine.crossval import summarize, summary_line

    return [summary_line(summarize(ws, g)) for g in groups]


def _best(run) -> str:
    return f"{run.best_metric} {run.best_val:.4g}" if run.best_val is not None else "-"


def _nothing(args, root) -> str:
    if args.trash:
        return f"the trash of {root} is empty"
    if args.filters:
        return f"no runs in {root} match {' and '.join(args.filters)}"
    if args.kind:
        return f"no {args.kind} runs in {root}"
    return f"no runs in {root} yet: start one with `torchwork run CONFIG.toml`"


def _json_value(value):
    if isinstance(value, tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
