"""The workspace's catalogue of runs: lists filtered in SQL, tags, notes and a trash.

A mixin of ``Workspace`` (engine/workspace/store.py keeps the runs' lifetime
and metrics). A trashed run keeps its rows and folder until the trash is
emptied; every list leaves it out unless asked (``include_trashed``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from engine.workspace.errors import WorkspaceError
from engine.workspace.owner import owner_gone
from engine.workspace.records import RunRecord, now_iso

MAX_TAG_LEN = 64
_TRASH_SQL = {False: "trashed_at IS NULL", True: None, "only": "trashed_at IS NOT NULL"}


class Catalog:
    """Methods of ``Workspace`` that list, tag, annotate and trash runs."""

    def list_runs(self, kind: str | None = None, group: str | None = None, *,
                  status: str | Sequence[str] | None = None, tag: str | None = None,
                  study: str | None = None, text: str | None = None,
                  include_trashed: bool | str = False,
                  with_config: bool = True) -> list[RunRecord]:
        """Runs, newest first, filtered in SQL: by ``kind`` ("train", "profile"), cross-
        validation ``group``, ``status`` (one or several), ``tag``, search ``study`` and
        ``text`` found in the name or notes (case-insensitive). Trashed runs are left out,
        unless ``include_trashed`` is True (all) or "only" (the trash).

        ``with_config`` False leaves each record's ``config_toml`` empty: a table of
        thousands of runs that follows them live reads the configs of new runs only
        (``config_tomls``)."""
        where, params = _conditions(kind=kind, group=group, status=status, tag=tag,
                                    study=study, text=text, include_trashed=include_trashed)
        columns = ", ".join(c if with_config or c != "config_toml" else "'' AS config_toml"
                            for c in self.RECORD_COLUMNS)
        rows = self._query(f"SELECT {columns} FROM runs {where}ORDER BY id DESC", params)
        return [self._record(r) for r in rows]

    def table_rows(self, columns: Sequence[str], kind: str | None = None, *,
                   include_trashed: bool | str = False) -> list[tuple]:
        """Chosen columns of the runs' records as plain tuples, newest first: what a
        table of thousands of runs re-reads each time the workspace changes. Besides the
        record's columns, "config_departures": the run's config as stored departures
        from the defaults (``ConfigColumns.add_stored``; None before schema 7)."""
        unknown = set(columns) - set(self.RECORD_COLUMNS) - {"config_departures"}
        if unknown:
            raise ValueError(f"no run columns {sorted(unknown)}")
        where, params = _conditions(kind=kind, group=None, status=None, tag=None, study=None,
                                    text=None, include_trashed=include_trashed)
        return [tuple(r) for r in self._query(f"SELECT {', '.join(columns)} FROM runs {where}"
                                              f"ORDER BY id DESC", params)]

    def config_tomls(self, run_ids: Sequence[int]) -> dict[int, str]:
        """Stored configs by run id (those deleted meanwhile are left out)."""
        return self._by_id("config_toml", run_ids)

    def config_departures(self, run_ids: Sequence[int]) -> dict[int, str | None]:
        """Stored config departures by run id (None: created before schema 7)."""
        return self._by_id("config_departures", run_ids)

    def _by_id(self, column: str, run_ids: Sequence[int]) -> dict:
        out: dict = {}
        ids = [int(i) for i in run_ids]
        for start in range(0, len(ids), 900):  # under SQLite's limit on parameters
            chunk = ids[start:start + 900]
            out.update(self._query(f"SELECT id, {column} FROM runs WHERE id IN "
                                   f"({', '.join('?' * len(chunk))})", chunk))
        return out

    def config_defaults(self) -> dict[int, str]:
        """The defaults stored departures are from, by fingerprint (flat keys, JSON)."""
        return dict(self._query("SELECT fingerprint, flat FROM config_defaults"))

    # --- tags and notes ------------------------------------------------------------
    def set_tags(self, ref: int | str, tags: Iterable[str]) -> list[str]:
        """Replace a run's tags (blank ones dropped, duplicates merged); return them sorted."""
        run_id = self._resolve(ref)
        clean = sorted({_check_tag(t) for t in tags if str(t).strip()})
        with self._write() as conn:
            conn.execute("DELETE FROM run_tags WHERE run_id = ?", (run_id,))
            conn.executemany("INSERT INTO run_tags (run_id, tag) VALUES (?, ?)",
                             [(run_id, t) for t in clean])
        return clean

    def tags_of(self, ref: int | str) -> list[str]:
        run_id = self._resolve(ref)
        return [r[0] for r in self._query("SELECT tag FROM run_tags WHERE run_id = ? "
                                          "ORDER BY tag", (run_id,))]

    def all_tags(self) -> dict[int, list[str]]:
        """Every tagged run's tags, in one query (for a table of thousands of runs)."""
        out: dict[int, list[str]] = {}
        for run_id, tag in self._query("SELECT run_id, tag FROM run_tags ORDER BY run_id, tag"):
            out.setdefault(run_id, []).append(tag)
        return out

    def set_notes(self, ref: int | str, notes: str | None) -> None:
        """A run's free-text notes (blank clears them)."""
        text = (notes or "").strip() or None
        self.update_run(self._resolve(ref), notes=text)

    def rename_run(self, ref: int | str, name: str) -> None:
        """A new display name; the run's folder keeps its name (paths in other tools stay)."""
        name = str(name).strip()
        if not name or not name.isprintable():
            raise WorkspaceError(f"a run name must be non-empty printable text (got {name!r})")
        self.update_run(self._resolve(ref), name=name)

    # --- trash ----------------------------------------------------------------------
    def trash_run(self, ref: int | str) -> None:
        """Move a run to the trash; a run still training is refused."""
        run_id = self._resolve(ref)
        with self._write() as conn:
            row = conn.execute("SELECT status, pid, hostname, proc_created FROM runs "
                               "WHERE id = ?", (run_id,)).fetchone()
            if row["status"] == "running" and not owner_gone(row["pid"], row["hostname"],
                                                             row["proc_created"]):
                raise WorkspaceError(f"run {run_id} is still running (pid {row['pid']} on "
                                     f"{row['hostname']}): stop it before moving it to the "
                                     f"trash")
            conn.execute("UPDATE runs SET trashed_at = COALESCE(trashed_at, ?) WHERE id = ?",
                         (now_iso(), run_id))

    def restore_run(self, ref: int | str) -> None:
        """Take a run out of the trash."""
        self.update_run(self._resolve(ref), trashed_at=None)

    def empty_trash(self) -> list[int]:
        """Delete every trashed run's rows and folder; return their ids."""
        ids = [r[0] for r in self._query("SELECT id FROM runs WHERE trashed_at IS NOT NULL "
                                         "ORDER BY id")]
        for run_id in ids:
            self.delete_run(run_id)
        return ids

    # --- metrics across runs ------------------------------------------------------
    def last_metrics(self, run_ids: Sequence[int] | None = None) -> dict[int, dict[str, float]]:
        """Each run's last recorded value of every epoch metric, in one index scan."""
        return self._metric_table("value, MAX(epoch)", run_ids)

    def best_metrics(self, run_ids: Sequence[int]) -> dict[int, dict[str, float]]:
        """Each run's best value of every epoch metric: the lowest of a loss or error, the
        highest of anything else."""
        low = self._metric_table("MIN(value)", run_ids)
        high = self._metric_table("MAX(value)", run_ids)
        return {i: {name: (low[i][name] if lower_is_better(name) else v)
                    for name, v in high[i].items()} for i in high}

    def _metric_table(self, select: str, run_ids) -> dict[int, dict[str, float]]:
        where, params = "", ()
        if run_ids is not None:
            ids = [int(i) for i in run_ids]
            where, params = f"WHERE run_id IN ({', '.join('?' * len(ids))}) ", tuple(ids)
        out: dict[int, dict[str, float]] = {i: {} for i in params}
        for row in self._query(f"SELECT run_id, name, {select} FROM epoch_metrics {where}"
                               f"GROUP BY run_id, name", params):
            out.setdefault(row[0], {})[row[1]] = row[2]
        return out


def lower_is_better(metric: str) -> bool:
    return any(word in metric for word in ("loss", "error", "mse", "mae", "rmse"))


def _check_tag(tag) -> str:
    text = str(tag).strip()
    if len(text) > MAX_TAG_LEN or "," in text or not text.isprintable():
        raise WorkspaceError(f"tag {text[:MAX_TAG_LEN]!r} is not a tag: up to {MAX_TAG_LEN} "
                             f"printable characters without a comma")
    return text


def _conditions(*, kind, group, status, tag, study, text, include_trashed) -> tuple[str, tuple]:
    if include_trashed not in _TRASH_SQL:
        raise ValueError(f"include_trashed is True, False or 'only' (got {include_trashed!r})")
    clauses: list[str] = []
    params: list = []
    for column, value in (("kind", kind), ("run_group", group), ("study", study)):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if status is not None:
        statuses = [status] if isinstance(status, str) else list(status)
        clauses.append(f"status IN ({', '.join('?' * len(statuses))})")
        params.extend(statuses)
    if tag is not None:
        clauses.append("id IN (SELECT run_id FROM run_tags WHERE tag = ?)")
        params.append(tag)
    if text:
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        clauses.append("(name LIKE ? ESCAPE '\\' OR COALESCE(notes, '') LIKE ? ESCAPE '\\')")
        params.extend([pattern, pattern])
    if _TRASH_SQL[include_trashed]:
        clauses.append(_TRASH_SQL[include_trashed])
    return (f"WHERE {' AND '.join(clauses)} " if clauses else ""), tuple(params)
