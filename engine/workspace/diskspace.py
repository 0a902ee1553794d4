"""A full disk, recognised whatever layer hit it, and told the same way everywhere.

A full disk reaches Torchwork as an OSError from Python, an sqlite3 error from
the workspace database, or a RuntimeError from torch's checkpoint writer (which
keeps no errno). Each would otherwise be reported in its own words ("cannot
rollback", "unexpected pos"); the person needs one message: how much is free,
where, and what to do. A file-size limit (EFBIG, ``ulimit -f``) stops a write
the same way and is treated alike.
"""

from __future__ import annotations

import errno
import re
import shutil
import sqlite3
from pathlib import Path

_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_SQLITE_FULL, _SQLITE_IOERR = 13, 10
# An I/O error that carries no errno (SQLite's "disk I/O error" when it cannot grow its
# -shm file) is taken for a full disk when less than this is left where it was writing.
NEARLY_FULL_BYTES = 1 << 20
# Lower-case fragments of messages that carry no errno: SQLite's SQLITE_FULL text, and
# torch's PyTorchStreamWriter (inline_container.cc) when a write comes up short.
_SQLITE_TEXT = "database or disk is full"
_TORCH_TEXTS = ("unexpected pos", "file write failed")
_OS_TEXTS = ("no space left on device", "disk quota exceeded", "file too large")
_STATED = re.compile(r"disk full( \([^)]*\)| at [^:]*)")


def is_disk_full(exc: BaseException, where: str | Path | None = None) -> bool:
    """True when ``exc``, or an exception it was raised from, is a write that found no space.

    ``where`` (the file or folder written to) also counts a bare I/O error as a
    full disk when that disk is all but full (under NEARLY_FULL_BYTES free).
    """
    chain = _chain(exc)
    if any(_is_full(e) for e in chain):
        return True
    if where is None or not any(_is_io_error(e) for e in chain):
        return False
    free = free_bytes(where)
    return free is not None and free < NEARLY_FULL_BYTES


def stated(exc: BaseException) -> str | None:
    """The 'disk full (N MB free at PATH)' that an exception in the chain already says
    (the layer that hit the full disk knew where it wrote), or None."""
    for e in _chain(exc):
        found = _STATED.match(str(e))
        if found:
            return found.group(0)
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from, outermost first."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not e for e in chain):
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _is_full(exc: BaseException) -> bool:
    text = str(exc).lower()
    if isinstance(exc, OSError):
        return exc.errno in _FULL_ERRNOS or any(t in text for t in _OS_TEXTS)
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL or _SQLITE_TEXT in text
    if isinstance(exc, RuntimeError):
        return any(t in text for t in (*_TORCH_TEXTS, *_OS_TEXTS))
    return False


def _is_io_error(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return exc.errno == errno.EIO
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return ((code is not None and code & 0xFF == _SQLITE_IOERR)
                or "disk i/o error" in str(exc).lower())
    return False


def free_bytes(path: str | Path) -> int | None:
    """Free space for an unprivileged user on the file system holding ``path`` (or its
    nearest existing parent), or None when it cannot be read."""
    where = Path(path).absolute()
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        return shutil.disk_usage(where).free
    except OSError:
        return None


def disk_full_message(path: str | Path, action: str = "free some space and try again") -> str:
    """``disk full (3.2 MB free at /data/ws): free some space and try again``.

    ``path`` is where the write went (a file or folder); ``action`` is what the
    person can do next in the caller's situation, e.g. "free some space, then
    `torchwork resume 7`".
    """
    free = free_bytes(path)
    if free is None:
        return f"disk full at {path}: {action}"
    mb = free / 1e6
    return f"disk full ({mb:.{1 if mb < 10 else 0}f} MB free at {path}): {action}"
