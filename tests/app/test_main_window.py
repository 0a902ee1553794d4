"""The main window driven like a user: toolbar actions, errors, closing mid-run, settings."""

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QToolBar

from engine.config import RunConfig
from engine.workspace import Workspace


def click(qtbot, window, action):
    toolbar = window.findChild(QToolBar, "toolbar-run")
    button = toolbar.widgetForAction(action)
    assert button.isEnabled(), action.text()
    qtbot.mouseClick(button, Qt.LeftButton)


def test_start_pause_resume_stop_from_the_toolbar(qtbot, make_window, tiny_config, tmp_path):
    window = make_window(tiny_config(**{"train.epochs": 1000}))
    assert window.act_start.isEnabled() and not window.act_stop.isEnabled()
    with qtbot.waitSignal(window.bridge.metricsLogged, timeout=30000):
        click(qtbot, window, window.act_start)
    qtbot.waitUntil(lambda: window.act_pause.isEnabled())
    assert not window.act_start.isEnabled()
    assert window.config_panel.is_read_only()
    with qtbot.waitSignal(window.bridge.paused, timeout=10000):
        click(qtbot, window, window.act_pause)
    qtbot.waitUntil(lambda: window.act_resume.isEnabled())
    assert window.status.state.text() == "Paused"
    with qtbot.waitSignal(window.bridge.resumed, timeout=10000):
        click(qtbot, window, window.act_resume)
    with qtbot.waitSignal(window.bridge.runEnded, timeout=30000) as ended:
        click(qtbot, window, window.act_stop)
    assert ended.args[0].status == "stopped"
    qtbot.waitUntil(lambda: window.act_start.isEnabled())
    window.plots.refresh()
    steps, losses = window.plots.curve_data("train_loss")
    assert len(steps) > 0 and steps[-1] <= ended.args[0].steps
    with Workspace(tmp_path / "ws") as ws:
        run = ws.list_runs()[0]
        assert run.status == "stopped" and run.checkpoint


def test_invalid_config_disables_start_with_the_reason(make_window, tiny_config):
    window = make_window(tiny_config())
    window.config_panel.editor("optim.lr").set_value(-1.0)
    window.config_panel.editor("optim.lr").changed.emit()
    assert not window.act_start.isEnabled()
    assert "optim.lr must be > 0" in window.act_start.toolTip()
    window.config_panel.editor("optim.lr").set_value(0.01)
    window.config_panel.editor("optim.lr").changed.emit()
    assert window.act_start.isEnabled()


def test_a_nan_run_shows_the_message_and_keeps_the_window_usable(qtbot, make_window,
                                                                 tiny_config, faulty_model):
    arch = faulty_model("if self.calls > 5: out = out * float('nan')")
    window = make_window(tiny_config(**{"model.arch": arch}))
    with qtbot.waitSignal(window.bridge.runEnded, timeout=30000) as ended:
        window.act_start.trigger()
    assert ended.args[0].status == "failed"
    qtbot.waitUntil(lambda: window.act_start.isEnabled())
    text = window.messages.message()
    assert "loss became nan at step 6" in text and "optim.lr" in text
    window.plots.refresh()
    assert len(window.plots.curve_data("train_loss")[0]) > 0  # the data so far is kept


def test_a_model_that_cannot_be_built_is_reported(qtbot, make_window, tiny_config, tmp_path):
    (tmp_path / "broken.py").write_text("def build_model(input_shape, num_outputs):\n"
                                        "    raise ValueError('layer sizes missing')\n")
    window = make_window(tiny_config(**{"model.arch": f"custom:{tmp_path / 'broken.py'}"}))
    with qtbot.waitSignal(window.bridge.buildFailed, timeout=30000):
        window.act_start.trigger()
    qtbot.waitUntil(lambda: window.act_start.isEnabled())
    assert "layer sizes missing" in window.messages.message()


def test_closing_during_a_run_asks_then_stops_with_a_checkpoint(qtbot, make_window,
                                                                tiny_config, tmp_path):
    window = make_window(tiny_config(**{"train.epochs": 1000}))
    with qtbot.waitSignal(window.bridge.metricsLogged, timeout=30000):
        window.act_start.trigger()
    window.confirm = lambda title, text: False
    window.close()
    assert window.isVisible() and window.bridge.busy  # the user said no: keep training
    window.confirm = lambda title, text: True
    window.close()
    assert not window.isVisible() and not window.bridge.busy  # no thread outlives it
    with Workspace(tmp_path / "ws") as ws:
        run = ws.list_runs()[0]
        assert run.status == "stopped" and run.checkpoint


def test_settings_are_restored_on_the_next_launch(qtbot, make_window, tiny_config):
    first = make_window(tiny_config(**{"optim.lr": 0.0042}))
    first.set_theme("dark")
    first.config_dock.hide()
    first.close()
    second = make_window()
    assert second.theme == "dark" and second.theme_actions["dark"].isChecked()
    assert second.config_panel.config().optim.lr == 0.0042
    assert not second.config_dock.isVisible()


def test_config_round_trips_through_save_and_open(make_window, tiny_config, tmp_path):
    cfg = tiny_config(**{"model.hidden": [32, 16], "schedule.name": "cosine"})
    window = make_window(cfg)
    window.save_config(str(tmp_path / "saved.toml"))
    assert RunConfig.load(tmp_path / "saved.toml") == cfg
    window.new_run()
    assert window.config_panel.config() == RunConfig()
    assert window.open_config(str(tmp_path / "saved.toml"))
    assert window.config_panel.config() == cfg
    assert window.recent_menu.actions()[0].text() == str((tmp_path / "saved.toml").resolve())


def test_a_bad_config_file_is_explained(make_window, tmp_path):
    (tmp_path / "bad.toml").write_text("[optim\n")
    window = make_window()
    assert not window.open_config(str(tmp_path / "bad.toml"))
    assert "not valid TOML" in window.messages.message()


def test_open_run_shows_its_curves_again(qtbot, make_window, tiny_config):
    window = make_window(tiny_config())
    with qtbot.waitSignal(window.bridge.runEnded, timeout=30000):
        window.act_start.trigger()
    qtbot.waitUntil(lambda: not window.bridge.busy)
    later = make_window(settings_file="other.ini")
    later.open_run(1)
    later.plots.refresh()
    assert later.config_panel.config() == tiny_config()
    assert len(later.plots.curve_data("train_loss")[0]) > 0
    assert len(later.plots.curve_data("val_loss")[0]) == 3


def test_no_display_gives_one_line_and_the_headless_commands(monkeypatch, capsys):
    from app.__main__ import main

    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(var, raising=False)
    assert main([]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "no display found" in err and "torchwork run" in err


def test_unexpected_errors_reach_the_message_bar_not_the_terminal(make_window, monkeypatch,
                                                                  tmp_path):
    import sys

    from app.main_window import route_exceptions

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # restored after the test
    window = make_window()
    route_exceptions(window)
    try:
        raise KeyError("no such curve")
    except KeyError:
        sys.excepthook(*sys.exc_info())
    assert "Unexpected error: KeyError" in window.messages.message()



def test_no_garbage_collection_while_a_worker_job_runs():
    import gc
    import threading

    from app import gc_guard

    assert gc.isenabled()
    inside, leave = threading.Event(), threading.Event()

    def job():
        with gc_guard.paused():
            inside.set()
            leave.wait(10)

    workers = [threading.Thread(target=job) for _ in range(2)]
    for w in workers:
        w.start()
    inside.wait(10)
    assert not gc.isenabled()  # for every thread, the GUI thread included
    leave.set()
    for w in workers:
        w.join()
    assert gc.isenabled()  # back on when the last job ends


def test_plots_behind_another_tab_wait_and_draw_when_brought_forward(qtbot, make_window):
    from engine.training.events import MetricsLogged, RunStarted

    window = make_window()
    window.resize(1200, 800)
    qtbot.waitExposed(window)
    plots = window.plots
    plots.on_run_started(RunStarted("1", 100, "cpu", "classification", 3, 4, 12, 0, 1,
                                    ("val_loss", "val_accuracy")))
    window.profiler_dock.raise_()  # the Training tab goes behind the Profiler tab
    qtbot.wait(50)
    assert window.plots.isVisible()  # Qt still says so: the check must use what is seen
    for step in range(1, 9):
        plots.on_metrics(MetricsLogged(step, 1, 1.0 / step, 0.1, 1.0, 1000.0, 0.1 * step))
    loss = plots.plots["loss"]
    qtbot.wait(400)
    assert loss.has_changes()  # nothing drawn for a tab nobody sees
    window.training_dock.raise_()
    qtbot.waitUntil(lambda: not loss.has_changes(), timeout=3000)


def test_starting_a_run_does_not_move_the_layout(qtbot, make_window):
    """The status bar's progress bars appear without growing it: a window whose plots
    shrank as a run started would repaint every one of them just as the run begins."""
    from engine.training.events import RunStarted

    window = make_window()
    window.resize(1200, 800)
    qtbot.waitExposed(window)
    qtbot.wait(300)  # the first show's layout passes are over, even on a slow machine
    before = {key: plot.size() for key, plot in window.plots.plots.items()}
    window.status.on_run_started(RunStarted("1", 100, "cpu", "classification", 3, 4, 12, 0, 1,
                                            ("val_loss", "val_accuracy")))
    qtbot.wait(50)
    assert window.status.run_bar.isVisible()
    assert {key: plot.size() for key, plot in window.plots.plots.items()} == before
    window.status.reset()  # and back, when the next run is set up
    qtbot.wait(50)
    assert {key: plot.size() for key, plot in window.plots.plots.items()} == before


def test_the_first_launch_shows_the_whole_form_at_the_default_size(qtbot, make_window):
    window = make_window()
    qtbot.waitExposed(window)
    qtbot.wait(50)
    # no dock (of a tab group either) asks for more width than the default window has...
    assert window.minimumSizeHint().width() <= window.width() == 1400
    scroll = window.config_panel._scroll
    # ...and the form, which has no horizontal scroll bar, is not cut off at the right
    assert scroll.viewport().width() >= scroll.widget().minimumSizeHint().width()


def test_the_first_launch_has_the_docks_as_tabs_beside_training(qtbot, make_window):
    from PySide6.QtWidgets import QTabBar

    window = make_window()
    qtbot.waitExposed(window)
    tabbed = window.tabifiedDockWidgets(window.training_dock)
    assert set(tabbed) == {window.runs_dock, window.hardware_dock, window.profiler_dock,
                           window.compression_dock, window.evaluation_dock, window.search_dock,
                           window.advisor_dock}
    bar = next(b for b in window.findChildren(QTabBar) if b.count() == 8)
    assert [bar.tabText(i) for i in range(8)] == ["Training", "Runs", "Hardware", "Profiler",
                                                  "Compression", "Evaluation", "Search",
                                                  "Advisor"]
    assert bar.tabText(bar.currentIndex()) == "Training"
    assert window.dockWidgetArea(window.config_dock) == Qt.LeftDockWidgetArea
