"""What went wrong with a workspace, in one line that says what to do about it.

SQLite reports a damaged page, a read-only file, a lock held too long and a
full disk as error codes deep inside a query; the person needs to know which
one it is and what to do, whatever command was running.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from engine.workspace.diskspace import disk_full_message, is_disk_full
from engine.workspace.schema import SCHEMA_VERSION, ForeignDatabase, NeedsUpgrade, SchemaTooNew

# SQLite primary result codes that call for their own advice.
SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY, SQLITE_CORRUPT, SQLITE_NOTADB = 5, 6, 8, 11, 26
_FRAGMENTS = (("malformed", SQLITE_CORRUPT), ("not a database", SQLITE_NOTADB),
              ("readonly database", SQLITE_READONLY), ("is locked", SQLITE_BUSY))


class WorkspaceError(Exception):
    """A workspace problem a person can act on; the message says what to do."""


def sqlite_code(exc: BaseException) -> int | None:
    """The primary SQLite result code of an error (Python < 3.11 has only the message)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF
    return next((primary for fragment, primary in _FRAGMENTS if fragment in str(exc)), None)


def read_only_reason(root: Path, db_path: Path) -> str | None:
    """Why this process cannot write the workspace, or None when it can (or will create it)."""
    if not root.exists():
        return None
    try:
        if os.statvfs(root).f_flag & os.ST_RDONLY:
            return f"{root} is on a read-only file system"
    except OSError:
        pass  # not a file system that reports it: the permission checks below decide
    if db_path.exists() and not os.access(db_path, os.W_OK):
        return f"{db_path} is not writable"
    if not os.access(root, os.W_OK):
        return f"the folder {root} is not writable"
    return None


def read_only_error(root: Path, reason: str | None) -> WorkspaceError:
    return WorkspaceError(f"workspace {root} is read-only ({reason}): runs can be listed, "
                          f"opened and exported, not trained; pick another --workspace")


def damaged(db_path: Path, detail: str) -> WorkspaceError:
    return WorkspaceError(f"{db_path} is damaged ({detail}): move the file away (and any -wal "
                          f"and -shm file beside it) to start a new workspace there, or pick "
                          f"another --workspace; `sqlite3 FILE .recover` may rescue its runs")


def folder_error(exc: OSError, path: Path, root: Path) -> WorkspaceError:
    if is_disk_full(exc, root):
        cause = disk_full_message(root, "free some space or pick another --workspace")
    else:
        cause = f"{exc.strerror or exc}: pick another with --workspace or TORCHWORK_WORKSPACE"
    return WorkspaceError(f"cannot create workspace folder {path}: {cause}")


def open_error(exc: BaseException, db_path: Path, reason: str | None) -> WorkspaceError:
    """Why ``connect`` refused or failed, for a workspace that is read-only for ``reason``
    (None when writable)."""
    root = db_path.parent
    if isinstance(exc, SchemaTooNew):
        return WorkspaceError(f"{db_path} was written by a newer Torchwork (schema version "
                              f"{exc.found}; this one reads up to {SCHEMA_VERSION}): upgrade "
                              f"Torchwork or pick another --workspace")
    if isinstance(exc, ForeignDatabase):
        shown = ", ".join(exc.objects[:5]) + (", ..." if len(exc.objects) > 5 else "")
        return WorkspaceError(f"{db_path} is another program's SQLite database (it holds "
                              f"{shown}; user_version {exc.version}), not a Torchwork "
                              f"workspace: it was left untouched; pick another --workspace")
    if isinstance(exc, NeedsUpgrade):
        return WorkspaceError(f"workspace {root} is read-only ({reason}) and its database needs "
                              f"an upgrade (schema version {exc.found}, this Torchwork uses "
                              f"{SCHEMA_VERSION}): open it once where it can be written, or "
                              f"pick another --workspace")
    wal = db_path.with_name(db_path.name + "-wal")
    if (reason is not None and sqlite_code(exc) not in (SQLITE_CORRUPT, SQLITE_NOTADB)
            and wal.exists() and wal.stat().st_size):
        return WorkspaceError(f"cannot open {db_path} read-only ({exc}): its -wal file holds "
                              f"runs not yet merged into it, which needs a writable folder: open "
                              f"it once where {root} can be written")
    return database_error(exc, db_path, "open", reason)


def database_error(exc: BaseException, db_path: Path, doing: str,
                   reason: str | None = None) -> WorkspaceError:
    """One line for a failed open, read or write ("open", "read", "write to") of the
    database of a workspace that is read-only for ``reason`` (None when writable)."""
    root = db_path.parent
    code = sqlite_code(exc)
    if is_disk_full(exc, root):
        return WorkspaceError(f"cannot {doing} {db_path}: " + disk_full_message(
            root, "free some space and retry, or pick another --workspace"))
    if code in (SQLITE_CORRUPT, SQLITE_NOTADB):
        return damaged(db_path, str(exc))
    if code == SQLITE_READONLY:
        return read_only_error(root, reason or str(exc))
    if code in (SQLITE_BUSY, SQLITE_LOCKED):
        return WorkspaceError(f"cannot {doing} {db_path} ({exc}): another process kept it "
                              f"locked too long: close other Torchwork windows or commands "
                              f"using it and retry")
    hint = ("check free disk space and that the folder is writable" if doing == "write to"
            else "move it away if it is damaged, or pick another --workspace")
    return WorkspaceError(f"cannot {doing} {db_path} ({exc}): {hint}")


def is_read_only_error(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and sqlite_code(exc) == SQLITE_READONLY
