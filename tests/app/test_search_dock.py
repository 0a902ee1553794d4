"""The Search dock in the window: a tab beside Training, Train best and Export best act on
the best trial's run, the theme reaches its plots, closing stops a running search."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMenu

from app.main_window import MainWindow
from app.widgets.live_plot import DARK
from engine.config import RunConfig
from engine.workspace import Workspace

from .search_fixtures import fake_launcher, make_study


@pytest.fixture
def window(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)
    win = MainWindow(workspace_dir=tmp_path / "ws", settings=settings)
    win.confirm = lambda title, text: True
    qtbot.addWidget(win)
    win.show()
    return win


@pytest.fixture
def trial_runs(tmp_path, tiny_config):
    """Workspace runs for the fixture study's trials 0 and 1 (1 is the best)."""
    with Workspace(tmp_path / "ws") as ws:
        runs = {i: ws.create_run(tiny_config(**{"optim.lr": lr}), name=f"trial-{i}").id
                for i, lr in ((0, 0.03), (1, 0.0042))}
    storage = f"sqlite:///{tmp_path / 'ws' / 'search.sqlite'}"
    make_study(storage, run_ids=runs)
    return storage, runs


def show_study(qtbot, window, storage):
    with qtbot.waitSignal(window.search.studyShown, timeout=30000):
        window.search.open_study(storage, "digits-cnn")


def test_the_search_dock_is_a_tab_beside_training(window):
    assert window.search_dock.widget() is window.search
    assert window.search_dock in window.tabifiedDockWidgets(window.training_dock)
    view_menu = next(m for m in window.menuBar().findChildren(QMenu) if m.title() == "&View")
    assert window.search_dock.toggleViewAction() in view_menu.actions()


def test_train_best_puts_the_best_trials_configuration_in_the_form(qtbot, window,
                                                                   trial_runs):
    storage, runs = trial_runs
    assert window.config_panel.config().optim.lr != 0.0042
    assert not window.search.train_best_button.isEnabled()  # no study yet
    show_study(qtbot, window, storage)
    assert window.search.train_best_button.isEnabled()
    window.search.train_best_button.click()
    cfg = window.config_panel.config()
    assert cfg.optim.lr == 0.0042 and cfg.data.dataset == "moons"
    assert f"run {runs[1]} trial-1" in window.windowTitle()


def test_export_best_opens_the_export_dialog_on_the_best_run(qtbot, window, trial_runs,
                                                             monkeypatch):
    storage, runs = trial_runs
    show_study(qtbot, window, storage)
    chosen = []
    monkeypatch.setattr(window.export_actions, "export_model_dialog",
                        lambda: chosen.append(window.export_actions.current_run))
    window.search.export_best_button.click()
    assert chosen == [runs[1]]


def test_the_theme_reaches_the_search_plots(window):
    window.set_theme("dark")
    assert window.search.history.backgroundBrush().color().name() == DARK["background"]


def test_closing_the_window_stops_a_running_search(qtbot, window, tmp_path, monkeypatch,
                                                   tiny_config):
    monkeypatch.setenv("FAKE_OUT", str(tmp_path))
    monkeypatch.setenv("FAKE_MODE", "wait")
    window.config_panel.set_config(tiny_config())
    panel = window.search
    panel.launcher = fake_launcher(tmp_path)
    panel.form.add_row("optim.lr")
    with qtbot.waitSignal(panel.search.event, timeout=20000):
        panel.start()
    window.close()
    assert not panel.running
    assert (tmp_path / "interrupted").read_text() == "yes"


def test_a_double_clicked_trial_puts_its_configuration_in_the_form(qtbot, window, trial_runs):
    storage, runs = trial_runs
    show_study(qtbot, window, storage)
    table = window.search.trials
    row = next(r for r in range(table.rowCount()) if table.item(r, 0).text() == "0")
    table.cellDoubleClicked.emit(row, 1)
    assert window.config_panel.config().optim.lr == 0.03
    assert f"run {runs[0]} trial-0" in window.windowTitle()


def test_file_save_keeps_the_search_docks_space_and_it_opens_again(window, tmp_path):
    from app.panels.search_spec import Param, SearchSpec

    spec = SearchSpec(objective="val_accuracy", n_trials=12,
                      space={"optim.lr": Param("float", 1e-4, 1e-1, log=True),
                             "data.batch_size": Param("choice", choices=[32, 64])})
    window.search.form.set_spec(spec)
    path = tmp_path / "with-search.toml"
    assert window.save_config(str(path))
    assert "Search dock's search space" in window.messages.message()
    cfg = RunConfig.load(path)  # a file `torchwork search` reads, and `torchwork run` too
    assert cfg.search.n_trials == 12
    assert cfg.search.space["optim.lr"] == {"low": 1e-4, "high": 1e-1, "log": True}
    assert cfg.search.space["data.batch_size"] == {"choices": [32, 64]}
    window.search.form.set_spec(SearchSpec())  # the dock emptied; File ▸ Open brings it back
    assert window.open_config(str(path))
    assert window.search.form.spec().space == spec.space


def test_file_save_says_when_the_docks_space_cannot_go_with_it(window, tmp_path):
    from app.panels.search_spec import Param, SearchSpec

    window.search.form.set_spec(SearchSpec(space={"optim.lr": Param("float", 1e-4, 1e-1)}))
    window.search.form.cell(0, 0).setCurrentText("")  # a row without its key
    path = tmp_path / "plain.toml"
    assert window.save_config(str(path))  # the configuration itself is never held back
    assert window.messages.kind == "warning"
    assert "space was left out" in window.messages.message()
    assert "row 1 of the space has no config key" in window.messages.message()
    assert RunConfig.load(path).data.dataset == window.config_panel.config().data.dataset
