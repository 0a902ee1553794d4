"""A run's ``log.txt``: what happened, in words a person reads with ``tail -f``.

Lines are rare (start, epochs, checkpoints, errors, end), so the file is
opened per line: no handle is left open when a run dies, and every line is on
disk as soon as it is written.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from engine.workspace.diskspace import is_disk_full


class RunLog:
    def __init__(self, path: Path):
        self.path = path

    def write(self, text: str) -> None:
        """Append a time-stamped entry; further lines (a traceback) are indented under it."""
        first, *rest = text.rstrip("\n").split("\n")
        stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(f"{stamp}  {first}\n" + "".join(f"    {line}\n" for line in rest))
        except OSError as exc:
            # On a full disk the line is dropped: the database and the terminal say what
            # happened, and failing here would turn a stopped run into a crashed one.
            if not is_disk_full(exc):
                raise
