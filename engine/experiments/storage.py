"""Where a study lives: Optuna's own RDB schema behind any SQLAlchemy URL.

By default an SQLite file in the workspace (optuna-dashboard opens it as it is);
PostgreSQL or MySQL let workers on many machines join one study. Each running
trial writes a heartbeat: a worker that dies mid-trial stops writing it, and the
next worker to start a trial marks that trial failed (Optuna's fail_stale_trials),
so a killed worker never leaves the study waiting on a trial forever.
"""

from __future__ import annotations

import sys
import time
import warnings
import zlib
from pathlib import Path

DEFAULT_FILE = "search.sqlite"


class SearchError(Exception):
    """A search that cannot start or go on: the message says what to change."""


def default_storage(workspace_root: str | Path) -> str:
    return f"sqlite:///{Path(workspace_root) / DEFAULT_FILE}"


def shown_url(url: str) -> str:
    """The URL as messages show it: without its password."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: the caller's message says so
        return url


def open_storage(url: str, heartbeat: int):
    """An RDBStorage of ``url`` with heartbeats every ``heartbeat`` seconds; SearchError
    when the URL is not one SQLAlchemy reads or its database cannot be reached."""
    import optuna

    kwargs = ({"connect_args": {"timeout": 60}} if url.startswith("sqlite")
              else {"pool_pre_ping": True})
    from sqlalchemy.exc import IntegrityError, OperationalError

    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            for attempt in range(3):
                try:
                    return optuna.storages.RDBStorage(
                        url, engine_kwargs=kwargs, heartbeat_interval=heartbeat,
                        heartbeat_stale_trial_callback=_lost_worker)
                except (IntegrityError, OperationalError):
                    # Two processes made a new database's tables at once (two searches
                    # started together): the loser's table or version row is refused, and
                    # the tables are there now, so opening again reads them. (A server
                    # that cannot be reached is tried three times, 0.6 s in all.)
                    if attempt == 2:
                        raise
                    time.sleep(0.2 * (attempt + 1))
    except Exception as exc:  # SQLAlchemy's and the drivers' errors share no base class
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SearchError(f"cannot open search storage {shown_url(url)}: {reason}") from None


class TrialLock:
    """Held by one worker of a study at a time, from counting the study's trials until its
    next trial exists in the storage, so workers that ask at the same instant cannot
    both start the last trial: a study of ``n_trials`` ends with exactly that many.

    An SQLite file: a lock file beside it (filelock); PostgreSQL: a session advisory
    lock, MySQL: a named lock, each on a connection of its own (released by the server
    if the worker dies). Any other storage: no lock (a count may overshoot by a worker).
    """

    def __init__(self, url: str, study: str, storage):
        from sqlalchemy.engine import make_url

        self._held = False
        self._conn = None
        self._file = None
        parsed = make_url(url)
        backend = parsed.get_backend_name()
        name = f"torchwork-trials:{study}"
        if backend == "sqlite" and parsed.database not in (None, "", ":memory:"):
            import filelock

            self._file = filelock.FileLock(f"{parsed.database}.trials.lock")
        elif backend in ("postgresql", "mysql", "mariadb"):
            self._conn = storage.engine.connect()
            key = zlib.crc32(name.encode())
            self._sql = (("SELECT pg_advisory_lock(:key)", "SELECT pg_advisory_unlock(:key)")
                         if backend == "postgresql" else
                         ("SELECT GET_LOCK(:name, -1)", "SELECT RELEASE_LOCK(:name)"))
            self._params = {"key": key, "name": name}

    def acquire(self) -> None:
        if self._file is not None:
            self._file.acquire()
        elif self._conn is not None:
            self._run(self._sql[0])
        self._held = True

    def release(self) -> None:
        """Let the next worker count; a second call does nothing."""
        if not self._held:
            return
        self._held = False
        if self._file is not None:
            self._file.release()
        elif self._conn is not None:
            self._run(self._sql[1])

    def _run(self, sql: str) -> None:
        from sqlalchemy import text

        self._conn.execute(text(sql), self._params)
        self._conn.commit()  # the lock is the session's: no transaction left open

    def close(self) -> None:
        self.release()
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _lost_worker(study, trial) -> None:
    print(f"trial {trial.number} of study {study.study_name} failed: its worker stopped "
          f"sending heartbeats (killed or cut off)", file=sys.stderr)
