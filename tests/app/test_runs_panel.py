"""The Runs dock: the table (differing hyperparameters, numeric sort), filters, the context
menu (rename, tags, notes, trash with confirmation), live updates from another connection,
Compare, and the run actions, also through the main window's own entry points."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QItemSelectionModel, QSettings, Qt

from app.panels.runs_panel import RunActions, RunsPanel
from engine.workspace import Workspace


def _make(ws, tiny, name, status="completed", best=None, **overrides):
    run = ws.create_run(tiny(**overrides), name)
    ws.mark_running(run.id)
    if status != "running":
        ws.finish_run(run.id, status, best_val=best, best_metric="val_accuracy",
                      wall_s=12.0, steps=60)
    return run.id


@pytest.fixture
def workspace(tmp_path, tiny_config):
    folder = tmp_path / "ws"
    with Workspace(folder) as ws:
        ids = [_make(ws, tiny_config, "alpha", best=0.5, **{"optim.lr": 0.001}),
               _make(ws, tiny_config, "beta", "failed", best=1e-05, **{"optim.lr": 0.05}),
               _make(ws, tiny_config, "gamma", best=0.02,
                     **{"optim.lr": 0.001, "model.hidden": [32, 16]})]
        ws.set_tags(ids[0], ["baseline"])
        ws.update_run(ids[1], study="tpe", trial=3)
        ws.update_run(ids[2], run_group="cv-0003")
    return folder, ids


class Recorder:
    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return lambda run_id: self.calls.append((name, run_id))


@pytest.fixture
def panel(qtbot, workspace):
    folder, _ = workspace
    recorder = Recorder()
    actions = RunActions(open=recorder.open, resume=recorder.resume, export=recorder.export,
                         evaluate=recorder.evaluate)
    view = RunsPanel(folder, actions)
    view.recorder = recorder
    view.answers = []
    view.confirm = lambda title, text: view.answers.pop(0)
    qtbot.addWidget(view)
    view.resize(1200, 500)
    view.show()
    qtbot.waitUntil(lambda: view.model.rowCount() == 3 and view.model.complete)
    yield view
    view.close_reader()


def shown(view, column="name"):
    col = view.model.column_of(column)
    return [view.proxy.index(r, col).data() for r in range(view.proxy.rowCount())]


def select(view, *names):
    selection = view.table.selectionModel()
    selection.clearSelection()
    for row in range(view.proxy.rowCount()):
        if view.proxy.index(row, view.model.column_of("name")).data() in names:
            selection.select(view.proxy.index(row, 0),
                             QItemSelectionModel.Select | QItemSelectionModel.Rows)


def menu_action(view, text):
    return next(a for a in view.context_menu().actions() if a.text() == text)


def test_the_table_shows_differing_hyperparameters_and_sorts_numbers_as_numbers(panel):
    headers = panel.model.headers
    assert "model.hidden" in headers and "optim.lr" in headers
    assert "optim.name" not in headers  # the same in every run
    assert shown(panel) == ["gamma", "beta", "alpha"]  # newest first
    assert shown(panel, "hp:model.hidden") == ["[32, 16]", "[16]", "[16]"]
    header = panel.table.horizontalHeader()
    header.setSortIndicator(panel.model.column_of("best"), Qt.AscendingOrder)
    assert shown(panel, "best") == ["1e-05", "0.02", "0.5"]  # as text "0.02" < "0.5" < "1e-05"
    header.setSortIndicator(panel.model.column_of("best"), Qt.DescendingOrder)
    assert shown(panel) == ["alpha", "gamma", "beta"]


def test_search_and_filters(panel, qtbot):
    panel.search.setText("ALP")
    qtbot.waitUntil(lambda: shown(panel) == ["alpha"])
    panel.clear_filters()
    panel.status_filter.setCurrentText("failed")
    assert shown(panel) == ["beta"]
    panel.clear_filters()
    panel.tag_filter.setCurrentText("baseline")
    assert shown(panel) == ["alpha"]
    panel.clear_filters()
    panel.study_filter.setCurrentText("tpe")
    assert shown(panel) == ["beta"]
    panel.clear_filters()
    panel.group_filter.setCurrentText("cv-0003")
    assert shown(panel) == ["gamma"]
    panel.clear_filters()
    assert len(shown(panel)) == 3 and panel.count.text() == "3 of 3 runs shown"


def test_rename_tag_note_and_trash_from_the_context_menu(panel, qtbot, workspace):
    folder, (a, b, c) = workspace
    select(panel, "alpha")
    panel.ask_text = lambda title, label, text, multiline=False: "alpha-2"
    menu_action(panel, "Rename…").trigger()
    qtbot.waitUntil(lambda: "alpha-2" in shown(panel))
    select(panel, "alpha-2")
    panel.ask_text = lambda title, label, text, multiline=False: text + ", wide"
    menu_action(panel, "Tags…").trigger()
    qtbot.waitUntil(lambda: "baseline, wide" in shown(panel, "tags"))
    panel.ask_text = lambda title, label, text, multiline=False: "lr too low\nretry"
    menu_action(panel, "Notes…").trigger()
    qtbot.waitUntil(lambda: "lr too low" in shown(panel, "notes"))
    panel.search.setText("retry")  # the search reads the notes too
    qtbot.waitUntil(lambda: shown(panel) == ["alpha-2"])
    panel.clear_filters()

    select(panel, "beta")
    panel.answers = [False]  # the confirmation is declined: nothing moves
    menu_action(panel, "Move to trash…").trigger()
    with Workspace(folder) as ws:
        assert len(ws.list_runs()) == 3
    panel.answers = [True]
    menu_action(panel, "Move to trash…").trigger()
    qtbot.waitUntil(lambda: "beta" not in shown(panel))
    panel.trash_box.setChecked(True)
    assert shown(panel) == ["beta"] and panel.count.text() == "1 of 3 runs in the trash"
    select(panel, "beta")
    panel.answers = [True]
    menu_action(panel, "Empty trash…").trigger()
    qtbot.waitUntil(lambda: panel.model.rowCount() == 2)
    with Workspace(folder) as ws:
        assert [r.id for r in ws.list_runs(include_trashed=True)] == [c, a]
        assert ws.tags_of(a) == ["baseline", "wide"]


def test_a_running_run_cannot_be_trashed_and_says_so(qtbot, tmp_path, tiny_config):
    folder = tmp_path / "ws"
    with Workspace(folder) as ws:
        _make(ws, tiny_config, "live", "running")
    view = RunsPanel(folder)
    qtbot.addWidget(view)
    qtbot.waitUntil(lambda: view.model.rowCount() == 1)
    select(view, "live")
    view.confirm = lambda title, text: True
    menu_action(view, "Move to trash…").trigger()
    assert "still running" in view.messages.text.text()
    view.close_reader()


def test_runs_written_by_another_connection_appear_and_update_live(panel, qtbot, workspace,
                                                                   tiny_config):
    folder, (a, _, _) = workspace
    with Workspace(folder) as ws:  # as a `torchwork run` in a terminal would
        new = _make(ws, tiny_config, "from-terminal", "running", **{"optim.lr": 0.2})
    qtbot.waitUntil(lambda: "from-terminal" in shown(panel), timeout=5000)
    assert shown(panel, "status")[0] == "running"
    with Workspace(folder) as ws:
        ws.finish_run(new, "completed", best_val=0.97, best_metric="val_accuracy")
    qtbot.waitUntil(lambda: shown(panel, "status")[0] == "completed", timeout=5000)
    assert shown(panel, "hp:optim.lr")[0] == "0.2"


def test_compare_emits_the_selected_ids_and_shows_only_keys_that_differ(panel, qtbot,
                                                                         workspace):
    _, (a, b, c) = workspace
    select(panel, "alpha", "gamma")
    with qtbot.waitSignal(panel.overlayRequested) as signal:
        panel.compare_button.click()
    assert sorted(signal.args[0]) == [a, c]
    keys = [panel.diff.verticalHeaderItem(i).text() for i in range(panel.diff.rowCount())]
    assert keys == ["model.hidden", "best metric"]  # optim.lr is the same in these two
    assert panel.diff.item(0, 0).text() == "[32, 16]"


def test_open_resume_export_evaluate_act_on_the_selected_run(panel, workspace):
    _, (a, b, c) = workspace
    select(panel, "alpha")
    assert not panel.resume_button.isEnabled()  # completed: nothing to resume
    panel.open_button.click()
    panel.export_button.click()
    panel.evaluate_button.click()
    select(panel, "beta")
    assert panel.resume_button.isEnabled()
    panel.resume_button.click()
    assert panel.recorder.calls == [("open", a), ("export", a), ("evaluate", a),
                                    ("resume", b)]
    select(panel, "alpha", "beta")
    assert not panel.open_button.isEnabled() and panel.compare_button.isEnabled()


def test_the_window_opens_a_run_from_the_runs_dock(qtbot, tmp_path, workspace):
    from app.main_window import MainWindow

    folder, (a, _, _) = workspace
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)
    window = MainWindow(workspace_dir=folder, settings=settings)
    qtbot.addWidget(window)
    window.show()
    panel = window.runs
    assert window.runs_dock.widget() is panel
    qtbot.waitUntil(lambda: panel.model.rowCount() == 3)
    select(panel, "alpha")
    panel.open_button.click()
    assert f"run {a} alpha" in window.windowTitle()
    assert window.export_actions.current_run == a
    select(panel, "gamma")
    panel.export_actions_seen = []
    window.export_actions.export_model_dialog = lambda: panel.export_actions_seen.append(
        window.export_actions.current_run)
    panel.export_button.click()
    assert panel.export_actions_seen == [workspace[1][2]]
    calls = []
    window.evaluation.evaluate = lambda: calls.append(("evaluate", window.evaluation.run_id))
    window.bridge.resume_run = lambda run_id: calls.append(("resume", run_id))
    panel.evaluate_button.click()
    select(panel, "beta")  # failed: resumable
    panel.resume_button.click()
    b = workspace[1][1]
    assert calls == [("evaluate", workspace[1][2]), ("resume", b)]
    assert f"run {b} beta" in window.windowTitle()  # resumed from its own config and curves
    c = workspace[1][2]
    select(panel, "alpha", "gamma")
    panel.compare_button.click()  # their curves together on the training plots
    assert sorted(window.plots.overlay.names) == sorted([f"{a} alpha", f"{c} gamma"])


def test_no_workspace_yet_is_an_empty_table_and_none_is_created(qtbot, tmp_path):
    view = RunsPanel(tmp_path / "none")
    qtbot.addWidget(view)
    qtbot.waitUntil(lambda: view.count.text() == "0 of 0 runs shown")
    assert not (tmp_path / "none").exists()
    view.close_reader()


def _before_schema_7(folder):
    """The runs as an older Torchwork created them: no departures stored with them."""
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(folder / "workspace.sqlite")) as conn, conn:
        conn.execute("UPDATE runs SET config_departures = NULL")


def test_the_reader_shows_cached_configs_at_once_and_then_what_is_stored(workspace,
                                                                         monkeypatch):
    from app.panels import runs_data
    from engine.workspace import config_columns

    folder, (a, b, c) = workspace
    _before_schema_7(folder)
    first = []
    runs_data.RunsReader(folder).read(first.append)  # no cache: one delivery, complete
    assert [s.complete for s in first] == [True]
    with Workspace(folder) as ws:  # as `torchwork resume --set` rewrites a stored config
        ws.update_run(a, config_toml=ws.get_run(a).config_toml.replace("0.001", "0.003"))
    _before_schema_7(folder)
    config_columns._memory.clear()
    seen = []
    reader = runs_data.RunsReader(folder)
    reader.read(seen.append)
    lr = seen[0].hp_keys.index("optim.lr")
    assert seen[0].complete and seen[0].rows[-1].hp[lr] == 0.001  # the cache, at once
    assert seen[-1].rows[-1].hp[lr] == 0.003 and len(seen) == 2  # then checked and fixed

    # a first open of many runs nobody has parsed yet: rows first, then their configs
    monkeypatch.setattr(runs_data, "PARSE_LATER", 1)
    (folder / config_columns.CACHE_FILE).unlink()
    config_columns._memory.clear()
    seen.clear()
    runs_data.RunsReader(folder).read(seen.append)
    assert [s.complete for s in seen] == [False, True]
    assert len(seen[0].rows) == 3 and seen[0].hp_keys == [] and seen[1].hp_keys


@pytest.fixture
def no_parsing(monkeypatch):
    """No config TOML may be parsed, and no cache file or memory helps."""
    from engine.workspace import config_columns
    from engine.workspace.config_columns import ConfigColumns

    def parse(*args):
        raise AssertionError("a stored config was parsed")

    config_columns._memory.clear()
    monkeypatch.setattr(ConfigColumns, "_departures", parse)
    yield
    config_columns._memory.clear()


def test_a_cold_open_of_runs_created_at_schema_7_is_complete_at_once(workspace, monkeypatch,
                                                                      no_parsing):
    from app.panels import runs_data
    from engine.workspace import config_columns

    folder, (a, b, c) = workspace
    monkeypatch.setattr(runs_data, "PARSE_LATER", 1)  # as if thousands of runs
    assert not (folder / config_columns.CACHE_FILE).exists()
    seen = []
    runs_data.RunsReader(folder).read(seen.append)
    assert [s.complete for s in seen] == [True]  # one delivery, nothing parsed
    rows = {r.name: r for r in seen[0].rows}
    assert seen[0].hp_keys == ["model.hidden", "optim.lr"]
    assert rows["gamma"].hp == ((32, 16), 0.001) and rows["beta"].hp[1] == 0.05
    assert rows["alpha"].dataset == "moons" and rows["alpha"].model == "mlp"

    with Workspace(folder) as ws:  # a resume that changes the config: its departures follow
        ws.update_run(a, config_toml=ws.get_run(a).config_toml.replace("0.001", "0.003"))
    seen.clear()
    runs_data.RunsReader(folder).read(seen.append)
    assert len(seen) == 1 and {r.name: r.hp for r in seen[0].rows}["alpha"][1] == 0.003


def test_the_dock_shows_the_hyperparameter_columns_at_once_on_a_cold_open(qtbot, workspace,
                                                                          monkeypatch,
                                                                          no_parsing):
    from app.panels import runs_data
    from app.panels.runs_model import RunsModel

    folder, _ = workspace
    monkeypatch.setattr(runs_data, "PARSE_LATER", 1)
    shows = []  # each snapshot the table is given: complete, and its rows
    keep = RunsModel.set_snapshot

    def set_snapshot(model, snap):
        shows.append((snap.complete, len(snap.rows)))
        keep(model, snap)

    monkeypatch.setattr(RunsModel, "set_snapshot", set_snapshot)
    view = RunsPanel(folder)
    qtbot.addWidget(view)
    view.show()
    qtbot.waitUntil(lambda: view.model.rowCount() == 3)
    assert shows[0] == (True, 3)  # the first rows shown already carry their columns
    assert "—" not in shown(view, "model") and shown(view, "model") == ["mlp"] * 3
    headers = [view.model.headerData(i, Qt.Horizontal) for i in range(view.model.columnCount())]
    assert {"optim.lr", "model.hidden"} <= set(headers), headers
    view.close_reader()


def test_behind_another_tab_changes_wait_until_the_dock_shows(panel, qtbot, workspace,
                                                              tiny_config):
    folder, _ = workspace
    panel.set_shown(False)
    with Workspace(folder) as ws:
        _make(ws, tiny_config, "while-hidden")
    qtbot.wait(2500)  # two polls: noted, not read
    assert "while-hidden" not in shown(panel)
    panel.set_shown(True)
    qtbot.waitUntil(lambda: "while-hidden" in shown(panel))


def test_a_sorted_table_stays_sorted_as_runs_change_and_delete_asks_first(panel, qtbot,
                                                                          workspace,
                                                                          tiny_config):
    folder, (a, b, c) = workspace
    panel.table.horizontalHeader().setSortIndicator(panel.model.column_of("best"),
                                                    Qt.DescendingOrder)
    assert shown(panel) == ["alpha", "gamma", "beta"]
    with Workspace(folder) as ws:
        ws.update_run(b, best_val=0.9)  # beta now leads
        _make(ws, tiny_config, "delta", best=0.1)
    qtbot.waitUntil(lambda: shown(panel) == ["beta", "alpha", "delta", "gamma"], timeout=5000)
    select(panel, "gamma")
    panel.table.setFocus()
    panel.answers = [True]
    qtbot.keyClick(panel.table, Qt.Key_Delete)
    assert panel.answers == []  # asked
    qtbot.waitUntil(lambda: "gamma" not in shown(panel))


def test_the_energy_column_shows_each_runs_joules_or_why_there_are_none(panel, qtbot,
                                                                        workspace):
    folder, (a, b, _) = workspace
    with Workspace(folder) as ws:  # as the run's writer stores them (engine.monitor.energy)
        ws.update_run(a, energy_j=1234.0, energy_per_epoch_j=411.5,
                      energy_per_1k_samples_j=2.06, energy_source="rapl")
        ws.update_run(b, energy_note="not available: RAPL counters are not readable by this "
                                     "user (/sys/class/powercap/intel-rapl:0/energy_uj: "
                                     "permission denied)")
    qtbot.waitUntil(lambda: shown(panel, "energy_j") == ["", "n/a", "1234"], timeout=5000)
    col = panel.model.column_of("energy_j")
    assert panel.model.headers[col] == "Energy (J)"
    tips = [panel.proxy.index(r, col).data(Qt.ToolTipRole) for r in range(3)]
    assert tips[0] is None
    assert tips[1].startswith("not available: RAPL counters are not readable by this user")
    assert tips[2] == ("1234 J in all\n411.5 J per epoch\n2.06 J per 1,000 samples\n"
                       "measured by the CPU's RAPL counters")
    panel.table.horizontalHeader().setSortIndicator(col, Qt.DescendingOrder)
    assert shown(panel)[0] == "alpha"  # numbers sort as numbers, runs without one last
