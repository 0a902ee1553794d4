"""The workspace: a folder holding ``workspace.sqlite`` and one folder per run.

The database holds what is queried across runs (status, configs, metric
curves); the run folders hold what other tools open (config.toml,
checkpoints, TensorBoard files, log.txt). One process writes a run while
others (the desktop app, a second CLI) read it, which is what WAL mode allows.
A ``Workspace`` may be shared between threads: one lock guards its connection.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path

import numpy as np
import platformdirs

from engine.config import RunConfig, show
from engine.workspace.catalog import Catalog
from engine.workspace.config_columns import defaults_row, stored_departures
from engine.workspace.errors import (
    WorkspaceError,
    damaged,
    database_error,
    folder_error,
    is_read_only_error,
    open_error,
    read_only_error,
    read_only_reason,
)
from engine.workspace.owner import current_owner, owner_gone
from engine.workspace.records import (
    RunRecord,
    Series,
    default_run_name,
    now_iso,
    path_in_workspace,
    relative_to_workspace,
    slug,
)
from engine.workspace.schema import (
    FINAL_STATUSES,
    GPU_COLUMNS,
    HOST_COLUMNS,
    RUN_KINDS,
    STATUSES,
    STEP_COLUMNS,
    ForeignDatabase,
    NeedsUpgrade,
    SchemaTooNew,
    connect,
)

DB_NAME = "workspace.sqlite"
RUNS_DIR = "runs"
BUSY_TIMEOUT_MS = 5000
MAX_ID_DIGITS = 18  # run ids are SQLite integers, below 2**63

_RECORD_COLUMNS = tuple(f.name for f in fields(RunRecord))
_UPDATABLE = frozenset(_RECORD_COLUMNS) - {"id", "dir", "created_at"}
# Errors from a wrong call rather than from the disk or another process: raised as they are.
_BUGS = (sqlite3.ProgrammingError, sqlite3.InterfaceError, sqlite3.IntegrityError)


def default_workspace_dir() -> Path:
    """``$TORCHWORK_WORKSPACE`` if set, else a folder in the user's data directory."""
    env = os.environ.get("TORCHWORK_WORKSPACE")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir("torchwork")) / "workspace"


class Workspace(Catalog):
    """Runs and their metrics in one workspace folder.

    A workspace this process may not write (a read-only file, folder or
    mount) opens read-only: its runs can be listed, opened and exported, and
    anything that would write raises a WorkspaceError saying so
    (``read_only_reason`` says why).
    """

    RECORD_COLUMNS = _RECORD_COLUMNS

    def __init__(self, root: str | Path | None = None):
        root = Path(root).expanduser() if root is not None else default_workspace_dir()
        # Absolute, so run folders and checkpoint paths do not depend on the current folder.
        self.root = Path(os.path.abspath(root))
        self.db_path = self.root / DB_NAME
        self._lock = threading.RLock()
        self._owner = current_owner()
        self._conn: sqlite3.Connection | None = None
        self.read_only_reason = read_only_reason(self.root, self.db_path)
        if not self.db_path.exists():
            if self.read_only:
                raise WorkspaceError(f"cannot create a workspace in {self.root}: "
                                     f"{self.read_only_reason}: pick another --workspace")
            self._make_folder(self.root)
        self._conn = self._open()
        self._conn.row_factory = sqlite3.Row
        try:
            if not self.read_only:
                # Only now that the database is known to be ours: nothing is added
                # beside another program's file.
                self._make_folder(self.root / RUNS_DIR)
                self.recover_interrupted()
        except BaseException:
            self.close()
            raise

    @property
    def read_only(self) -> bool:
        return self.read_only_reason is not None

    def require_writable(self) -> None:
        """Raise a WorkspaceError for a read-only workspace, before work whose results it
        could not store."""
        if self.read_only:
            raise read_only_error(self.root, self.read_only_reason)

    def _make_folder(self, path: Path) -> None:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise folder_error(exc, path, self.root) from None

    def _open(self) -> sqlite3.Connection:
        """The connection; one that turns out not writable is opened again read-only."""
        try:
            try:
                return connect(self.db_path, BUSY_TIMEOUT_MS, read_only=self.read_only)
            except sqlite3.OperationalError as exc:
                if self.read_only or not is_read_only_error(exc):
                    raise
                self.read_only_reason = f"{self.db_path} cannot be written: {exc}"
                return connect(self.db_path, BUSY_TIMEOUT_MS, read_only=True)
        except (SchemaTooNew, ForeignDatabase, NeedsUpgrade, sqlite3.DatabaseError,
                OSError) as exc:
            raise open_error(exc, self.db_path, self.read_only_reason) from None

    # --- lifetime ----------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    # --- runs ----------------------------------------------------------------
    def create_run(self, config: RunConfig, name: str | None = None,
                   kind: str = "train", group: str | None = None) -> RunRecord:
        """Register a run and make its folder with config.toml and checkpoints/.

        ``kind`` "profile" marks a short dedicated run that only records a profiler
        capture: the lists of trained runs leave it out (``list_runs(kind=...)``).
        ``group`` tags runs trained together (the folds of a cross-validation)."""
        if kind not in RUN_KINDS:
            raise ValueError(f"run kind must be one of {', '.join(RUN_KINDS)} (got {kind!r})")
        name = name or default_run_name(config)
        toml = config.to_toml()
        departures = stored_departures(toml)
        with self._write() as conn:
            self._store_defaults(conn)
            # The creator is recorded as owner: if it dies before the run starts, the next
            # open sees a dead owner and marks the run interrupted instead of 'created' forever.
            owner = self._owner
            cur = conn.execute("INSERT INTO runs (name, dir, status, created_at, config_toml, "
                               "config_departures, pid, hostname, proc_created, kind, run_group) "
                               "VALUES (?, '', 'created', ?, ?, ?, ?, ?, ?, ?, ?)",
                               (name, now_iso(), toml, departures, owner.pid, owner.hostname,
                                owner.created, kind, group))
            run_id = cur.lastrowid
            rel = f"{RUNS_DIR}/{run_id:04d}-{slug(name)}"
            conn.execute("UPDATE runs SET dir = ? WHERE id = ?", (rel, run_id))
            self._make_run_folder(self.root / rel, toml)
        return self.get_run(run_id)

    @staticmethod
    def _store_defaults(conn: sqlite3.Connection) -> None:
        """Keep the defaults that stored departures are from (once per Torchwork version)."""
        conn.execute("INSERT OR IGNORE INTO config_defaults (fingerprint, flat) VALUES (?, ?)",
                     defaults_row())

    def _make_run_folder(self, path: Path, toml: str) -> None:
        try:
            path.mkdir()
        except FileExistsError:
            raise WorkspaceError(f"run folder {path} already exists but is not in {self.db_path} "
                                 f"(was the database replaced?): move the folder away") from None
        except OSError as exc:
            raise WorkspaceError(f"cannot create run folder {path}: {exc.strerror or exc}: "
                                 f"check free disk space and permissions") from None
        try:
            (path / "config.toml").write_text(toml, encoding="utf-8")
            (path / "checkpoints").mkdir()
        except OSError as exc:
            shutil.rmtree(path, ignore_errors=True)
            raise WorkspaceError(f"cannot write run folder {path}: {exc.strerror or exc}: "
                                 f"check free disk space and permissions") from None

    def get_run(self, ref: int | str) -> RunRecord:
        """A run by id (7 or "7") or by folder name ("0007-digits-mlp", or a path to it)."""
        rows = self._query(f"SELECT {', '.join(_RECORD_COLUMNS)} FROM runs WHERE id = ?",
                           (self._resolve(ref),))
        if not rows:  # deleted by another process since it was resolved
            raise self._no_run(ref)
        return self._record(rows[0])

    def delete_run(self, ref: int | str) -> None:
        """Remove a run's rows and its folder; a run still training is refused."""
        run_id = self._resolve(ref)
        with self._write() as conn:
            row = conn.execute("SELECT dir, status, pid, hostname, proc_created FROM runs "
                               "WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise self._no_run(ref)
            if row["status"] == "running" and not owner_gone(row["pid"], row["hostname"],
                                                             row["proc_created"]):
                raise WorkspaceError(f"run {run_id} is still running (pid {row['pid']} on "
                                     f"{row['hostname']}): stop it before deleting it")
            conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        path = self.root / row["dir"]
        try:
            shutil.rmtree(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise WorkspaceError(f"run {run_id} was removed from the workspace but its folder "
                                 f"{path} could not be deleted ({exc.strerror or exc}): delete "
                                 f"it by hand") from None

    # --- status --------------------------------------------------------------
    def mark_running(self, run_id: int, *, num_params: int | None = None,
                     device: str | None = None) -> None:
        """Mark the run as trained by this process, which is recorded to detect its death."""
        owner = self._owner
        self._update(run_id, "status = 'running', started_at = COALESCE(started_at, ?), "
                     "ended_at = NULL, error = NULL, pid = ?, hostname = ?, proc_created = ?, "
                     "num_params = COALESCE(?, num_params), device = COALESCE(?, device)",
                     (now_iso(), owner.pid, owner.hostname, owner.created, num_params, device))

    def finish_run(self, run_id: int, status: str, **fields) -> None:
        """End the run with a final status; ``fields`` as in update_run."""
        if status not in FINAL_STATUSES:
            raise ValueError(f"a run finishes as one of {', '.join(FINAL_STATUSES)} "
                             f"(got {status!r})")
        fields.setdefault("ended_at", now_iso())
        self.update_run(run_id, status=status, **fields)

    def update_run(self, run_id: int, **fields) -> None:
        """Set columns of a run's record, e.g. ``update_run(3, checkpoint="...")``."""
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise TypeError(f"cannot update {', '.join(sorted(unknown))}: updatable fields are "
                            f"{', '.join(sorted(_UPDATABLE))}")
        if "status" in fields and fields["status"] not in STATUSES:
            raise ValueError(f"run status must be one of {', '.join(STATUSES)} "
                             f"(got {fields['status']!r})")
        if not fields:
            return
        if fields.get("checkpoint") is not None:
            fields["checkpoint"] = relative_to_workspace(self.root, fields["checkpoint"])
        if "config_toml" in fields:  # its departures go with it (a resume with changes)
            fields["config_departures"] = stored_departures(fields["config_toml"])
        values = [str(v) if isinstance(v, Path) else v for v in fields.values()]
        self._update(run_id, ", ".join(f"{k} = ?" for k in fields), values,
                     defaults="config_toml" in fields)

    def check(self) -> None:
        """Raise a WorkspaceError if the database is damaged.

        Reads every page (PRAGMA quick_check, a fraction of a second even for a
        large workspace), so a command about to train finds a damaged page
        before its run starts rather than at its first commit.
        """
        rows = self._query("PRAGMA quick_check")
        problems = [line for (text,) in rows for line in str(text).splitlines()
                    if line.strip() not in ("ok", "*** in database main ***")]
        if problems:
            more = f" and {len(problems) - 1} more" if len(problems) > 1 else ""
            raise damaged(self.db_path, f"quick_check: {problems[0]}{more}")

    def recover_interrupted(self) -> list[int]:
        """Mark 'running' and 'created' runs whose process has died as 'interrupted' and
        remove the half-written checkpoints it left; return their ids.

        Runs on open; a long-lived reader (the app) may call it again. The
        record's progress is taken from the metrics that reached the database.
        """
        running = self._query("SELECT id, pid, hostname, proc_created, status, dir FROM runs "
                              "WHERE status IN ('running', 'created')")
        dead = [r for r in running if owner_gone(r["pid"], r["hostname"], r["proc_created"])]
        if not dead:
            return []
        with self._write() as conn:
            for r in dead:
                if r["status"] == "created":
                    conn.execute("UPDATE runs SET status = 'interrupted', error = ? WHERE id = ? "
                                 "AND status = 'created'",
                                 (f"the process that created it{_who(r)} ended before its "
                                  f"first step: `torchwork "
                                  f"resume {r['id']}` starts it from step 0 with its stored "
                                  f"configuration", r["id"]))
                    continue
                conn.execute(
                    "UPDATE runs SET status = 'interrupted', error = ?, "
                    "steps = MAX(steps, COALESCE((SELECT MAX(step) FROM step_metrics "
                    "  WHERE run_id = runs.id), 0)), "
                    "epochs_completed = MAX(epochs_completed, COALESCE((SELECT MAX(epoch) "
                    "  FROM epoch_metrics WHERE run_id = runs.id), 0)), "
                    "wall_s = COALESCE((SELECT MAX(wall_s) FROM step_metrics "
                    "  WHERE run_id = runs.id), wall_s) "
                    "WHERE id = ? AND status = 'running'",
                    (f"the process training it (pid {r['pid']} on {r['hostname']}) ended "
                     f"without finishing the run (killed or crashed): resume it from its last "
                     f"checkpoint", r["id"]))
        for r in dead:
            self.discard_partial_files(self.root / r["dir"])
        return [r["id"] for r in dead]

    @staticmethod
    def discard_partial_files(run_dir: Path) -> None:
        """Remove checkpoint temporaries (``.last.pt.XXXX.tmp``) that a killed writer left.

        Only for a run no live process writes: the caller knows its owner is gone.
        """
        for tmp in (run_dir / "checkpoints").glob("*.tmp"):
            tmp.unlink(missing_ok=True)

    # --- metrics -------------------------------------------------------------
    def add_step_metrics(self, run_id: int,
                         rows: Iterable[Sequence[float] | Mapping[str, float]]) -> None:
        """Store rows of (step, epoch, loss, lr, grad_norm, samples_per_s, wall_s) in one
        transaction; a mapping row may leave out all but step and epoch. A step stored
        twice keeps the newer row."""
        values = [self._step_row(r) for r in rows]
        if not values:
            return
        with self._write() as conn:
            conn.executemany(f"INSERT OR REPLACE INTO step_metrics (run_id, "
                             f"{', '.join(STEP_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             [(run_id, *v) for v in values])

    @staticmethod
    def _step_row(row) -> tuple:
        if isinstance(row, Mapping):
            unknown = set(row) - set(STEP_COLUMNS)
            if unknown:
                raise ValueError(f"unknown step metric columns {sorted(unknown)}: the columns "
                                 f"are {', '.join(STEP_COLUMNS)}")
            return tuple(row.get(c) for c in STEP_COLUMNS)
        row = tuple(row)
        if len(row) != len(STEP_COLUMNS):
            raise ValueError(f"a step metrics row has {len(STEP_COLUMNS)} values "
                             f"({', '.join(STEP_COLUMNS)}); got {len(row)}: {row!r}")
        return row

    def add_epoch_metrics(self, run_id: int, epoch: int, step: int,
                          metrics: Mapping[str, float]) -> None:
        """Store named values for one epoch; a name stored again for that epoch is replaced."""
        if not metrics:
            return
        with self._write() as conn:
            conn.executemany("INSERT OR REPLACE INTO epoch_metrics (run_id, epoch, step, name, "
                             "value) VALUES (?, ?, ?, ?, ?)",
                             [(run_id, epoch, step, k, v) for k, v in metrics.items()])

    def step_metrics(self, run_id: int, after_step: int | None = None) -> dict[str, np.ndarray]:
        """Step rows as arrays by column name, in step order; ``after_step`` fetches only
        newer rows, for a reader following a live run. Missing values are NaN."""
        self._resolve(run_id)
        rows = self._query(f"SELECT {', '.join(STEP_COLUMNS)} FROM step_metrics WHERE run_id = ? "
                           f"AND step > ? ORDER BY step",
                           (run_id, -1 if after_step is None else after_step))
        cols = list(zip(*rows)) if rows else [()] * len(STEP_COLUMNS)
        return {name: np.array(col, dtype=np.int64 if name in ("step", "epoch") else np.float64)
                for name, col in zip(STEP_COLUMNS, cols)}

    def epoch_metrics(self, run_id: int) -> dict[str, Series]:
        """Each epoch metric (train_loss, lr, val_loss, ...) as a Series in epoch order."""
        self._resolve(run_id)
        rows = self._query("SELECT name, epoch, step, value FROM epoch_metrics WHERE run_id = ? "
                           "ORDER BY name, epoch", (run_id,))
        grouped: dict[str, list] = {}
        for r in rows:
            grouped.setdefault(r["name"], []).append((r["epoch"], r["step"], r["value"]))
        return {name: Series(epoch=np.array([e for e, _, _ in items], dtype=np.int64),
                             step=np.array([s for _, s, _ in items], dtype=np.int64),
                             value=np.array([v for _, _, v in items], dtype=np.float64))
                for name, items in grouped.items()}

    def truncate_after(self, run_id: int, step: int) -> None:
        """Drop step, epoch and hardware rows past ``step``, so a run resumed from an
        earlier checkpoint does not draw its curves twice."""
        with self._write() as conn:
            conn.execute("DELETE FROM step_metrics WHERE run_id = ? AND step > ?", (run_id, step))
            conn.execute("DELETE FROM epoch_metrics WHERE run_id = ? AND step > ?", (run_id, step))
            for table in ("hardware_samples", "gpu_samples"):
                conn.execute(f"DELETE FROM {table} WHERE run_id = ? AND step > ?", (run_id, step))

    # --- hardware samples (engine.monitor) -------------------------------------------
    def add_hardware_samples(self, run_id: int, samples: Sequence) -> None:
        """Store ``engine.monitor.Sample`` objects in one transaction (host row and GPU rows)."""
        if not samples:
            return
        host = [(run_id, s.time, *(getattr(s, c) for c in HOST_COLUMNS)) for s in samples]
        gpus = [(run_id, s.time, g.index, s.step, *(getattr(g, c) for c in GPU_COLUMNS[1:]))
                for s in samples for g in s.gpus]
        with self._write() as conn:
            conn.executemany(f"INSERT OR REPLACE INTO hardware_samples (run_id, time, "
                             f"{', '.join(HOST_COLUMNS)}) VALUES "
                             f"({', '.join('?' * (len(HOST_COLUMNS) + 2))})", host)
            conn.executemany(f"INSERT OR REPLACE INTO gpu_samples (run_id, time, gpu, "
                             f"{', '.join(GPU_COLUMNS)}) VALUES "
                             f"({', '.join('?' * (len(GPU_COLUMNS) + 3))})", gpus)

    def hardware_samples(self, run_id: int, after: float | None = None) -> dict:
        """A run's samples in time order: ``{"host": {column: array}, "gpus": {index:
        {column: array}}}``, each with a "time" column; NaN where nothing was read (a
        missing step is -1). ``after``: only samples taken later than that time (a run
        followed as it trains)."""
        self._resolve(run_id)
        later, args = ("AND time > ?", (run_id, after)) if after is not None else ("", (run_id,))
        host = self._query(f"SELECT time, {', '.join(HOST_COLUMNS)} FROM hardware_samples "
                           f"WHERE run_id = ? {later} ORDER BY time", args)
        rows = self._query(f"SELECT gpu, time, {', '.join(GPU_COLUMNS)} FROM gpu_samples "
                           f"WHERE run_id = ? {later} ORDER BY gpu, time", args)
        per_gpu: dict[int, list] = {}
        for r in rows:
            per_gpu.setdefault(r[0], []).append(tuple(r)[1:])
        return {"host": _columns(("time", *HOST_COLUMNS), host),
                "gpus": {i: _columns(("time", *GPU_COLUMNS), r) for i, r in per_gpu.items()}}

    # --- plumbing --------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise WorkspaceError(f"workspace {self.root} is closed: open it again with "
                                 f"Workspace({str(self.root)!r})")
        return self._conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, committed or rolled back whatever happens.

        BEGIN IMMEDIATE takes the write lock up front, so waiting for another
        writer goes through busy_timeout instead of failing on a lock upgrade,
        and the lock is never kept after an error.
        """
        with self._lock:
            conn = self._connection()
            self.require_writable()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.DatabaseError as exc:
                raise self._write_error(exc) from exc
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass  # SQLite already rolled back (e.g. after a full disk)
                if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, _BUGS):
                    raise self._write_error(exc) from exc
                raise

    def _write_error(self, exc: sqlite3.DatabaseError) -> WorkspaceError:
        return database_error(exc, self.db_path, "write to", self.read_only_reason)

    def _query(self, sql: str, params: Sequence = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._connection().execute(sql, params).fetchall()
            except sqlite3.DatabaseError as exc:
                raise database_error(exc, self.db_path, "read", self.read_only_reason) from exc

    def _update(self, run_id: int, assignments: str, params: Sequence, *,
                defaults: bool = False) -> None:
        with self._write() as conn:
            if defaults:
                self._store_defaults(conn)
            cur = conn.execute(f"UPDATE runs SET {assignments} WHERE id = ?", (*params, run_id))
            if cur.rowcount == 0:
                raise self._no_run(run_id)

    def _resolve(self, ref: int | str) -> int:
        """The id of a run given as an id or its folder name; raise if there is none."""
        key = ref
        if isinstance(ref, str) and ref.strip().isascii() and ref.strip().isdigit():
            # An id longer than SQLite's 64-bit integers names no run (and int() of a
            # string past Python's 4,300-digit limit would raise).
            key = int(ref) if len(ref.strip()) <= MAX_ID_DIGITS else -1
        if isinstance(key, int) and not isinstance(key, bool):
            rows = (self._query("SELECT id FROM runs WHERE id = ?", (key,))
                    if 0 <= key < 2**63 else [])
        elif isinstance(ref, (str, Path)) and str(ref).strip():
            rows = self._query("SELECT id FROM runs WHERE dir = ?",
                               (f"{RUNS_DIR}/{Path(str(ref).strip()).name}",))
        else:
            rows = []
        if not rows:
            raise self._no_run(ref)
        return rows[0]["id"]

    def _no_run(self, ref) -> WorkspaceError:
        root = shlex.quote(str(self.root))
        text = str(ref)
        ref = (text if len(text) <= 40 and text.isprintable() else show(text) if len(text) <= 40
               else f"{show(text[:20])}... ({len(text)} chars)")  # one line, whatever was typed
        return WorkspaceError(f"no run {ref} in workspace {self.root}: "
                              f"`torchwork runs --workspace {root}` lists the runs")

    def _record(self, row: sqlite3.Row) -> RunRecord:
        values = dict(row)
        values["checkpoint"] = path_in_workspace(self.root, values["checkpoint"], values["dir"])
        values["dir"] = self.root / values["dir"]
        return RunRecord(**values)


def _who(row) -> str:
    return f" (pid {row['pid']} on {row['hostname']})" if row["pid"] is not None else ""


def _columns(names: Sequence[str], rows: Sequence) -> dict[str, np.ndarray]:
    """Rows as one float array per column (None becomes NaN; a missing step -1)."""
    cols = list(zip(*rows)) if rows else [()] * len(names)
    out = {}
    for name, col in zip(names, cols):
        if name in ("step", "throttle_reasons"):
            out[name] = np.array([-1 if v is None else v for v in col], dtype=np.int64)
        else:
            out[name] = np.array([np.nan if v is None else v for v in col], dtype=np.float64)
    return out
