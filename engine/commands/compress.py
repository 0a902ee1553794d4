"""`torchwork compress RUN`: prune, fine-tune or distil, quantize, and print the before/after table.

The ONNX files it measures stay in the run's folder (``compressed/``) or in
--out, ready to ship; `torchwork export` writes the other formats.
"""

from __future__ import annotations

import json
import sys

EXIT_OK, EXIT_FAILED = 0, 1


def register(subparsers, common) -> None:
    p = subparsers.add_parser(
        "compress", parents=[common], help="prune, quantize or distil a run's model",
        description="Compress the trained model of a run and print a table of every candidate: "
                    "parameters, non-zeros, file size, MACs, CPU latency at batch 1 and 64, "
                    "validation metric.")
    p.add_argument("run", help="run id or folder name, as `torchwork runs` shows")
    p.add_argument("--prune", default="structured",
                   choices=("structured", "unstructured", "global", "none"),
                   help="structured removes channels (Torch-Pruning); unstructured zeros the "
                        "smallest weights per layer, global across layers (default: structured)")
    p.add_argument("--ratio", type=float, default=0.5,
                   help="fraction of channels (structured) or weights to remove (default 0.5)")
    p.add_argument("--importance", default="magnitude",
                   choices=("magnitude", "taylor", "lamp", "bn_scale", "fpgm"),
                   help="channel importance for structured pruning (default: magnitude)")
    p.add_argument("--exclude", nargs="+", default=[], metavar="LAYER",
                   help="layer names to leave untouched, e.g. 0 4 (the classifier always is)")
    p.add_argument("--quantize", default="onnx", choices=("torch", "onnx", "none"),
                   help="int8 dynamic quantization with torchao (torch) or ONNX Runtime "
                        "(default: onnx)")
    p.add_argument("--finetune-epochs", type=int, default=0, metavar="N",
                   help="train the pruned model N more epochs, as a new run of the workspace "
                        "(default 0)")
    p.add_argument("--distill-from", metavar="RUN",
                   help="fine-tune by distillation from this run's model (the teacher; a run "
                        "id or a .safetensors export). To distil into a smaller model of your "
                        "own, train its config with --set distill.teacher=RUN")
    p.add_argument("--alpha", type=float, default=0.7,
                   help="weight of the distillation term (default 0.7)")
    p.add_argument("--temperature", type=float, default=4.0,
                   help="distillation temperature (default 4)")
    p.add_argument("--sweep", metavar="R1,R2,...",
                   help="several pruning ratios, e.g. 0.25,0.5,0.75 (replaces --ratio)")
    p.add_argument("--out", metavar="DIR", help="folder for the ONNX files (default: the run "
                                                "folder's compressed/)")
    p.add_argument("--repeats", type=int, default=30, help="timed repeats per latency figure")
    p.add_argument("--json", action="store_true", help="print the candidates as a JSON array")
    p.set_defaults(handler=run_compress)


def _ratios(args) -> tuple[float, ...]:
    from engine.cli import UsageError

    if not args.sweep:
        return (args.ratio,)
    try:
        return tuple(float(r) for r in args.sweep.split(",") if r.strip())
    except ValueError:
        raise UsageError(f"--sweep takes comma-separated ratios such as 0.25,0.5,0.75 "
                         f"(got {args.sweep!r})") from None


def run_compress(args) -> int:
    from pathlib import Path

    from engine.cli import UsageError, _open_workspace
    from engine.compression import (
        CompressionError,
        CompressOptions,
        compress,
        format_table,
    )
    from engine.compression.prune import check_exclude
    from engine.compression.teacher import load_teacher
    from engine.config import ConfigError
    from engine.export import ExportError, ExportInputError, load_run_model
    from engine.run_builder import workspace_train

    options = CompressOptions(
        prune=None if args.prune == "none" else args.prune, ratios=_ratios(args),
        importance=args.importance, exclude=tuple(args.exclude), quantize=args.quantize,
        finetune_epochs=args.finetune_epochs, distill_alpha=args.alpha,
        distill_temperature=args.temperature, repeats=max(1, args.repeats))
    ws = _open_workspace(args)
    try:
        try:
            options.check()
            if args.distill_from and not args.finetune_epochs:
                raise CompressionError("distillation trains the student: give "
                                       "--finetune-epochs N")
            loaded = load_run_model(ws, args.run)
            check_exclude(loaded.model, options.exclude)
            if args.distill_from:
                # a wrong reference fails now, not later
                load_teacher(args.distill_from, ws, student_arch=loaded.config.model.arch)
        except (CompressionError, ExportInputError, ConfigError) as exc:
            raise UsageError(str(exc)) from None
        out = Path(args.out) if args.out else loaded.run.dir / "compressed"
        say = (lambda text: None) if args.json else \
            (lambda text: print(f"… {text}", file=sys.stderr, flush=True))
        train = workspace_train(ws, on_trainer=None if args.json else _progress_bar)
        try:
            result = compress(loaded, options, out, teacher=_teacher(args.distill_from),
                              progress=say, train=train)
        except CompressionError as exc:
            print(f"torchwork compress: {exc}", file=sys.stderr)
            return EXIT_FAILED
        except ExportError as exc:
            print(f"torchwork compress: exporting a candidate failed: {exc}", file=sys.stderr)
            return EXIT_FAILED
    finally:
        ws.close()
    if args.json:
        print(json.dumps([c.to_dict() for c in result.candidates], indent=1))
    else:
        print(format_table(result.candidates))
        if any(c.path for c in result.candidates):
            print(f"\nONNX files: {out}")
    return EXIT_OK


def _teacher(ref: str | None) -> str | None:
    """A teacher file is stored with its full path, so the fine-tuning run resumes anywhere."""
    from pathlib import Path

    if ref and ref.endswith(".safetensors"):
        return str(Path(ref).expanduser().resolve())
    return ref


def _progress_bar(trainer) -> None:
    from engine.reporting import ProgressBar

    ProgressBar().attach(trainer)
