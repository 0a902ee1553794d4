"""The Runs dock on a workspace of 10,000 runs: time to open the table and to filter it.

Generates a workspace of --runs runs by inserting rows directly (a search's
trials: lr, batch size, hidden sizes, dropout and optimizer vary; 10 epochs of
val_accuracy/val_loss each; a tenth tagged, a fifth in studies), twice: as
created at schema 7 (each run's config departures stored with it, as
``Workspace.create_run`` stores them) and as created before (none stored), then
measures, each --rounds times in this process:

- open, cold, schema 7: a Runs panel with no config cache on the runs created at
  schema 7: until the rows and their hyperparameter columns show;
- open, cold, before schema 7: no config cache (every stored TOML parsed once):
  until the rows show, and until the hyperparameter columns do;
- open, warm: a new panel (a new reader and model) once the cache file exists:
  until the model is filled and the table's first paint is done;
- filter: typing a search text, choosing a status, a tag, clearing: until the
  proxy has re-filtered and the table has painted;
- sort: a numeric column (best metric) by header click;
- live: one more run committed by another connection, until it shows.

    python bench/runs_table.py [--runs 10000] [--rounds 3] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def generate(folder: Path, runs: int, seed: int = 0, stored: bool = True) -> None:
    """A workspace of ``runs`` finished runs with varied configs, metrics and tags;
    ``stored``: with each run's config departures, as created at schema 7 (else as
    created before: none)."""
    from engine.config import RunConfig
    from engine.workspace import Workspace
    from engine.workspace.config_columns import defaults_row, stored_departures

    rng = random.Random(seed)
    Workspace(folder).close()  # the schema
    rows, metrics, tags = [], [], []
    for i in range(1, runs + 1):
        cfg = RunConfig()
        cfg.set("optim.lr", round(10 ** rng.uniform(-5, -1), 6))
        cfg.set("data.batch_size", rng.choice([32, 64, 128, 256]))
        cfg.set("model.hidden", rng.choice([[64], [128], [128, 64], [256, 128]]))
        cfg.set("model.dropout", rng.choice([0.0, 0.1, 0.2, 0.3]))
        cfg.set("optim.name", rng.choice(["adamw", "sgd"]))
        status = rng.choices(["completed", "failed", "stopped", "pruned"], [80, 5, 5, 10])[0]
        acc = rng.uniform(0.5, 0.995)
        wall = rng.uniform(5, 120)
        study = f"study-{i % 5}" if i % 5 == 0 else None
        toml = cfg.to_toml()
        rows.append((f"digits-cnn-{i}", f"runs/{i:05d}-digits-cnn", status,
                     f"2026-12-{1 + i % 28:02d}T10:{i % 60:02d}:00+00:00", toml,
                     stored_departures(toml) if stored else None, 500,
                     10, wall, acc, "val_accuracy", study, i if study else None,
                     "wider MLP" if i % 97 == 0 else None))
        for epoch in range(10):
            metrics.append((i, epoch, 50 * epoch, "val_accuracy", acc * (epoch + 1) / 10))
            metrics.append((i, epoch, 50 * epoch, "val_loss", 2.0 / (epoch + 1)))
        if i % 10 == 0:
            tags.append((i, rng.choice(["baseline", "wide", "keep"])))
    conn = sqlite3.connect(folder / "workspace.sqlite")
    with conn:
        if stored:
            conn.execute("INSERT INTO config_defaults VALUES (?, ?)", defaults_row())
        conn.executemany("INSERT INTO runs (id, name, dir, status, created_at, config_toml, "
                         "config_departures, steps, epochs_completed, wall_s, best_val, "
                         "best_metric, study, trial, notes) VALUES "
                         "(NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.executemany("INSERT INTO epoch_metrics VALUES (?, ?, ?, ?, ?)", metrics)
        conn.executemany("INSERT INTO run_tags VALUES (?, ?)", tags)
    conn.close()


def _median(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.0f} ms"


class Clock:
    """Measures a panel until a condition holds and the table has painted."""

    def __init__(self, app):
        self.app = app

    def until(self, done, timeout: float = 120.0) -> float:
        start = time.perf_counter()
        while not done():
            self.app.processEvents()
            if time.perf_counter() - start > timeout:
                raise TimeoutError("the panel did not get there")
            time.sleep(0.001)
        return time.perf_counter() - start

    def painted(self, view) -> float:
        """Process events until the table's viewport has painted a frame."""
        start = time.perf_counter()
        view.viewport().repaint()
        self.app.processEvents()
        return time.perf_counter() - start


def _open(folder: Path, clock: Clock, complete: bool):
    from app.panels.runs_panel import RunsPanel

    panel = RunsPanel(folder)
    panel.resize(1400, 700)
    panel.show()
    clock.until(lambda: panel.model.rowCount() > 0 and (panel.model.complete or not complete))
    clock.painted(panel.table)
    return panel


def one_round(folder: Path, folder_7: Path, clock: Clock) -> dict[str, float]:
    """Each measurement of one round, in seconds: ``folder_7`` holds the runs as created at
    schema 7, ``folder`` as created before."""
    from PySide6.QtCore import Qt

    from engine.workspace import config_columns

    out: dict[str, float] = {}
    for each in (folder, folder_7):
        shutil.rmtree(each / "cache", ignore_errors=True)
    config_columns._memory.clear()
    start = time.perf_counter()
    panel = _open(folder_7, clock, complete=True)
    out["cold_7"] = time.perf_counter() - start
    if (folder_7 / "cache").exists():
        raise RuntimeError("a schema 7 open parsed configs (it wrote the config cache)")
    panel.close_reader()
    panel.deleteLater()
    clock.app.processEvents()

    start = time.perf_counter()
    panel = _open(folder, clock, complete=False)
    out["cold_rows"] = time.perf_counter() - start
    clock.until(lambda: panel.model.complete)
    clock.painted(panel.table)
    out["cold_hp"] = time.perf_counter() - start
    panel.close_reader()
    panel.deleteLater()

    config_columns._memory.clear()  # as a new window: only the cache file helps
    start = time.perf_counter()
    panel = _open(folder, clock, complete=True)
    out["warm"] = time.perf_counter() - start
    for name, act in (("search", lambda: panel.search.setText("digits-cnn-12")),
                      ("status", lambda: panel.status_filter.setCurrentText("failed")),
                      ("tag", lambda: panel.tag_filter.setCurrentText("baseline")),
                      ("clear", panel.clear_filters)):
        start = time.perf_counter()
        act()
        panel.apply_filters()  # the search box's debounce is not what is measured
        clock.painted(panel.table)
        out[name] = time.perf_counter() - start
    start = time.perf_counter()
    panel.table.horizontalHeader().setSortIndicator(panel.model.column_of("best"),
                                                    Qt.DescendingOrder)
    clock.painted(panel.table)
    out["sort"] = time.perf_counter() - start

    before = panel.model.rowCount()
    conn = sqlite3.connect(folder / "workspace.sqlite")
    with conn:
        conn.execute("INSERT INTO runs (name, dir, status, created_at, config_toml) "
                     "SELECT 'live-one', 'runs/live-' || (MAX(id) + 1), 'running', "
                     "created_at, config_toml FROM runs")
    conn.close()
    start = time.perf_counter()
    clock.until(lambda: panel.model.rowCount() == before + 1)
    clock.painted(panel.table)
    out["live"] = time.perf_counter() - start
    panel.close_reader()
    panel.deleteLater()
    clock.app.processEvents()
    return out


LABELS = (("cold_7", "open, no config cache, runs created at schema 7: rows and "
                     "hyperparameter columns shown + first paint (bar <= 1 s)"),
          ("cold_rows", "open, no config cache, runs created before schema 7: rows shown"),
          ("cold_hp", "open, no config cache, runs created before schema 7: hyperparameter "
                      "columns shown"),
          ("warm", "open, cache warm: model filled + first paint (bar <= 1 s)"),
          ("search", "filter: search text"), ("status", "filter: status"),
          ("tag", "filter: tag"), ("clear", "filter: clear all"),
          ("sort", "sort: best metric, descending"),
          ("live", "live: a run committed by another connection shows (poll 1 s)"))


def measure(folder: Path, folder_7: Path, rounds: int) -> list[tuple[str, str]]:
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    clock = Clock(app)
    panel = _open(folder_7, clock, complete=True)  # not timed: this process's first panel
    panel.close_reader()  # (imports, Qt's first widgets) is not what a round measures
    panel.deleteLater()
    results = [one_round(folder, folder_7, clock) for _ in range(rounds)]
    return [(label, _median([r[key] for r in results])) for key, label in LABELS]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, help="where to generate (default: a temp folder)")
    args = parser.parse_args(argv)
    tmp = None
    if args.dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="runs-table-")
        args.dir = Path(tmp.name)
    folder, folder_7 = args.dir / "ws", args.dir / "ws-7"
    for each in (folder, folder_7):
        shutil.rmtree(each, ignore_errors=True)
    start = time.perf_counter()
    generate(folder, args.runs, stored=False)
    generate(folder_7, args.runs)
    print(f"generated {args.runs:,} runs twice in {time.perf_counter() - start:.1f} s")
    print(f"| {args.runs:,} runs, median of {args.rounds} | time |")
    print("|---|---|")
    for label, value in measure(folder, folder_7, args.rounds):
        print(f"| {label} | {value} |")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
