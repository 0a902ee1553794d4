"""The Search dock: the space form and its [search] TOML, Start/Stop of `torchwork search`
as a process, and the views of a study read with Optuna."""

from __future__ import annotations

import json
import math
import os
import threading

import numpy as np
import pytest
import tomllib

from app.panels import search_study
from app.panels.search_panel import SearchPanel
from app.panels.search_spec import Param, SearchSpec
from app.widgets.live_plot import DARK, LIGHT
from app.widgets.message_bar import MessageLog
from engine.config import RunConfig

from .search_fixtures import fake_launcher, make_study

SPEC = SearchSpec(objective="val_accuracy", direction="maximize", sampler="tpe",
                  pruner="median", n_trials=40, timeout=600.0, workers=2, seed=7,
                  study="digits-sweep",
                  space={"optim.lr": Param("float", 1e-4, 1e-1, log=True),
                         "data.batch_size": Param("choice", choices=[32, 64, 128]),
                         "model.hidden": Param("choice", choices=[[64], [128, 64]]),
                         "train.epochs": Param("int", 2, 10, step=2)})


@pytest.fixture
def panel(qtbot, tmp_path, tiny_config):
    cfg = tiny_config()
    log = MessageLog()
    widget = SearchPanel(tmp_path / "ws", cfg.copy, log=log)
    widget.log = log
    qtbot.addWidget(widget)
    yield widget
    widget.shutdown(wait_ms=5000)


def errors(panel) -> list[str]:
    return [m.text for m in panel.log.messages if m.level == "error"]


def test_the_space_form_round_trips_through_a_search_toml(panel, tmp_path, qtbot):
    panel.form.set_spec(SPEC)
    assert panel.form.spec() == SPEC
    path = tmp_path / "search.toml"
    assert panel.save_file(str(path))
    data = tomllib.loads(path.read_text())
    assert data["search"]["space"]["optim.lr"] == {"low": 1e-4, "high": 1e-1, "log": True}
    assert data["search"]["space"]["model.hidden"] == {"choices": [[64], [128, 64]]}
    assert data["search"]["space"]["train.epochs"] == {"low": 2, "high": 10, "step": 2}
    assert (data["search"]["n_trials"], data["search"]["workers"]) == (40, 2)
    # the rest of the file is the form's configuration, as Save writes it
    rest = RunConfig.from_dict({k: v for k, v in data.items() if k != "search"})
    assert rest.model.hidden == [16] and rest.data.dataset == "moons"
    other = SearchPanel(tmp_path / "ws", RunConfig)
    qtbot.addWidget(other)
    assert other.load_file(str(path))
    assert other.form.spec() == SPEC


def test_picking_a_key_fills_its_row_from_the_configuration(panel):
    row = panel.form.add_row()
    keys = panel.form.cell(row, 0)
    keys.setCurrentText("optim.lr")
    keys.textActivated.emit("optim.lr")  # as when the user picks it from the list
    param = panel.form.spec().space["optim.lr"]
    assert (param.kind, param.log) == ("float", True)
    assert param.low == pytest.approx(0.001) and param.high == pytest.approx(0.1)  # lr 0.01


@pytest.mark.parametrize("key, param, expected", [
    ("optim.lr", Param("float", 0.0, 0.1, log=True),
     'search.space."optim.lr": low: optim.lr must be > 0'),
    ("model.dropout", Param("float", 0.0, 0.5, log=True),
     'search.space."model.dropout": log = true needs low > 0'),
    ("optim.lrr", Param("float", 0.1, 0.2), "unknown run option 'optim.lrr'"),
    ("data.batch_size", Param("choice", choices=[0, 64]), "data.batch_size must be >= 1"),
    ("train.epochs", Param("int", 9, 3), "low (9) must be < high (3)"),
])
def test_a_bad_space_is_refused_naming_the_key(panel, tmp_path, key, param, expected):
    panel.launcher = fake_launcher(tmp_path)
    panel.form.set_spec(SearchSpec(space={key: param}))
    panel.start()
    assert not panel.running
    assert expected in errors(panel)[-1] and errors(panel)[-1].startswith("Cannot start")


def test_an_unreadable_bound_is_refused_naming_the_key(panel):
    row = panel.form.add_row("optim.lr")
    panel.form.cell(row, 2).setText("1e-4x")
    panel.start()
    assert errors(panel)[-1] == ("Cannot start the search: search.space.\"optim.lr\": low "
                                 "'1e-4x' is not a number")


def test_start_runs_torchwork_search_and_follows_its_json_lines(panel, tmp_path, qtbot,
                                                                monkeypatch):
    storage = f"sqlite:///{tmp_path / 'ws' / 'search.sqlite'}"
    (tmp_path / "ws").mkdir()
    make_study(storage, "digits-sweep")
    monkeypatch.setenv("FAKE_OUT", str(tmp_path))
    monkeypatch.setenv("FAKE_MODE", "finish")
    panel.launcher = fake_launcher(tmp_path)
    panel.form.set_spec(SPEC)
    with qtbot.waitSignal(panel.studyShown, timeout=30000):
        with qtbot.waitSignal(panel.search.finished, timeout=20000) as done:
            panel.start()
            assert panel.running and not panel.start_button.isEnabled()
            assert not panel.form.objective.isEnabled()  # fixed while it runs
    assert done.args == [0, ""]
    argv = json.loads((tmp_path / "argv.json").read_text())
    assert argv[0] == "search" and argv[1].endswith("digits-sweep.toml")
    assert argv[2:] == ["--study", "digits-sweep", "--storage", storage,
                        "--workspace", str(tmp_path / "ws"), "--json"]
    given = tomllib.loads((tmp_path / "config.toml").read_text())
    assert given["search"]["space"]["optim.lr"]["low"] == 1e-4
    assert given["data"]["dataset"] == "moons"
    assert panel.progress.text() == "Search finished: best trial 1 = 0.95 (run 11)."
    assert panel.finished_trials == 3 and not errors(panel)
    assert panel.start_button.isEnabled() and panel.form.objective.isEnabled()
    assert panel.trials.rowCount() == 5  # the study was read after the trials


def test_a_failed_search_leaves_its_message_in_the_bar(panel, tmp_path, qtbot, monkeypatch):
    monkeypatch.setenv("FAKE_OUT", str(tmp_path))
    monkeypatch.setenv("FAKE_MODE", "fail")
    panel.launcher = fake_launcher(tmp_path)
    panel.form.set_spec(SPEC)
    with qtbot.waitSignal(panel.search.finished, timeout=20000):
        panel.start()
    assert errors(panel)[-1] == ('The search failed: torchwork: search.space."optim.lr": '
                                 'low must be below high')
    assert panel.start_button.isEnabled()


def test_stop_ends_the_search_as_ctrl_c_would(panel, tmp_path, qtbot, monkeypatch):
    monkeypatch.setenv("FAKE_OUT", str(tmp_path))
    monkeypatch.setenv("FAKE_MODE", "wait")
    panel.launcher = fake_launcher(tmp_path)
    panel.form.set_spec(SPEC)
    with qtbot.waitSignal(panel.search.event, timeout=20000):
        panel.start()
    with qtbot.waitSignal(panel.search.finished, timeout=20000) as done:
        panel.stop_button.click()
        assert not panel.stop_button.isEnabled()
    assert (tmp_path / "interrupted").read_text() == "yes"  # it got KeyboardInterrupt
    assert done.args == [130, ""] and not errors(panel)
    assert panel.progress.text() == "Search stopped after 1 trials."


@pytest.fixture
def shown(panel, tmp_path, qtbot, monkeypatch):
    """The panel showing the fixture study, and the threads its reads ran on."""
    storage = f"sqlite:///{tmp_path / 'study.sqlite'}"
    make_study(storage)
    threads = []
    real = search_study.read_study

    def read(*args, **kwargs):
        threads.append(threading.current_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(search_study, "read_study", read)
    with qtbot.waitSignal(panel.studyShown, timeout=30000):
        panel.open_study(storage, "digits-cnn")
    panel.threads = threads
    return panel


def column(table, name: str) -> list[str]:
    headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    c = headers.index(name)
    return [table.item(r, c).text() for r in range(table.rowCount())]


def test_the_trials_table_lists_every_trial(shown):
    assert shown.threads and threading.main_thread() not in shown.threads  # off the GUI
    table = shown.trials
    assert column(table, "Trial") == ["0", "1", "2", "3", "4"]
    assert column(table, "State") == ["COMPLETE", "COMPLETE", "PRUNED", "FAIL", "COMPLETE"]
    assert column(table, "Value") == ["0.9", "0.95", "", "", "0.93"]
    assert column(table, "Run") == ["10", "11", "12", "13", "14"]
    assert column(table, "Duration (s)") == ["30", "31", "32", "33", "34"]
    assert column(table, "optim.lr") == ["0.01", "0.001", "0.05", "0.0005", "0.02"]
    assert column(table, "optim.name") == ["adam", "sgd", "adam", "sgd", "adam"]
    assert table.item(1, 0).font().bold() and not table.item(0, 0).font().bold()  # the best
    table.sortItems(2)  # by value, as numbers
    assert column(table, "Trial")[:3] == ["0", "4", "1"]  # the failed and pruned after


def test_history_shows_each_value_and_the_best_so_far(shown):
    x, y = shown.history.points.getData()
    assert list(x) == [0, 1, 4] and list(y) == [0.9, 0.95, 0.93]
    assert list(shown.history.best.getData()[1]) == [0.9, 0.95, 0.95]


def test_parallel_coordinates_place_each_trial_on_every_axis(shown):
    view = shown.parallel
    assert view.axes == ["optim.lr", "train.epochs", "optim.name", "objective"]
    rows = view.rows  # trials 0, 1, 4 in [0, 1]; lr on a log scale
    lr = np.log10([0.01, 0.001, 0.02])
    assert rows[:, 0] == pytest.approx((lr - lr.min()) / (lr.max() - lr.min()))
    assert rows[:, 1] == pytest.approx([0, 0.5, 1])
    assert list(rows[:, 2]) == [0, 1, 0]
    assert rows[:, 3] == pytest.approx([0, 1, 0.6])
    drawn = sum(np.isnan(line.getData()[1]).sum() for line in view.lines if line.getData()[1]
                is not None)
    assert drawn == 3  # one line (NaN-terminated) per completed trial


def test_importances_come_from_optuna(shown):
    import optuna

    study = optuna.load_study(study_name="digits-cnn", storage=shown.study[0])
    expected = optuna.importance.get_param_importances(study)
    assert shown.importance.values == pytest.approx(dict(expected))
    assert list(shown.importance.values) == sorted(expected, key=lambda k: -expected[k])
    assert sum(shown.importance.values.values()) == pytest.approx(1)


def test_slice_plots_the_objective_against_the_chosen_parameter(shown):
    view = shown.slice
    assert [view.param.itemText(i) for i in range(view.param.count())] == \
        ["optim.lr", "train.epochs", "optim.name"]
    view.param.setCurrentText("optim.lr")
    x, y = view.points.getData()
    assert view.plot.getPlotItem().ctrl.logXCheck.isChecked()  # a log range on a log axis
    assert list(10 ** x) == pytest.approx([0.01, 0.001, 0.02]) and list(y) == [0.9, 0.95, 0.93]
    view.param.setCurrentText("optim.name")
    x, y = view.points.getData()
    assert list(x) == [0, 1, 0] and list(y) == [0.9, 0.95, 0.93]


def test_intermediate_values_mark_where_trials_were_pruned(shown):
    view = shown.intermediate
    x, y = view.complete.getData()
    assert int(np.isnan(x).sum()) == 3  # three completed curves
    assert list(x[:4]) == [0, 1, 2, 3] and y[1] == pytest.approx(0.6)
    px, py = view.pruned.getData()
    assert list(px[:2]) == [0, 1] and math.isnan(px[2])
    sx, sy = view.stops.getData()
    assert list(sx) == [1] and list(sy) == pytest.approx([0.62])  # trial 2's last epoch


def test_a_missing_study_is_said_in_the_bar(panel, qtbot, tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.sqlite'}"
    make_study(storage)
    panel.open_study(storage, "nope")
    qtbot.waitUntil(lambda: bool(errors(panel)), timeout=30000)
    assert errors(panel)[-1] == f"no study 'nope' in {storage}; it holds digits-cnn"
    panel.open_study(f"sqlite:///{tmp_path / 'none.sqlite'}", "x")
    qtbot.waitUntil(lambda: len(errors(panel)) == 2, timeout=30000)
    assert errors(panel)[-1].startswith(f"no study database at {tmp_path / 'none.sqlite'}")
    assert not (tmp_path / "none.sqlite").exists()


def test_theme_switch_reaches_every_view(shown):
    shown.apply_theme(True)
    for plot in (shown.history, shown.parallel, shown.importance, shown.slice.plot,
                 shown.intermediate):
        assert plot.backgroundBrush().color().name() == DARK["background"]
    assert shown.parallel.labels[0].textItem.defaultTextColor().name() == DARK["foreground"]
    shown.apply_theme(False)
    assert shown.history.backgroundBrush().color().name() == LIGHT["background"]


def test_a_configurations_search_section_is_shown_in_the_form(panel, tiny_config):
    cfg = tiny_config()
    cfg.search = SPEC.to_dict()  # as RunConfig keeps a [search] section read from a file
    panel.adopt(cfg)
    assert panel.form.spec() == SPEC
    panel.form.n_trials.setValue(5)  # the user's edit stays while the section is the same
    panel.adopt(cfg)
    assert panel.form.spec().n_trials == 5


def test_failed_trials_and_workers_are_reported_and_the_search_goes_on(panel):
    panel._on_event({"event": "trial_finished", "number": 3, "state": "FAIL", "value": None,
                     "run_id": 13, "error": "CUDA out of memory at batch size 512"})
    panel._on_event({"event": "worker_error", "error": "worker 2 exited with code -9"})
    warnings = [m.text for m in panel.log.messages if m.level == "warning"]
    assert warnings == ["Trial 3 failed (the search goes on): CUDA out of memory at batch "
                        "size 512", "A search worker failed: worker 2 exited with code -9"]
    assert panel.progress.text() == "Trial 3 FAIL; 1 trials finished."


def test_a_trial_ended_by_stop_is_not_reported_as_a_fault(panel, tmp_path, qtbot, monkeypatch):
    monkeypatch.setenv("FAKE_OUT", str(tmp_path))
    monkeypatch.setenv("FAKE_MODE", "wait")
    panel.launcher = fake_launcher(tmp_path)
    panel.form.set_spec(SPEC)
    with qtbot.waitSignal(panel.search.event, timeout=20000):
        panel.start()
    panel.stop()
    panel._on_event({"event": "trial_finished", "number": 1, "state": "FAIL", "value": None,
                     "run_id": 2, "error": "stopped with the search: `torchwork resume 2` "
                                           "continues its run"})
    assert [(m.level, m.text) for m in panel.log.messages] == [
        ("info", "Trial 1: stopped with the search: `torchwork resume 2` continues its run")]
    qtbot.waitUntil(lambda: not panel.running, timeout=20000)


def test_closing_ends_a_search_that_ignores_ctrl_c(panel, tmp_path, qtbot, monkeypatch):
    monkeypatch.setenv("FAKE_OUT", str(tmp_path))
    monkeypatch.setenv("FAKE_MODE", "stubborn")
    panel.launcher = fake_launcher(tmp_path)
    panel.form.set_spec(SPEC)
    with qtbot.waitSignal(panel.search.event, timeout=20000):
        panel.start()
    pid = panel.search.process.processId()
    panel.shutdown(wait_ms=500)
    assert not panel.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_the_open_study_dialog_lists_the_storages_studies(qtbot, tmp_path):
    from app.panels.search_trials import OpenStudyDialog

    storage = f"sqlite:///{tmp_path / 'study.sqlite'}"
    make_study(storage, "b-study")
    make_study(storage, "a-study")
    dialog = OpenStudyDialog(storage, "")
    qtbot.addWidget(dialog)
    assert [dialog.names.itemText(i) for i in range(dialog.names.count())] == \
        ["a-study", "b-study"]
    dialog.url.setText(f"sqlite:///{tmp_path / 'none.sqlite'}")
    dialog.list_studies()
    assert dialog.names.count() == 0 and not (tmp_path / "none.sqlite").exists()
