"""`torchwork export RUN --format F --out PATH`: a run's trained model as a verified file.

The same export as File ▸ Export trained model… in the window: the run's
model is rebuilt from its config and checkpoint, written, reloaded and run on
held-out rows of its validation split. Exit 1 when writing or verification
fails (nothing is left at PATH), 2 for bad input (unknown run, no checkpoint,
an existing PATH without --force).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# engine.export.FORMATS, spelled out: importing engine.export loads torch, which would
# slow every `torchwork` command by seconds just to build this parser (a test checks both).
FORMATS = ("safetensors", "pt2", "onnx")


def register(subparsers, common) -> None:
    p = subparsers.add_parser(
        "export", parents=[common], help="export a run's trained model (safetensors, pt2, onnx)",
        description="Write the trained model of RUN as safetensors (weights + config to rebuild "
                    "it), a torch.export program (.pt2, the successor of TorchScript) or ONNX "
                    "(dynamic batch), then verify it: reload it and compare its outputs with "
                    "the model's on held-out validation rows.")
    p.add_argument("run", metavar="RUN", help="run id or folder name as `torchwork runs` shows")
    p.add_argument("--format", choices=FORMATS,
                   help="file format (default: from the suffix of --out)")
    p.add_argument("--out", required=True, metavar="PATH", help="file to write")
    p.add_argument("--force", action="store_true", help="overwrite PATH if it exists")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(handler=cmd_export)


def cmd_export(args) -> int:
    from engine.cli import EXIT_FAILED, EXIT_OK, UsageError
    from engine.export import (
        SUFFIXES,
        ExportError,
        ExportInputError,
        export_model,
        human_size,
        load_run_model,
    )

    out = Path(args.out).expanduser()
    fmt = args.format or next((f for f, s in SUFFIXES.items() if out.suffix == s), None)
    if fmt is None:
        raise UsageError(f"cannot tell the format from {out.name!r}: pass --format "
                         f"{'|'.join(SUFFIXES)} or name the file "
                         f"{' / '.join('*' + s for s in SUFFIXES.values())}")
    if out.exists() and not args.force:  # refused before the slow part
        raise UsageError(f"{out} already exists: pass --force to overwrite it")
    try:
        loaded = load_run_model(args.workspace, args.run)
        report = export_model(loaded.model, loaded.example, fmt, out, meta=loaded.meta,
                              overwrite=args.force)
    except ExportInputError as exc:
        raise UsageError(str(exc)) from None
    except ExportError as exc:
        print(f"torchwork export: {exc}", file=sys.stderr)
        return EXIT_FAILED
    run = loaded.run
    if args.json:
        print(json.dumps({"run": {"id": run.id, "name": run.name, "step": loaded.step},
                          **report.to_dict()}, indent=1))
        return EXIT_OK
    extra_bytes = sum(p.stat().st_size for p in report.extra_files)
    print(f"run {run.id} ({run.name}), weights at step {loaded.step}, exported as {fmt}")
    print(f"  {report.path}  {human_size(report.size_bytes - extra_bytes)}")
    for path in report.extra_files:
        print(f"  {path}  {human_size(path.stat().st_size)}  (external data: keep it beside "
              f"{report.path.name})")
    print(f"verified: reloaded and run on a held-out batch of {report.batch}: max abs "
          f"difference {report.max_abs_diff:.3g} (tolerance {report.tolerance:.1g})")
    for note in report.notes:
        print(f"note: {note}")
    return EXIT_OK
