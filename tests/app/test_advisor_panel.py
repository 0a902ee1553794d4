"""The Advisor dock: Diagnose runs `torchwork advise --json` (a stand-in script here) and
lists its findings; Try it measures one and shows the result; Apply sets the form."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

from app.panels.advisor_panel import AdvisorPanel, result_text
from app.widgets.message_bar import MessageLog

FAKE_ADVISE = textwrap.dedent('''\
    """Stands in for `python -m app advise ...`: records its argv, then prints the JSON lines
    of a diagnosis, or (with --try) of an A/B; FAKE_MODE=fail fails as a bad config does,
    FAKE_MODE=slow waits for Ctrl+C."""
    import json, os, pathlib, sys, time
    out = pathlib.Path(os.environ["FAKE_OUT"])
    calls = out / "calls.json"
    seen = json.loads(calls.read_text()) if calls.exists() else []
    calls.write_text(json.dumps(seen + [sys.argv[1:]]))
    mode = os.environ.get("FAKE_MODE", "ok")
    def say(**event):
        print(json.dumps(event), flush=True)
    if mode == "fail":
        print("Traceback (most recent call last):", file=sys.stderr)
        print("torchwork advise: data.batch_size must be >= 1 (got -1)", file=sys.stderr)
        sys.exit(2)
    if mode == "slow":
        say(event="diagnosis", source="x", notes=[], evidence={})
        time.sleep(60)
    if "--try" in sys.argv:
        fid = sys.argv[sys.argv.index("--try") + 1]
        for done in (1, 2):
            say(event="ab_progress", finding=fid, done=done, total=2)
        say(event="ab_result", finding=fid, speedup=3.1, low=2.4, high=3.9, confirmed=True,
            summary="measured speed-up 3.10x (95% interval 2.40-3.90)")
        say(event="advice_done", findings=0, tried=[fid])
    else:
        say(event="diagnosis", source=sys.argv[2], notes=[], evidence={})
        say(event="finding", id="small-batch", title="A small batch with memory to spare",
            evidence="data.batch_size=4; the memory forecast fits up to 9000",
            effect="A batch of 32 does 8x the work per step", changes={"data.batch_size": 32},
            hint="")
        say(event="finding", id="host-sync", title="The step waits for the device",
            evidence="3 syncs per step, from model.py:12", effect="...", changes=None,
            hint="keep the value on the device")
        say(event="advice_done", findings=2, tried=[])
''')


@pytest.fixture
def fake(tmp_path, monkeypatch):
    script = tmp_path / "fake_advise.py"
    script.write_text(FAKE_ADVISE)
    monkeypatch.setenv("FAKE_OUT", str(tmp_path))
    return [sys.executable, str(script)]


@pytest.fixture
def panel(qtbot, tmp_path, tiny_config, fake):
    cfg = tiny_config()
    applied = {}
    log = MessageLog()
    widget = AdvisorPanel(tmp_path / "ws", cfg.copy, applied.__setitem__, lambda: 7, log=log)
    widget.launcher = fake
    widget.applied_values = applied
    widget.log = log
    qtbot.addWidget(widget)
    yield widget
    widget.shutdown(wait_ms=5000)


def calls(tmp_path) -> list[list[str]]:
    return json.loads((tmp_path / "calls.json").read_text())


def cell(panel, fid, col) -> str:
    return panel.table.item(panel.rows[fid], col).text()


def diagnose(panel, qtbot):
    with qtbot.waitSignal(panel.process.finished, timeout=20000) as done:
        panel.diagnose()
        assert panel.running and not panel.diagnose_button.isEnabled()  # never blocks
    assert done.args[0] == 0


def test_diagnose_lists_the_findings(panel, qtbot, tmp_path):
    diagnose(panel, qtbot)
    (argv,) = calls(tmp_path)
    assert argv[0] == "advise" and argv[1].endswith(".toml") and "--json" in argv
    assert argv[argv.index("--workspace") + 1] == str(tmp_path / "ws")
    assert panel.table.rowCount() == 2
    assert cell(panel, "small-batch", 0) == "A small batch with memory to spare"
    assert "fits up to 9000" in cell(panel, "small-batch", 1)
    assert cell(panel, "small-batch", 3) == "data.batch_size = 32"
    assert cell(panel, "host-sync", 3) == "by hand"
    try_it, apply = panel.buttons("host-sync")
    assert not try_it.isEnabled() and not apply.isEnabled()  # nothing to change
    assert "2 findings" in panel.status.text()


def test_try_it_measures_the_change_and_shows_the_result(panel, qtbot, tmp_path):
    diagnose(panel, qtbot)
    try_it, _apply = panel.buttons("small-batch")
    with qtbot.waitSignal(panel.process.finished, timeout=20000):
        try_it.click()
    argv = calls(tmp_path)[-1]
    assert argv[argv.index("--try") + 1] == "small-batch"
    assert argv[argv.index("--change") + 1] == "data.batch_size=32"
    assert cell(panel, "small-batch", 4) == "3.10x faster (2.40–3.90)"
    assert panel.diagnose_button.isEnabled()


def test_apply_sets_the_form(panel, qtbot):
    diagnose(panel, qtbot)
    _try, apply = panel.buttons("small-batch")
    apply.click()
    assert panel.applied_values == {"data.batch_size": 32}


def test_a_failure_is_one_line_in_the_message_bar(panel, qtbot, monkeypatch):
    monkeypatch.setenv("FAKE_MODE", "fail")
    with qtbot.waitSignal(panel.process.finished, timeout=20000):
        panel.diagnose()
    errors = [m.text for m in panel.log.messages if m.level == "error"]
    assert errors == ["Advisor: torchwork advise: data.batch_size must be >= 1 (got -1)"]


def test_stop_ends_the_process(panel, qtbot, monkeypatch):
    monkeypatch.setenv("FAKE_MODE", "slow")
    with qtbot.waitSignal(panel.process.event, timeout=20000):
        panel.diagnose()
    with qtbot.waitSignal(panel.process.finished, timeout=20000):
        panel.stop()
    assert not panel.running and panel.status.text() == "Stopped."


def test_the_current_run_can_be_diagnosed(panel, qtbot, tmp_path):
    panel.source.setCurrentIndex(panel.source.findData("run"))
    diagnose(panel, qtbot)
    assert calls(tmp_path)[0][1] == "7"


def test_results_say_when_nothing_was_gained():
    assert result_text({"speedup": 1.01, "low": 0.93, "high": 1.08,
                        "confirmed": False}).startswith("no measurable gain")
    assert result_text({"speedup": 0.5, "low": 0.4, "high": 0.6,
                        "confirmed": False}).startswith("slower")
