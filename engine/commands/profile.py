"""`torchwork profile CONFIG`: a short dedicated run under torch.profiler, then its tables.

The trace goes to ``<run folder>/profile/<capture>/`` in TensorBoard's layout,
so ``tensorboard --logdir <run folder>`` with torch-tb-profiler and the
window's Profiler dock both open it. The same capture as Profile ▸ Capture.
"""

from __future__ import annotations

import sys

TOP_OPERATORS = 20


def register(subparsers, common) -> None:
    p = subparsers.add_parser(
        "profile", parents=[common], help="profile a few training steps of a config",
        description="Train a short dedicated run of CONFIG under torch.profiler (wait, warmup, "
                    "then --steps recorded steps), write the trace under the run folder and "
                    "print the step-time breakdown and the top operators.")
    p.add_argument("config", help="path to a run configuration (.toml)")
    p.add_argument("--steps", type=int, default=5, metavar="N",
                   help="optimizer steps to record (default 5)")
    p.add_argument("--wait", type=int, default=1, metavar="W",
                   help="steps to skip before the profiler warms up (default 1)")
    p.add_argument("--warmup", type=int, default=1, metavar="U",
                   help="steps profiled but discarded, so start-up costs stay out (default 1)")
    p.add_argument("--record-shapes", action="store_true",
                   help="record input shapes (the operator table per shape)")
    p.add_argument("--profile-memory", action="store_true",
                   help="record allocations (the memory curve)")
    p.add_argument("--with-stack", action="store_true",
                   help="record Python call stacks (larger traces)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one option, e.g. --set data.batch_size=256 (repeatable)")
    p.add_argument("--name", help="run name (default: profile-dataset-arch)")
    p.set_defaults(handler=cmd_profile)


def cmd_profile(args) -> int:
    from engine import cli
    from engine.profiling.capture import ProfilerCapture
    from engine.profiling.options import CaptureOptions, profiling_config
    from engine.profiling.report import TraceReadError, read_trace
    from engine.workspace import WorkspaceWriter
    from engine.workspace.records import default_run_name

    options = CaptureOptions(wait=args.wait, warmup=args.warmup, active=args.steps,
                             record_shapes=args.record_shapes,
                             profile_memory=args.profile_memory, with_stack=args.with_stack)
    try:
        options.validate()
    except ValueError as exc:
        raise cli.UsageError(str(exc).replace("profiler active", "--steps")) from None
    args.max_steps = None
    cfg = profiling_config(cli._config_for_run(args), options)
    ws = cli._open_workspace(args)
    try:  # the workspace finds runs the config names (model.init, distill.teacher)
        trainer = cli._build_trainer(cfg, ws)
        run = ws.create_run(trainer.config, args.name or f"profile-{default_run_name(cfg)}",
                            kind="profile")
        trainer.run_id = str(run.id)
        WorkspaceWriter(ws, run).attach(trainer)
        capture = ProfilerCapture(worker=f"run{run.id}").attach(trainer, run.dir)
        capture.request(options)
        print(f"profiling run {run.id}: {options.wait} wait, {options.warmup} warmup, "
              f"{options.active} recorded steps", file=sys.stderr)
        result = trainer.run()
    finally:
        ws.close()
    done = capture.results[-1] if capture.results else None
    failed = result.status == "failed"
    if failed:
        print(f"torchwork profile: run {run.id} failed: {result.error}", file=sys.stderr)
    if done is None or done.trace is None:
        why = done.error if done is not None else "the profiler never started"
        print(f"torchwork profile: no trace was written ({why})", file=sys.stderr)
        return cli.EXIT_FAILED
    if done.partial:
        print(f"the run ended before all {options.active} steps were recorded: the partial "
              f"trace is kept", file=sys.stderr)
    try:
        report = read_trace(done.trace)
    except TraceReadError as exc:
        print(f"torchwork profile: {exc}", file=sys.stderr)
        return cli.EXIT_FAILED
    print_report(report)
    print(f"\ntrace: {done.trace}\nopen it with: tensorboard --logdir {run.dir}")
    return cli.EXIT_FAILED if failed else cli.EXIT_OK


def print_report(report, out=None) -> None:
    """The step-time breakdown and the top operators as plain text tables."""
    from engine.profiling.report import CATEGORIES

    out = out or sys.stdout
    device = f" on {report.accelerator.describe()}" if report.has_gpu else ""
    print(f"Step-time breakdown (ms){device}", file=out)
    rows = [("Step", *CATEGORIES, "Total")]
    for s in (*report.steps, report.average):
        rows.append((s.step, *(_ms(s.costs_us[c]) for c in CATEGORIES), _ms(s.total_us)))
    _table(rows, out)
    shares = ", ".join(f"{c} {report.share(c):.0%}" for c in CATEGORIES if report.share(c) >= 0.005)
    print(f"average step {_ms(report.average.total_us)} ms: {shares}", file=out)
    print(f"\nTop {TOP_OPERATORS} operators by self time (ms)", file=out)
    rows = [("Operator", "Calls", "Host self", "Host total", "Device self", "Device total")]
    for op in report.operators[:TOP_OPERATORS]:
        name = op.name if len(op.name) <= 56 else op.name[:55] + "…"
        rows.append((name, str(op.calls), _ms(op.host_self_us), _ms(op.host_total_us),
                     _ms(op.device_self_us), _ms(op.device_total_us)))
    _table(rows, out)
    advice = (*report.hints, *report.recommendations)
    if advice:
        print("\nRecommendations", file=out)
        for text in advice:
            print(f"- {text}", file=out)


def _ms(us: float) -> str:
    return f"{us / 1000:.3f}"


def _table(rows, out) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        print("  ".join(cells).rstrip(), file=out)
