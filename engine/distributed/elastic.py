"""Elastic restarts: after a rank dies, torchrun's agent starts every rank again
(``--max-restarts``), and the new attempt continues the same workspace run from its
last checkpoint instead of starting a second one.

A launch is known by torchrun's run id (``TORCHELASTIC_RUN_ID``: a fresh one per
`torchwork run --nproc-per-node` and per `torchrun --standalone`; on several nodes
the ``--rdzv-id`` given, which must then differ between launches). Its folder in
the workspace, ``launches/<run id>/``, holds the id of the run rank 0 created, and
for each attempt a mark from every rank that ended on its own or was stopped by the
agent: a rank without a mark is the one that died.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

LAUNCHES = "launches"


def attempt() -> int:
    """Which attempt of the launch this is: 0 first, then one more per restart."""
    return _int_env("TORCHELASTIC_RESTART_COUNT")


def max_restarts() -> int:
    return _int_env("TORCHELASTIC_MAX_RESTARTS")


def launch_folder(workspace_root: Path) -> Path | None:
    """This launch's folder in the workspace, or None outside torchrun."""
    run_id = os.environ.get("TORCHELASTIC_RUN_ID")
    if not run_id:
        return None
    return Path(workspace_root) / LAUNCHES / re.sub(r"[^\w.-]", "_", run_id)[:120]


def record_run(folder: Path | None, run_id: int) -> None:
    """Rank 0 of the first attempt: the run that later attempts continue."""
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "run").write_text(str(run_id), encoding="utf-8")


def launched_run(folder: Path | None) -> int | None:
    """The run an earlier attempt of this launch created, or None."""
    try:
        return int((folder / "run").read_text(encoding="utf-8"))
    except (TypeError, OSError, ValueError):
        return None


def mark_alive(folder: Path | None, rank: int) -> None:
    """This rank of this attempt ended on its own or on the agent's signal (it did not die)."""
    if folder is None:
        return
    try:
        marks = folder / f"attempt-{attempt()}"
        marks.mkdir(parents=True, exist_ok=True)
        (marks / f"rank-{rank}").touch()
    except OSError:
        pass  # a full or read-only disk: the restart then says less, and still resumes


def restart_note(folder: Path | None, world: int, step: int) -> str:
    """The run log's line for a restarted attempt: which rank died, where it resumed."""
    before = attempt() - 1
    marks = folder / f"attempt-{before}" if folder is not None else None
    gone = [r for r in range(world) if marks is None or not (marks / f"rank-{r}").exists()]
    who = (f"rank {gone[0]} died" if len(gone) == 1 else
           f"ranks {', '.join(map(str, gone))} died" if gone else "the agent stopped every rank")
    where = f"resumed from step {step}" if step else "no checkpoint yet: trained from step 0"
    return f"restart {attempt()} of {max_restarts()} after {who}: {where}"


def _int_env(name: str) -> int:
    try:
        return int(os.environ.get(name, "0"))
    except ValueError:
        return 0
