"""The bridge: a run on a background thread, its events as queued signals, commands back."""

import threading

from app import pacing
from app.bridge import IDLE, TrainingBridge
from engine.workspace import Workspace


def test_a_run_reports_on_the_gui_thread_and_lands_in_the_workspace(qtbot, tiny_config,
                                                                      tmp_path, monkeypatch):
    monkeypatch.setattr(pacing, "available_cores", lambda: 2)  # a CPU run fills them
    bridge = TrainingBridge(tmp_path / "ws")
    threads, epochs, paces = set(), [], []
    bridge.metricsLogged.connect(lambda e: threads.add(threading.current_thread().name))
    bridge.epochEnded.connect(epochs.append)
    bridge.epochEnded.connect(lambda e: paces.append(bridge.delivery_ms))
    energy = []
    bridge.energyMeasured.connect(energy.append)
    with qtbot.waitSignal(bridge.runEnded, timeout=30000) as ended:
        bridge.start(tiny_config())
    assert ended.args[0].status == "completed"
    # each epoch's reading, then the run's final one, before runEnded (this VM has no RAPL:
    # each says why)
    assert [(e.epoch, e.final) for e in energy] == [(1, False), (2, False), (3, False),
                                                    (3, True)]
    assert energy[-1].note.startswith("not available: ") or energy[-1].source == "rapl"
    assert threads == {threading.main_thread().name}
    assert [e.epoch for e in epochs] == [1, 2, 3]
    assert paces == [pacing.FRUGAL.delivery_ms] * 3  # the run has the cores: 4 a second
    qtbot.waitUntil(lambda: bridge.state == IDLE)
    assert bridge.delivery_ms == pacing.NORMAL.delivery_ms
    with Workspace(tmp_path / "ws") as ws:
        run = ws.list_runs()[0]
        assert run.status == "completed" and len(ws.epoch_metrics(run.id)["val_loss"].value) == 3


def test_pause_resume_stop_and_resume_the_run_later(qtbot, tiny_config, tmp_path):
    bridge = TrainingBridge(tmp_path / "ws")
    cfg = tiny_config(**{"train.epochs": 500})
    created = []
    bridge.runCreated.connect(created.append)
    with qtbot.waitSignal(bridge.metricsLogged, timeout=30000):
        bridge.start(cfg)
    with qtbot.waitSignal(bridge.paused, timeout=10000):
        bridge.pause()
    assert bridge.state == "paused"
    with qtbot.waitSignal(bridge.resumed, timeout=10000):
        bridge.resume()
    with qtbot.waitSignal(bridge.runEnded, timeout=30000) as ended:
        bridge.stop()
    assert ended.args[0].status == "stopped" and ended.args[0].checkpoint
    qtbot.waitUntil(lambda: not bridge.busy)
    stopped_at = ended.args[0].steps
    with qtbot.waitSignal(bridge.runStarted, timeout=30000) as started:
        bridge.resume_run(created[0].run_id)
    assert started.args[0].start_step == stopped_at
    bridge.stop()
    assert bridge.wait()


def test_a_config_that_cannot_build_is_reported_not_raised(qtbot, tiny_config, tmp_path):
    (tmp_path / "net.py").write_text("def build_model(input_shape, num_outputs):\n"
                                     "    raise RuntimeError('no layers yet')\n")
    bridge = TrainingBridge(tmp_path / "ws")
    with qtbot.waitSignal(bridge.buildFailed, timeout=30000) as failed:
        bridge.start(tiny_config(**{"model.arch": f"custom:{tmp_path / 'net.py'}"}))
    assert "no layers yet" in failed.args[0]
    qtbot.waitUntil(lambda: bridge.state == IDLE)


def test_one_delivery_gives_the_plots_one_batch_between_other_events(qtbot):
    from engine.training.events import MetricsLogged

    bridge = TrainingBridge()
    heard = []
    bridge.metricsBatch.connect(lambda batch: heard.append([e.step for e in batch]))
    bridge.hardwareSampled.connect(lambda sample: heard.append(sample))
    bridge.epochEnded.connect(lambda e: heard.append(e))
    step = [MetricsLogged(i, 1, 0.5, 0.1, 1.0, 100.0, i * 0.1) for i in range(5)]
    # three sends of the run's process, as one delivery finds them
    events = [("metricsLogged", (step[0],)), ("metricsLogged", (step[1],)),
              ("hardwareSampled", ("sample",)), ("metricsLogged", (step[2],)),
              ("epochEnded", ("epoch 1",)), ("metricsLogged", (step[3],)),
              ("metricsLogged", (step[4],))]
    assert bridge._emit(events) is False
    assert heard == ["sample", [0, 1, 2], "epoch 1", [3, 4]]  # samples don't split steps
    heard.clear()
    assert bridge._emit([("metricsLogged", (step[0],)), ("_done", ())]) is True
    assert heard == [[0]]


def test_resuming_a_run_killed_after_its_last_checkpoint_only_finishes_it(qtbot, tiny_config,
                                                                            tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    config, ws_dir = tmp_path / "run.toml", tmp_path / "ws"
    # early stopping ends it after 2 of 20 epochs: only its checkpoint knows it ended
    tiny_config(**{"train.epochs": 20, "regularization.early_stopping_patience": 1,
                   "regularization.early_stopping_min_delta": 10.0}).save(config)
    child = Path(__file__).parents[1] / "engine" / "kill_child.py"
    done = subprocess.run([sys.executable, str(child), "finishing", "1", "--", "run",
                           str(config), "--workspace", str(ws_dir)], capture_output=True)
    assert done.returncode == -9, done.stderr
    bridge = TrainingBridge(ws_dir)
    epochs = []
    bridge.epochEnded.connect(epochs.append)
    with qtbot.waitSignal(bridge.runEnded, timeout=30000) as ended:
        bridge.resume_run(1)
    assert ended.args[0].status == "completed" and ended.args[0].epochs_completed == 2
    assert epochs == []  # nothing trained again
    qtbot.waitUntil(lambda: bridge.state == IDLE)
    with Workspace(ws_dir) as ws:
        assert ws.get_run(1).status == "completed"
