"""The SQLite schema of a workspace and how a connection to it is opened.

The schema is versioned with ``PRAGMA user_version`` so a later Torchwork can
migrate an old workspace in place, and an old Torchwork refuses a newer one
instead of misreading it. Migrations are appended, never edited.
"""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path

STATUSES = ("created", "running", "completed", "stopped", "failed", "interrupted", "pruned")
# pruned: a search trial that the study's pruner ended early (engine/experiments)
FINAL_STATUSES = ("completed", "stopped", "failed", "interrupted", "pruned")
# What a run is for: "train" makes a model (Open run, Resume, Export and Compression list it),
# "profile" is a short dedicated run that only records a profiler capture.
RUN_KINDS = ("train", "profile")

# Column order of a step row, as add_step_metrics accepts it in a sequence.
STEP_COLUMNS = ("step", "epoch", "loss", "lr", "grad_norm", "samples_per_s", "wall_s")

# The status list as version 1 wrote it; version 5 widened it (see _allow_pruned).
_STATUS_CHECK = "'created', 'running', 'completed', 'stopped', 'failed', 'interrupted'"
_KIND_CHECK = ", ".join(f"'{k}'" for k in RUN_KINDS)

# Entry i holds the statements that move the schema from version i to i + 1.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # 0 -> 1
        f"""
        CREATE TABLE runs (
            -- AUTOINCREMENT: an id is never reused after a delete, so a run
            -- folder name (which starts with the id) never collides.
            id               INTEGER PRIMARY KEY AUTOINCREMENT,
            name             TEXT NOT NULL,
            dir              TEXT NOT NULL UNIQUE,  -- relative to the workspace root
            status           TEXT NOT NULL DEFAULT 'created' CHECK (status IN ({_STATUS_CHECK})),
            created_at       TEXT NOT NULL,
            started_at       TEXT,
            ended_at         TEXT,
            config_toml      TEXT NOT NULL,
            num_params       INTEGER,
            device           TEXT,
            steps            INTEGER NOT NULL DEFAULT 0,
            epochs_completed INTEGER NOT NULL DEFAULT 0,
            wall_s           REAL,
            best_val         REAL,
            best_metric      TEXT,
            error            TEXT,
            checkpoint       TEXT,
            -- who is running it, to tell a live run from one whose process died
            pid              INTEGER,
            hostname         TEXT,
            proc_created     REAL
        )""",
        """
        CREATE TABLE step_metrics (
            run_id        INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            step          INTEGER NOT NULL,
            epoch         INTEGER NOT NULL,
            loss          REAL,
            lr            REAL,
            grad_norm     REAL,
            samples_per_s REAL,
            wall_s        REAL,
            PRIMARY KEY (run_id, step)
        ) WITHOUT ROWID""",
        # long format: any metric name fits without a schema change
        """
        CREATE TABLE epoch_metrics (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            epoch  INTEGER NOT NULL,
            step   INTEGER NOT NULL,
            name   TEXT NOT NULL,
            value  REAL,
            PRIMARY KEY (run_id, name, epoch)
        ) WITHOUT ROWID""",
    ),
    (  # 1 -> 2: hardware samples (engine/monitor), the host's and one row per GPU
        """
        CREATE TABLE hardware_samples (
            run_id      INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            time        REAL NOT NULL,  -- seconds since the epoch
            step        INTEGER,        -- the training step it fell in
            process_cpu REAL, system_cpu REAL, process_rss REAL, ram_used REAL, ram_total REAL,
            PRIMARY KEY (run_id, time)
        ) WITHOUT ROWID""",
        """
        CREATE TABLE gpu_samples (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            time   REAL NOT NULL,
            gpu    INTEGER NOT NULL,
            step   INTEGER,
            utilization REAL, memory_utilization REAL, memory_used REAL, memory_total REAL,
            power REAL, power_limit REAL, temperature REAL, sm_clock REAL, memory_clock REAL,
            pcie_tx REAL, pcie_rx REAL, process_memory REAL, throttle_reasons INTEGER,
            torch_allocated REAL, torch_reserved REAL, torch_peak REAL,
            PRIMARY KEY (run_id, gpu, time)
        ) WITHOUT ROWID""",
    ),
    (  # 2 -> 3: a run's kind, so profile captures stay out of the lists of trained runs
        f"ALTER TABLE runs ADD COLUMN kind TEXT NOT NULL DEFAULT 'train' "
        f"CHECK (kind IN ({_KIND_CHECK}))",
        # Before this column, `torchwork profile` named its runs profile-<dataset>-<arch>
        # unless told otherwise; the window's dedicated captures cannot be told apart.
        "UPDATE runs SET kind = 'profile' WHERE name LIKE 'profile-%'",
    ),
    (  # 3 -> 4: runs trained together (the folds of a cross-validation) share a group tag
        "ALTER TABLE runs ADD COLUMN run_group TEXT",
        "CREATE INDEX runs_by_group ON runs (run_group) WHERE run_group IS NOT NULL",
    ),
    (  # 4 -> 5: experiments: pruned trials, a study and trial number, notes, tags, a trash
        "_allow_pruned",
        "ALTER TABLE runs ADD COLUMN study TEXT",  # the Optuna study a search trial belongs to
        "ALTER TABLE runs ADD COLUMN trial INTEGER",  # its trial number in that study
        "ALTER TABLE runs ADD COLUMN notes TEXT",
        "ALTER TABLE runs ADD COLUMN trashed_at TEXT",  # set: in the trash, until emptied
        "CREATE INDEX runs_by_study ON runs (study, trial) WHERE study IS NOT NULL",
        """
        CREATE TABLE run_tags (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            tag    TEXT NOT NULL,
            PRIMARY KEY (run_id, tag)
        ) WITHOUT ROWID""",
        "CREATE INDEX run_tags_by_tag ON run_tags (tag)",
    ),
    (  # 5 -> 6: the energy a run used (engine.monitor.energy); NULL with a note: not measured
        "ALTER TABLE runs ADD COLUMN energy_j REAL",
        "ALTER TABLE runs ADD COLUMN energy_per_epoch_j REAL",
        "ALTER TABLE runs ADD COLUMN energy_per_1k_samples_j REAL",
        "ALTER TABLE runs ADD COLUMN energy_source TEXT",  # nvml | nvml-power | rapl
        "ALTER TABLE runs ADD COLUMN energy_note TEXT",  # why it is not available
    ),
    (  # 6 -> 7: each run's config as the flat keys where it departs from the defaults
        # (engine/workspace/config_columns.py), stored with its TOML, so a table of
        # thousands of runs shows their differing keys without parsing a TOML; JSON
        # {"defaults": fingerprint, "departures": {key: value}}. NULL (runs created
        # before): read from config_toml.
        "ALTER TABLE runs ADD COLUMN config_departures TEXT",
        # The defaults those departures are from, by fingerprint: a later Torchwork with
        # other defaults rebases the stored departures onto its own without a parse.
        """
        CREATE TABLE config_defaults (
            fingerprint INTEGER PRIMARY KEY,  -- crc32 of the default config's TOML
            flat        TEXT NOT NULL         -- those defaults as flat keys, JSON
        )""",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

# Columns of the hardware tables after run_id, time (and gpu), as the store reads them back.
HOST_COLUMNS = ("step", "process_cpu", "system_cpu", "process_rss", "ram_used", "ram_total")
GPU_COLUMNS = ("step", "utilization", "memory_utilization", "memory_used", "memory_total",
               "power", "power_limit", "temperature", "sm_clock", "memory_clock", "pcie_tx",
               "pcie_rx", "process_memory", "throttle_reasons", "torch_allocated",
               "torch_reserved", "torch_peak")


class SchemaTooNew(Exception):
    """The database was written by a newer Torchwork than this one."""

    def __init__(self, found: int):
        super().__init__(found)
        self.found = found


class ForeignDatabase(Exception):
    """The file is another program's SQLite database: it must be left as it is."""

    def __init__(self, objects: list[str], version: int):
        super().__init__(objects, version)
        self.objects = objects
        self.version = version


class NeedsUpgrade(Exception):
    """An older (or empty) workspace that cannot be migrated because it is read-only."""

    def __init__(self, found: int):
        super().__init__(found)
        self.found = found


# What SQLite says when a WAL database's -shm file can neither be opened nor created.
_NO_SHM_TEXTS = ("unable to open database file", "attempt to write a readonly database")


def _tables_of(version: int) -> set[str]:
    return {name for statements in MIGRATIONS[:version] for statement in statements
            for name in re.findall(r"CREATE TABLE (\w+)", statement)}


def connect(path: Path, busy_timeout_ms: int = 5000, *,
            read_only: bool = False) -> sqlite3.Connection:
    """Open the database for one process, in WAL mode, migrated to SCHEMA_VERSION.

    WAL lets readers (the app, a second CLI) follow a run while it is written
    and keeps committed transactions intact when the writer is killed;
    ``synchronous=NORMAL`` is safe with WAL against a process crash and avoids
    an fsync per commit. ``isolation_level=None`` leaves transactions to the
    caller, who opens them with BEGIN IMMEDIATE.

    The file is identified before anything writes to it (``journal_mode =
    WAL`` itself rewrites the header), so another program's database that
    happens to be named like ours is refused untouched. ``read_only`` opens
    it for reading only, as it is, without migrating it.
    """
    if read_only:
        return _connect_read_only(Path(path), busy_timeout_ms)
    conn = sqlite3.connect(path, timeout=busy_timeout_ms / 1000, isolation_level=None,
                           check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        _identify(conn)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        _migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _connect_read_only(path: Path, busy_timeout_ms: int) -> sqlite3.Connection:
    """A connection that cannot write, for a file or folder this process may not write.

    Reading a WAL database needs its -shm file: SQLite creates it when the
    folder allows, or reads an existing one. In a read-only folder without it
    the database opens only as ``immutable``, which ignores the -wal file; that
    is safe while the -wal holds nothing (nobody can write there either) and
    refused otherwise, since committed runs would be missing.
    """
    uri = f"{path.absolute().as_uri()}?mode=ro"
    try:
        return _open_read_only(uri, busy_timeout_ms)
    except sqlite3.OperationalError as exc:
        # SQLite says CANTOPEN (a read-only mount) or READONLY_DIRECTORY (permissions)
        wal = path.with_name(path.name + "-wal")
        if (not any(text in str(exc) for text in _NO_SHM_TEXTS)
                or os.access(path.parent, os.W_OK) or (wal.exists() and wal.stat().st_size > 0)):
            raise
    return _open_read_only(uri + "&immutable=1", busy_timeout_ms)


def _open_read_only(uri: str, busy_timeout_ms: int) -> sqlite3.Connection:
    conn = sqlite3.connect(uri, uri=True, timeout=busy_timeout_ms / 1000, isolation_level=None,
                           check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        version = _identify(conn)  # also the first read: where a file that will not open fails
        if version < SCHEMA_VERSION:
            raise NeedsUpgrade(version)
    except BaseException:
        conn.close()
        raise
    return conn


def _identify(conn: sqlite3.Connection) -> int:
    """The schema version of a Torchwork database (0 for a new, empty file); raise for
    another program's database or a newer Torchwork's."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    objects = [name for (name,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name")]
    if not objects and version == 0:
        return 0
    if version > SCHEMA_VERSION and "runs" in objects:
        raise SchemaTooNew(version)
    if not 0 < version <= SCHEMA_VERSION or not _tables_of(version) <= set(objects):
        raise ForeignDatabase(objects, version)
    return version


def _allow_pruned(conn: sqlite3.Connection) -> None:
    """Add 'pruned' to the runs table's status CHECK in place.

    SQLite cannot alter a CHECK constraint, and rebuilding the table would
    cascade-delete every metric row (foreign keys cannot be switched off inside
    the migration's transaction). A constraint that only admits one more value
    may be rewritten in sqlite_schema: the procedure SQLite's documentation gives
    for it (ALTER TABLE, "other kinds of table schema changes"); existing rows
    stay valid.
    """
    old = "'interrupted')"
    (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' "
                          "AND name = 'runs'").fetchone()
    if old not in sql:
        raise sqlite3.DatabaseError("the runs table's status check is not the one version 4 "
                                    "wrote")
    version = conn.execute("PRAGMA schema_version").fetchone()[0]
    conn.execute("PRAGMA writable_schema = ON")
    try:
        conn.execute("UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'runs'",
                     (sql.replace(old, "'interrupted', 'pruned')", 1),))
        conn.execute(f"PRAGMA schema_version = {version + 1}")  # other connections re-read it
    finally:
        conn.execute("PRAGMA writable_schema = OFF")


_STEPS = {"_allow_pruned": _allow_pruned}


def _migrate(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")  # two processes opening a new workspace at once
    try:
        version = _identify(conn)  # again: another process may have migrated it meanwhile
        for statements in MIGRATIONS[version:]:
            for statement in statements:
                if statement in _STEPS:
                    _STEPS[statement](conn)
                else:
                    conn.execute(statement)
        if version != SCHEMA_VERSION:
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # SQLite ends the transaction itself on some errors (full disk)
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # the original error says more than a failed rollback
        raise
