"""A workspace under attack: a damaged, truncated, read-only or foreign database, a full disk
at open, and a workspace moved or copied to another folder.

Every command answers a broken workspace with one line that says what is wrong and what to
do; a file that is not ours is never written; a read-only workspace can still be listed and
exported; a moved or copied workspace resumes from its own checkpoints.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from contextlib import contextmanager
from pathlib import Path

import pytest

from engine.cli import main
from engine.workspace import Workspace, WorkspaceError, diskspace
from engine.workspace.diskspace import disk_full_message, is_disk_full
from tests.conftest import tiny

ROOT = Path(__file__).parents[2]
RUN_FOLDER = "runs/0001-moons-mlp"
FIRST_STEPS = 10  # of 28 (4 epochs of 7 steps): a run that resume can continue


def train(config: Path, workspace: Path) -> None:
    assert main(["run", str(config), "--workspace", str(workspace), "--max-steps",
                 str(FIRST_STEPS), "--json"]) == 0


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("config") / "run.toml"
    tiny(**{"train.epochs": 4}).save(path)
    return path


@pytest.fixture(scope="module")
def base(tmp_path_factory, config) -> Path:
    """A workspace with two runs, each stopped at step 10 of 28 (copied by each test)."""
    ws = tmp_path_factory.mktemp("base") / "ws"
    train(config, ws)
    train(config, ws)
    return ws


@pytest.fixture
def ws(tmp_path, base) -> Path:
    return Path(shutil.copytree(base, tmp_path / "ws"))


def commands(ws: Path, config: Path, out: Path) -> dict[str, list[str]]:
    flag = ["--workspace", str(ws)]
    return {"runs": ["runs", *flag], "run": ["run", str(config), *flag],
            "resume": ["resume", "1", *flag],
            "export": ["export", "1", "--out", str(out / "model.safetensors"), *flag],
            "compress": ["compress", "1", "--out", str(out / "compressed"), *flag]}


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def events(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"<dir>"
            for p in sorted(folder.rglob("*"))}


# --- a damaged database ------------------------------------------------------------------

def damage(ws: Path, how: str) -> None:
    db = ws / "workspace.sqlite"
    with sqlite3.connect(db) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        table = {"runs page": "runs", "metrics page": "step_metrics"}.get(how)
        page = table and conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?",
                                      (table,)).fetchone()[0]
    conn.close()
    data = bytearray(db.read_bytes())
    if how == "truncated":
        data = data[:len(data) // 2]
    else:
        start = (page - 1) * page_size
        data[start:start + page_size] = bytes((i * 37 + 11) % 256 for i in range(page_size))
    db.write_bytes(bytes(data))


@pytest.mark.parametrize("how, readable", [("runs page", ()), ("truncated", ()),
                                           ("metrics page", ("runs", "export"))])
def test_a_damaged_database_gets_one_line_from_every_command(ws, tmp_path, config, capsys, how,
                                                             readable):
    damage(ws, how)
    for name, argv in commands(ws, config, tmp_path).items():
        code = main(argv)
        if name in readable:  # what the damage did not reach still reads
            assert code == 0, name
            capsys.readouterr()
            continue
        assert code == 2, name
        err = one_line(capsys)
        assert "workspace.sqlite is damaged" in err and "move the file away" in err, err


def test_a_damaged_page_is_found_before_a_run_starts(ws, config, capsys):
    damage(ws, "metrics page")
    with Workspace(ws) as opened:  # opens: the runs table is intact
        with pytest.raises(WorkspaceError, match="is damaged .*move the file away"):
            opened.check()
    assert main(["run", str(config), "--workspace", str(ws), "--json"]) == 2
    assert capsys.readouterr().out == ""  # no run started


# --- another program's database ------------------------------------------------------------

FOREIGN = {
    "notes app": ("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)", 0),
    "its own runs table": ("CREATE TABLE runs (id INTEGER PRIMARY KEY, score REAL)", 0),
    "a versioned app": ("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)", 1),
}


@pytest.mark.parametrize("kind", FOREIGN)
def test_a_foreign_database_is_refused_and_left_untouched(tmp_path, config, capsys, kind):
    folder = tmp_path / "other"
    folder.mkdir()
    create, version = FOREIGN[kind]
    conn = sqlite3.connect(folder / "workspace.sqlite")
    conn.execute(create)
    conn.execute(f"PRAGMA user_version = {version}")
    conn.commit()
    conn.close()
    before = snapshot(folder)
    for name, argv in commands(folder, config, tmp_path).items():
        assert main(argv) == 2, name
        err = one_line(capsys)
        assert "another program's SQLite database" in err and "left untouched" in err, err
    with pytest.raises(WorkspaceError, match="another program's"):
        Workspace(folder)
    assert snapshot(folder) == before  # same bytes, no -wal/-shm, no runs/ folder


# --- a read-only workspace -------------------------------------------------------------------

@contextmanager
def read_only(path: Path):
    """``path`` (a file or folder) made read-only for this process.

    Root ignores permission bits, so as root it becomes a read-only bind mount.
    """
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    if shutil.which("mount") is None:
        pytest.skip("root ignores permission bits and there is no `mount` for a read-only "
                    "bind mount")
    done = subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"root ignores permission bits and cannot bind-mount here: "
                    f"{done.stderr.strip()}")
    try:
        done = subprocess.run(["mount", "-o", "remount,bind,ro", str(path)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"root ignores permission bits and cannot remount read-only here: "
                        f"{done.stderr.strip()}")
        yield
    finally:
        # lazily: a connection a failing check left open must not keep the mount
        subprocess.run(["umount", "--lazy", str(path)], check=True)


@pytest.mark.parametrize("what", ["database file", "folder"])
def test_a_read_only_workspace_is_listed_and_exported_not_trained(ws, tmp_path, config, capsys,
                                                                   what):
    db = ws / "workspace.sqlite"
    before = db.read_bytes()
    out = tmp_path / "out"
    out.mkdir()
    argv = commands(ws, config, out)
    with read_only(db if what == "database file" else ws):
        assert main(argv["runs"]) == 0
        assert capsys.readouterr().out.count("moons-mlp") == 2
        assert main(argv["export"]) == 0  # written elsewhere
        assert (out / "model.safetensors").is_file()
        capsys.readouterr()
        for name in ("run", "resume"):
            assert main(argv[name]) == 2, name
            err = one_line(capsys)
            assert "is read-only" in err and "pick another --workspace" in err, err
        with Workspace(ws) as opened:  # what the window's Open run reads
            assert opened.read_only
            run = opened.get_run(1)
            assert run.steps == FIRST_STEPS and Path(run.checkpoint).is_file()
            assert opened.step_metrics(1)["step"].size > 0
            assert "val_loss" in opened.epoch_metrics(1)
            opened.hardware_samples(1)
            with pytest.raises(WorkspaceError, match="read-only .*: runs can be listed, opened "
                                                     "and exported, not trained"):
                opened.create_run(tiny())
            with pytest.raises(WorkspaceError, match="read-only"):
                opened.mark_running(1)
    assert db.read_bytes() == before


# --- a full disk at open ---------------------------------------------------------------------

def test_a_full_disk_is_recognised_in_every_layer_it_reaches():
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert is_disk_full(OSError(errno.EFBIG, "File too large"))  # ulimit -f
    assert is_disk_full(sqlite3.OperationalError("database or disk is full"))
    assert is_disk_full(RuntimeError("[enforce fail at inline_container.cc:672] . unexpected "
                                     "pos 1216 vs 1110"))
    assert is_disk_full(RuntimeError("[enforce fail at inline_container.cc:...] . "
                                     "PytorchStreamWriter failed writing file data/0: file "
                                     "write failed"))
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as exc:
            raise WorkspaceError("cannot write") from exc
    except WorkspaceError as chained:
        assert is_disk_full(chained)
    for other in (OSError(errno.EACCES, "Permission denied"), ValueError("no space"),
                  RuntimeError("CUDA out of memory"),
                  sqlite3.OperationalError("database is locked")):
        assert not is_disk_full(other), other


def test_a_bare_io_error_counts_as_full_only_on_an_all_but_full_disk(monkeypatch, tmp_path):
    io_error = sqlite3.OperationalError("disk I/O error")  # SQLite growing its -shm file
    assert not is_disk_full(io_error)
    monkeypatch.setattr(diskspace, "free_bytes", lambda path: 10 * 2**30)
    assert not is_disk_full(io_error, tmp_path)
    monkeypatch.setattr(diskspace, "free_bytes", lambda path: 4096)
    assert is_disk_full(io_error, tmp_path)


def test_the_disk_full_message_says_how_much_is_free_where(monkeypatch, tmp_path):
    monkeypatch.setattr(diskspace, "free_bytes", lambda path: 3_250_000)
    assert disk_full_message(tmp_path / "ws") == \
        f"disk full (3.2 MB free at {tmp_path / 'ws'}): free some space and try again"
    monkeypatch.setattr(diskspace, "free_bytes", lambda path: 52_400_000)
    assert disk_full_message(tmp_path, "free some space, then `torchwork resume 3`") == \
        f"disk full (52 MB free at {tmp_path}): free some space, then `torchwork resume 3`"
    monkeypatch.undo()
    real = disk_full_message(tmp_path / "not" / "made" / "yet")  # its nearest existing parent
    assert real.startswith("disk full (") and " MB free at " in real


FULL_DISK_SCRIPT = """
import os, shutil, sys
from engine.cli import main

disk, existing, leave = sys.argv[1], sys.argv[2], int(sys.argv[3])
ws = os.path.join(disk, "ws")
if existing != "-":
    shutil.copytree(existing, ws)
fd = os.open(os.path.join(disk, "filler"), os.O_WRONLY | os.O_CREAT)
try:
    while True:
        os.write(fd, b"x" * 4096)
except OSError:
    pass
os.ftruncate(fd, max(0, os.lseek(fd, 0, os.SEEK_CUR) - leave))
os.close(fd)
print("exit when full:", main(["runs", "--workspace", ws]), flush=True)
os.remove(os.path.join(disk, "filler"))
print("exit when freed:", main(["runs", "--workspace", ws]), flush=True)
"""


def on_small_disk(tmp_path: Path, existing: Path | None, leave: int):
    """Run FULL_DISK_SCRIPT with ``disk`` on a 1 MiB tmpfs, mounted in a mount namespace of
    its own (no root needed where user namespaces are allowed; nothing to unmount).

    A file-size limit (RLIMIT_FSIZE) is no stand-in here: SQLite reports the EFBIG it
    causes as a plain I/O error, not as a full disk.
    """
    if shutil.which("unshare") is None:
        pytest.skip("no `unshare` to mount a small tmpfs in a namespace of its own")
    disk = tmp_path / "disk"
    disk.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))}
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                            'mount -t tmpfs -o size=1m tmpfs "$0"', str(disk)],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a 1 MiB tmpfs in a user and mount namespace here: "
                    f"{probe.stderr.strip()}")
    return subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
         'mount -t tmpfs -o size=1m tmpfs "$0" && exec "$@"', str(disk),
         sys.executable, "-c", textwrap.dedent(FULL_DISK_SCRIPT), str(disk),
         str(existing) if existing else "-", str(leave)],
        capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize("existing, leave", [(False, 0), (False, 16384), (False, 65536),
                                             (True, 0)])
def test_a_full_disk_at_open_says_disk_full_and_how_much_is_free(tmp_path, base, existing,
                                                                 leave):
    if existing:  # a bare workspace (no run folders) fits on the small disk
        source = tmp_path / "small"
        source.mkdir()
        shutil.copy(base / "workspace.sqlite", source / "workspace.sqlite")
    done = on_small_disk(tmp_path, source if existing else None, leave)
    exits = [line for line in done.stdout.splitlines() if line.startswith("exit when")]
    assert exits == ["exit when full: 2", "exit when freed: 0"], done.stdout + done.stderr
    err = done.stderr.strip().splitlines()
    assert len(err) == 1, done.stderr
    assert "rollback" not in err[0]
    assert err[0].startswith("torchwork runs: cannot open workspace: ")
    assert re.search(r"disk full \(0\.\d MB free at /", err[0]), err[0]
    assert err[0].endswith("free some space and retry, or pick another --workspace"), err[0]


# --- a moved or copied workspace -----------------------------------------------------------

def test_a_moved_workspace_resumes_from_its_moved_checkpoint(tmp_path, config, capsys):
    trained = tmp_path / "trained"
    train(config, trained)
    moved = Path(shutil.move(trained, tmp_path / "moved"))
    capsys.readouterr()
    assert main(["resume", "1", "--workspace", str(moved), "--json", "--max-steps", "0"]) == 0
    out = events(capsys)
    assert out[0]["start_step"] == FIRST_STEPS
    assert out[-1]["status"] == "completed" and out[-1]["steps"] == 28
    with Workspace(moved) as opened:
        assert opened.get_run(1).checkpoint == str(moved / RUN_FOLDER / "checkpoints/last.pt")


def test_a_copied_workspace_resumes_from_its_own_checkpoint(tmp_path, config, capsys):
    original = tmp_path / "original"
    train(config, original)
    copy = Path(shutil.copytree(original, tmp_path / "copy"))
    # the original trains on to its end, so its checkpoint differs from the copy's
    assert main(["resume", "1", "--workspace", str(original), "--json", "--max-steps", "0"]) == 0
    checkpoint = original / RUN_FOLDER / "checkpoints" / "last.pt"
    before = checkpoint.read_bytes(), checkpoint.stat().st_mtime_ns
    capsys.readouterr()

    assert main(["resume", "1", "--workspace", str(copy), "--json", "--max-steps", "0"]) == 0
    assert events(capsys)[0]["start_step"] == FIRST_STEPS  # its own, not the original's end
    assert (checkpoint.read_bytes(), checkpoint.stat().st_mtime_ns) == before


def test_an_old_absolute_checkpoint_path_is_rebased_and_new_ones_are_stored_relative(
        ws, capsys):
    conn = sqlite3.connect(ws / "workspace.sqlite")
    conn.executemany("UPDATE runs SET checkpoint = ? WHERE id = ?", [
        ("/home/someone/old/ws/runs/0001-moons-mlp/checkpoints/last.pt", 1),
        ("ws/runs/0002-moons-mlp/checkpoints/last.pt", 2)])  # relative to an old cwd
    conn.commit()
    conn.close()
    with Workspace(ws) as opened:
        assert opened.get_run(1).checkpoint == str(ws / RUN_FOLDER / "checkpoints/last.pt")
        assert opened.get_run(2).checkpoint == \
            str(ws / "runs/0002-moons-mlp/checkpoints/last.pt")
        opened.update_run(2, checkpoint=ws / "runs/0002-moons-mlp/checkpoints/best.pt")
        opened.update_run(1, checkpoint="/data/elsewhere/teacher.pt")  # outside: kept
        assert opened.get_run(1).checkpoint == "/data/elsewhere/teacher.pt"
    conn = sqlite3.connect(ws / "workspace.sqlite")
    stored = dict(conn.execute("SELECT id, checkpoint FROM runs").fetchall())
    conn.close()
    assert stored == {1: "/data/elsewhere/teacher.pt",
                      2: "runs/0002-moons-mlp/checkpoints/best.pt"}


def test_a_rebased_old_path_resumes(ws, capsys):
    conn = sqlite3.connect(ws / "workspace.sqlite")
    conn.execute("UPDATE runs SET checkpoint = ? WHERE id = 1",
                 ("/gone/ws/runs/0001-moons-mlp/checkpoints/last.pt",))
    conn.commit()
    conn.close()
    capsys.readouterr()
    assert main(["resume", "1", "--workspace", str(ws), "--json", "--max-steps", "14"]) == 0
    assert events(capsys)[0]["start_step"] == FIRST_STEPS


@pytest.mark.parametrize("ref", ["99999999999999999999", "9" * 5000, "ab\ncd\x00"])
def test_a_run_reference_that_names_no_run_is_said_in_one_short_line(tmp_path, capsys, ref):
    from engine.cli import main

    assert main(["resume", ref, "--workspace", str(tmp_path / "ws")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("torchwork resume: no run ") and len(err) < 300
    assert err.count("\n") == 1 and "Traceback" not in err
