"""A throwaway PostgreSQL server for one test: initdb into a temporary folder, pg_ctl start
on a Unix socket there, stop and remove at teardown. No system service is needed; the
test is skipped, saying why, where Debian's postgresql package (initdb, pg_ctl) is absent
or its server cannot start. PostgreSQL refuses to run as root: as root the server runs
as the package's ``postgres`` user.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest


def _bindir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                      key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(versions[-1]).parent if versions else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(name="postgres_url")
def postgres_server():
    """A SQLAlchemy URL of a fresh, empty PostgreSQL database (unix socket, trust auth)."""
    bindir = _bindir()
    if bindir is None or not (bindir / "initdb").exists():
        pytest.skip("no PostgreSQL server here (initdb/pg_ctl not found): install Debian's "
                    "postgresql package (packaging/system-deps.sh does as root)")
    as_user: list[str] = []
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        try:
            import pwd

            owner = pwd.getpwnam("postgres")
        except KeyError:
            owner = None
        if runuser is None or owner is None:
            pytest.skip("PostgreSQL will not run as root and there is no 'postgres' user to "
                        "run it as (or no runuser)")
        as_user = [runuser, "-u", "postgres", "--"]
    # Not under pytest's tmp_path: as root that folder is closed to the postgres user. Short,
    # too: the server's socket path must fit in 107 bytes.
    folder = Path(tempfile.mkdtemp(prefix="tw-pg-"))
    data = folder / "data"
    if as_user:
        os.chmod(folder, 0o755)
        os.chown(folder, owner.pw_uid, owner.pw_gid)
    port = _free_port()

    def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([*as_user, *args], capture_output=True, text=True, timeout=timeout,
                              cwd=folder)

    try:
        made = run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "torchwork",
                   "--no-sync", "-E", "UTF8")
        if made.returncode:
            pytest.skip(f"initdb failed here: {made.stderr.strip()[-300:]}")
        started = run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w",
                      "-o", f"-p {port} -k {folder} -c listen_addresses='' -c fsync=off",
                      "start")
        if started.returncode:
            log = (folder / "log").read_text() if (folder / "log").exists() else ""
            pytest.skip(f"the PostgreSQL server did not start: "
                        f"{(started.stderr + log).strip()[-300:]}")
        yield f"postgresql+psycopg2://torchwork@/postgres?host={folder}&port={port}"
    finally:
        if data.exists():
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(folder, ignore_errors=True)
