"""`torchwork summary CONFIG`: the model a config trains, layer by layer (engine.summary).

A table like torchinfo's (type, output shape, parameters trainable and
frozen, FLOPs and activation memory at the configured batch size) and the
totals under it; with ``--json`` one JSON object on stdout (the window's
Model summary reads it). Nothing is trained and nothing is written.
"""

from __future__ import annotations

import json
import sys


def register(subparsers, common) -> None:
    p = subparsers.add_parser(
        "summary", parents=[common], help="per-layer shapes, parameters, FLOPs and memory",
        description="Summarize the model CONFIG trains: per layer its type, output shape, "
                    "parameters (trainable / frozen), forward FLOPs (torch.utils.flop_counter) "
                    "and activation memory at the configured batch size; the totals, the "
                    "training step's FLOPs and the model's size in each precision.")
    p.add_argument("config", help="path to a run configuration (.toml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one option, e.g. --set data.batch_size=128 (repeatable)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(handler=cmd_summary)


def cmd_summary(args) -> int:
    """Exit 0 with the summary, 2 for a bad configuration or model (raised to the CLI's
    handling as ConfigError), 1 with one line for a model whose pass cannot be measured."""
    from engine import cli
    from engine.summary import SummaryError, summarize, table_text

    args.max_steps = None
    cfg = cli._config_for_run(args)
    try:
        result = summarize(cfg, workspace=args.workspace).to_dict()
    except SummaryError as exc:
        print(f"torchwork summary: {exc}", file=sys.stderr)
        return cli.EXIT_FAILED
    print(json.dumps(result) if args.json else table_text(result))
    return cli.EXIT_OK
