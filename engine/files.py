"""Atomic file writes whose result has the permissions of any file the user creates.

``tempfile.mkstemp`` creates its file 0600 whatever the umask, and some
writers (safetensors) write through a temporary file of their own, so a file
renamed into place came out private while one written directly got 0644
(umask 022): exports of one run differed by format. Every export therefore
ends here: written beside its target, given the mode ``open(path, "w")``
would have given it (0666 less the umask), then renamed into place.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(target: str | Path, *, fsync: bool = False) -> Iterator[Path]:
    """Yield a new empty file beside ``target`` to write; on success it replaces ``target``.

    The writer may write the path in place or replace it. On any exception the
    temporary file is removed and ``target`` is left as it was. With ``fsync``
    the data reach the disk before the rename (checkpoints).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        follow_umask(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(target: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``target`` atomically; the file follows the umask."""
    target = Path(target)
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return target


def follow_umask(path: str | Path) -> None:
    """Give ``path`` the mode a file newly created by the user would have (0666 less the umask)."""
    os.chmod(path, 0o666 & ~current_umask())


def current_umask() -> int:
    """The process's umask, read without changing it where the system says (Linux >= 4.7)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere the only way to read it is to set it
    os.umask(mask)
    return mask
