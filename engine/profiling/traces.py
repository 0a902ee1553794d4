"""The captures of a run and their trace files; export for Perfetto and chrome://tracing."""

from __future__ import annotations

import gzip
import shutil
from dataclasses import dataclass
from pathlib import Path

from engine.files import atomic_path

from .options import PROFILE_DIR

TRACE_GLOB = "*.pt.trace.json*"


@dataclass(frozen=True)
class Capture:
    name: str  # the capture folder, e.g. capture-20261122-164512
    trace: Path  # its newest trace file
    size: int  # bytes
    mtime: float


def list_captures(run_dir: str | Path) -> list[Capture]:
    """Captures under ``<run>/profile/``, newest first; folders without a trace are left out."""
    root = Path(run_dir) / PROFILE_DIR
    found = []
    for folder in root.iterdir() if root.is_dir() else ():
        traces = [p for p in folder.glob(TRACE_GLOB) if p.is_file()] if folder.is_dir() else []
        if traces:
            trace = max(traces, key=lambda p: p.stat().st_mtime)
            stat = trace.stat()
            found.append(Capture(folder.name, trace, stat.st_size, stat.st_mtime))
    return sorted(found, key=lambda c: c.mtime, reverse=True)


def export_trace(trace: str | Path, dest: str | Path) -> Path:
    """Write ``trace`` as gzip-compressed JSON, which Perfetto and chrome://tracing open."""
    trace, dest = Path(trace), Path(dest)
    if not dest.name.endswith(".json.gz"):
        dest = dest.with_name(dest.name.removesuffix(".gz").removesuffix(".json") + ".json.gz")
    with atomic_path(dest) as tmp:
        if trace.name.endswith(".gz"):
            shutil.copyfile(trace, tmp)
        else:
            with trace.open("rb") as src, gzip.open(tmp, "wb", compresslevel=6) as out:
                shutil.copyfileobj(src, out, 1 << 20)
    return dest
