"""What the Runs dock shows, read from the workspace off the GUI thread (no Qt here).

```RunsReader`` keeps one workspace connection and the runs' flat configs
between reads, so following the workspace live costs one light query of the
runs table (no stored TOML: the departures stored with each run) plus the
configs of new runs only.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from engine.workspace import Workspace
from engine.workspace.config_columns import ConfigColumns
from engine.workspace.store import DB_NAME, default_workspace_dir

# Config keys with a column of their own, left out of the hyperparameter columns.
OWN_COLUMNS = ("data.dataset", "model.arch")
# The record columns a row is made of, in RunsReader._row's order.
COLUMNS = ("id", "name", "status", "created_at", "steps", "wall_s", "best_val", "best_metric",
           "notes", "trashed_at", "study", "trial", "run_group", "dir", "energy_j",
           "energy_per_epoch_j", "energy_per_1k_samples_j", "energy_source", "energy_note")
_TRASHED = COLUMNS.index("trashed_at")
_ENERGY = COLUMNS[COLUMNS.index("energy_j"):]
# More runs than this to parse (a first open of a big workspace): rows show before configs.
PARSE_LATER = 200


@dataclass
class RunRow:
    """One run as a table row: plain values, safe to hand across threads."""
    id: int
    name: str
    status: str
    dataset: str
    model: str
    hp: tuple
    best_metric: str | None
    best_val: float | None
    duration: float | None
    steps_per_s: float | None
    created: str
    tags: tuple[str, ...]
    notes: str
    study: str | None
    trial: int | None
    group: str | None
    trashed: bool
    steps: int
    dir: str
    energy_j: float | None = None  # engine.monitor.energy; None: energy_note says why
    energy_per_epoch_j: float | None = None
    energy_per_1k_samples_j: float | None = None
    energy_source: str | None = None
    energy_note: str | None = None

    @cached_property
    def search_text(self) -> str:
        return f"{self.name}\n{self.notes}".lower()


@dataclass
class Snapshot:
    rows: list[RunRow]
    hp_keys: list[str]
    complete: bool = True  # False: the configs are still being read (no dataset, model, hp)
    tags: list[str] = field(default_factory=list)
    studies: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)


class RunsReader:
    """Reads snapshots of the workspace's trained runs, trashed ones included (marked).

    A row whose record, tags and config columns did not change since the last
    read is the same object again, so the table can tell what to repaint.
    """

    def __init__(self, workspace_dir=None):
        self.workspace_dir = workspace_dir
        self._ws: Workspace | None = None
        self._configs: ConfigColumns | None = None
        self._rows: dict[int, tuple[tuple, RunRow]] = {}
        self._hp: tuple[frozenset, list[str]] = (frozenset(), [])

    def close(self) -> None:
        if self._ws is not None:
            self._ws.close()
            self._ws = None

    def read(self, deliver: Callable[[Snapshot], None]) -> None:
        """Deliver the runs; a first read of many unparsed configs delivers twice (rows
        at once, then with their configs)."""
        if self._ws is None:
            if not database_path(self.workspace_dir).exists():
                deliver(Snapshot([], []))  # no workspace yet: looking does not create one
                return
            self._ws = Workspace(self.workspace_dir)
            self._configs = ConfigColumns(self._ws.root)
        ws, configs = self._ws, self._configs
        # The configs' departures stored with the rows (schema 7) come in the same query.
        rows = ws.table_rows((*COLUMNS, "config_departures"), kind="train",
                             include_trashed=True)
        records = [r[:-1] for r in rows]
        tags = ws.all_tags()
        new = configs.add_stored(((r[0], r[-1]) for r in rows if r[0] not in configs),
                                 ws.config_defaults)
        if not new:
            deliver(self._snapshot(records, tags))
            return
        # Runs created before schema 7: cached configs first (a reopened table is complete
        # at once), checked afterwards against the stored TOML; many unparsed ones: the
        # rows show before their configs.
        unparsed = configs.add_cached(new)
        if not unparsed or len(unparsed) > PARSE_LATER:
            deliver(self._snapshot(records, tags, complete=not unparsed))
        if configs.add(ws.config_tomls(new).items()):
            self._rows.clear()  # a run's stored config may have changed: rebuild every row
            self._hp = (frozenset(), [])
            deliver(self._snapshot(records, tags))

    def _snapshot(self, records: list[tuple], tags: dict[int, list[str]],
                  complete: bool = True) -> Snapshot:
        configs = self._configs
        live = frozenset(r[0] for r in records if r[_TRASHED] is None and r[0] in configs)
        if not complete:
            hp_keys = []
        elif live != self._hp[0]:
            self._hp = (live, configs.differing(live, exclude=OWN_COLUMNS) if live else [])
            hp_keys = self._hp[1]
        else:
            hp_keys = self._hp[1]
        rows, seen = [], {}
        for record in records:
            run_id = record[0]
            known = complete and run_id in configs
            key = (record, tuple(tags.get(run_id, ())), known, tuple(hp_keys))
            old = self._rows.get(run_id)
            row = old[1] if old is not None and old[0] == key else self._row(record, key[1],
                                                                            known, hp_keys)
            seen[run_id] = (key, row)
            rows.append(row)
        if complete:
            self._rows = seen
        return Snapshot(rows, list(hp_keys), complete,
                        tags=sorted({t for r in rows if not r.trashed for t in r.tags}),
                        studies=sorted({r.study for r in rows if r.study and not r.trashed}),
                        groups=sorted({r.group for r in rows if r.group and not r.trashed}))

    def _row(self, record: tuple, tags: tuple, known: bool, hp_keys) -> RunRow:
        (run_id, name, status, created, steps, wall_s, best_val, best_metric, notes, trashed,
         study, trial, group, folder, *energy) = record
        if known:  # one look-up for its own columns and the differing ones
            dataset, model, *hp = self._configs.row(run_id, (*OWN_COLUMNS, *hp_keys))
            dataset, model, hp = str(dataset), str(model), tuple(hp)
        else:
            dataset, model, hp = "", "", (None,) * len(hp_keys)
        return RunRow(
            id=run_id, name=name, status=status, dataset=dataset, model=model, hp=hp,
            best_metric=best_metric, best_val=best_val, duration=wall_s,
            steps_per_s=steps / wall_s if wall_s and steps else None,
            created=(created or "")[:19].replace("T", " "), tags=tags, notes=notes or "",
            study=study, trial=trial, group=group, trashed=trashed is not None,
            steps=steps or 0, dir=folder, **dict(zip(_ENERGY, energy)))

    @property
    def root(self) -> Path | None:
        return self._ws.root if self._ws is not None else None


def database_path(workspace_dir) -> Path:
    root = Path(workspace_dir).expanduser() if workspace_dir else default_workspace_dir()
    return Path(os.path.abspath(root)) / DB_NAME


class ChangeWatch:
    """Tells cheaply whether another connection committed to the workspace since the last
    look (SQLite's ``PRAGMA data_version``: microseconds, no table read)."""

    def __init__(self, db_path: Path):
        self._conn: sqlite3.Connection | None = None
        self._path = db_path
        self._version: int | None = None

    def changed(self) -> bool:
        try:
            if self._conn is None:
                if not self._path.exists():
                    return False
                self._conn = sqlite3.connect(f"{self._path.absolute().as_uri()}?mode=ro",
                                             uri=True, check_same_thread=False)
            version = self._conn.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error:
            self.close()  # a replaced or vanished file: open it again next time
            return True
        changed, self._version = version != self._version, version
        return changed

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._version = None
