"""`torchwork advise RUN|CONFIG`: diagnose a run or a config, and measure a proposed change.

The findings come from engine.advisor (evidence and rules); ``--try`` runs the
A/B of one finding, or of all that propose a change (engine.advisor.ab), and
prints what it measured: a speed-up with its interval, or no measurable gain.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def register(subparsers, common) -> None:
    p = subparsers.add_parser(
        "advise", parents=[common], help="diagnose a run or config and measure a fix",
        description="Profile a few steps of CONFIG (or read RUN's latest capture and hardware "
                    "samples), list the findings of the efficiency advisor (docs/advisor.md) "
                    "and, with --try, measure a finding's change in an A/B against the "
                    "current configuration.")
    p.add_argument("target", metavar="RUN|CONFIG",
                   help="a run id or name of the workspace, or a run configuration (.toml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one option of the diagnosed config (repeatable)")
    p.add_argument("--try", dest="try_id", metavar="ID|all",
                   help="measure the change of finding ID (or of every finding with a change)")
    p.add_argument("--change", dest="changes", action="append", default=[],
                   metavar="KEY=VALUE",
                   help="with --try ID: measure this change for finding ID as it was proposed "
                        "before, without diagnosing again (repeatable; the window's Try it)")
    p.add_argument("--pairs", type=int, default=10, metavar="N",
                   help="measured pairs of windows per A/B (default 10)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object per line (finding, ab_progress, ab_result, "
                        "advice_done)")
    p.set_defaults(handler=cmd_advise)


class _Out:
    def __init__(self, as_json: bool):
        self.as_json = as_json

    def event(self, kind: str, **fields) -> None:
        if self.as_json:
            print(json.dumps({"event": kind, **fields}, default=str), flush=True)

    def say(self, text: str = "") -> None:
        if not self.as_json:
            print(text, flush=True)


def cmd_advise(args) -> int:
    from engine import cli
    from engine.advisor.diagnose import DiagnoseError
    from engine.models import ModelError
    from engine.profiling.report import TraceReadError

    if args.pairs < 2:
        raise cli.UsageError(f"--pairs must be at least 2 (got {args.pairs})")
    if args.changes and (not args.try_id or args.try_id == "all"):
        raise cli.UsageError("--change needs --try ID: the finding whose change it is")
    out = _Out(args.json)
    ws = cli._open_workspace(args)
    try:
        if args.changes:
            return _try_given(args, ws, out)
        try:
            diagnosis = _diagnose(args, ws)
        except (DiagnoseError, TraceReadError, ModelError) as exc:
            raise cli.UsageError(str(exc)) from None
        findings = diagnosis.findings
        chosen = _chosen(findings, args.try_id)
        out.event("diagnosis", source=diagnosis.source, trace=diagnosis.trace or None,
                  notes=diagnosis.notes, evidence=diagnosis.evidence.as_dict())
        out.say(f"Diagnosis of {diagnosis.source}" +
                (f" (trace {diagnosis.trace})" if diagnosis.trace else ""))
        for note in diagnosis.notes:
            out.say(f"  note: {note}")
        if not findings:
            out.say("No findings: nothing in the capture crosses a threshold of "
                    "docs/advisor.md.")
        for f in findings:
            out.event("finding", **f.as_dict())
            _print_finding(out, f)
        status = cli.EXIT_OK
        for f in chosen:
            status = max(status, _measure(args, ws, out, diagnosis.config, f.id, f.changes))
        out.event("advice_done", findings=len(findings), tried=[f.id for f in chosen])
        return status
    finally:
        ws.close()


def _try_given(args, ws, out) -> int:
    """``--try ID --change K=V...``: the A/B of a change proposed before."""
    from engine import cli
    from engine.workspace import WorkspaceError

    changes = {}
    for item in args.changes:
        key, sep, value = item.partition("=")
        if not sep:
            raise cli.UsageError(f"--change {item!r} must look like key=value")
        changes[key.strip()] = value.strip()
    path = Path(args.target)
    if path.suffix == ".toml" or path.is_file():
        args.config, args.max_steps = args.target, None
        cfg = cli._config_for_run(args)
    else:
        try:
            cfg = ws.get_run(args.target).config.with_overrides(args.overrides)
        except WorkspaceError as exc:
            raise cli.UsageError(str(exc)) from None
    status = _measure(args, ws, out, cfg, args.try_id, changes)
    out.event("advice_done", findings=0, tried=[args.try_id])
    return status


def _measure(args, ws, out, cfg, finding: str, changes: dict) -> int:
    """The A/B of one change, told as it goes; the exit code."""
    from engine import cli
    from engine.advisor.ab import ABError, measure
    from engine.models import ModelError

    out.say(f"\nA/B of {finding}: {_changes_text(changes)}")

    def progress(done, total):
        out.event("ab_progress", finding=finding, done=done, total=total)
        if not args.json:
            print(f"  pair {done}/{total}", file=sys.stderr, flush=True)

    try:
        result = measure(cfg, changes, pairs=args.pairs, workspace=ws, on_progress=progress)
    except (ABError, ModelError) as exc:
        out.event("ab_result", finding=finding, error=str(exc))
        print(f"torchwork advise: the A/B of {finding} failed: {exc}", file=sys.stderr)
        return cli.EXIT_FAILED
    out.event("ab_result", finding=finding, **result.as_dict())
    out.say(f"  {result.summary()}")
    return cli.EXIT_OK


def _diagnose(args, ws):
    from engine import cli
    from engine.advisor.diagnose import diagnose_config, diagnose_run
    from engine.workspace import WorkspaceError

    path = Path(args.target)
    if path.suffix == ".toml" or path.is_file():
        args.config, args.max_steps = args.target, None
        cfg = cli._config_for_run(args)
        return diagnose_config(cfg, ws, source=str(path))
    try:
        return diagnose_run(ws, args.target, args.overrides)
    except WorkspaceError as exc:
        raise cli.UsageError(f"{exc} (RUN is a run id or name as `torchwork runs` lists "
                             f"them, or a .toml config)") from None


def _chosen(findings, try_id: str | None) -> list:
    from engine import cli

    if not try_id:
        return []
    if try_id == "all":
        return [f for f in findings if f.changes]
    match = [f for f in findings if f.id == try_id]
    if not match:
        ids = ", ".join(f.id for f in findings) or "none"
        raise cli.UsageError(f"--try {try_id}: no such finding (found: {ids})")
    if not match[0].changes:
        raise cli.UsageError(f"--try {try_id}: this finding proposes no configuration change "
                             f"to measure ({match[0].hint or 'see its text'})")
    return match


def _changes_text(changes: dict | None) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in (changes or {}).items())


def _print_finding(out: _Out, f) -> None:
    out.say(f"\n[{f.id}] {f.title}")
    out.say(f"  evidence: {f.evidence}")
    out.say(f"  expected: {f.effect}")
    if f.changes:
        out.say(f"  change:   {_changes_text(f.changes)}   (torchwork advise ... --try {f.id})")
    if f.hint:
        out.say(f"  by hand:  {f.hint}")
