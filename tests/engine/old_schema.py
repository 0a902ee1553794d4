"""Workspaces as an older Torchwork wrote them, for the tests of each migration."""

import sqlite3
from contextlib import closing
from pathlib import Path

from engine.workspace.schema import _STEPS, MIGRATIONS


def old_workspace(folder: Path, version: int, toml: str, *, names=("old",),
                  statements=()) -> None:
    """Make ``folder`` a workspace of schema ``version`` holding completed runs ``names``
    (config ``toml``, ids from 1), then run ``statements`` (rows of that schema's tables)."""
    folder.mkdir()
    with closing(sqlite3.connect(folder / "workspace.sqlite")) as conn:
        for steps in MIGRATIONS[:version]:
            for step in steps:
                if step in _STEPS:
                    _STEPS[step](conn)
                else:
                    conn.execute(step)
        conn.execute(f"PRAGMA user_version = {version}")
        for name in names:
            conn.execute("INSERT INTO runs (name, dir, status, created_at, config_toml) VALUES "
                         "(?, ?, 'completed', '2026-12-01T10:00:00+00:00', ?)",
                         (name, f"runs/{name}", toml))
        for statement in statements:
            conn.execute(statement)
        conn.commit()
