"""`torchwork advise`: findings of a config or a run, as text or JSON lines; the A/B of a
finding; one clear line for a bad RUN or finding."""

import json

import pytest

from engine import cli

CONFIG = """[data]
dataset = "synthetic"
n_samples = 3000
n_features = 8
batch_size = 4

[model]
arch = "mlp"
hidden = [16]

[train]
epochs = 1
device = "cpu"
"""


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(CONFIG)
    return str(path)


def lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.mark.slow
def test_json_lines_list_findings_and_measure_one(config, tmp_path, capsys):
    ws = str(tmp_path / "ws")
    code = cli.main(["advise", config, "--workspace", ws, "--json", "--try", "small-batch",
                     "--pairs", "3"])
    assert code == 0, capsys.readouterr().err
    events = lines(capsys.readouterr().out)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "diagnosis" and kinds[-1] == "advice_done"
    found = {e["id"]: e for e in events if e["event"] == "finding"}
    assert found["small-batch"]["changes"] == {"data.batch_size": 32}  # 8x, forecast fits
    progress = [(e["done"], e["total"]) for e in events if e["event"] == "ab_progress"]
    assert progress == [(1, 3), (2, 3), (3, 3)]
    (result,) = [e for e in events if e["event"] == "ab_result"]
    assert result["finding"] == "small-batch" and result["pairs"] == 3
    assert result["low"] <= result["speedup"] <= result["high"]
    assert result["confirmed"] == (result["low"] > 1.0)


@pytest.mark.slow
def test_a_run_is_diagnosed_from_its_latest_capture(config, tmp_path, capsys):
    ws = str(tmp_path / "ws")
    assert cli.main(["profile", config, "--workspace", ws, "--steps", "3"]) == 0
    capsys.readouterr()
    assert cli.main(["advise", "1", "--workspace", ws]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Diagnosis of run 1 (")
    assert "trace " in out.splitlines()[0] and ".pt.trace.json" in out.splitlines()[0]
    assert "[small-batch]" in out and "change:   data.batch_size=32" in out


def test_a_bad_run_is_one_clear_line(tmp_path, capsys):
    code = cli.main(["advise", "99", "--workspace", str(tmp_path / "ws")])
    err = capsys.readouterr().err.strip()
    assert code == cli.EXIT_BAD_CONFIG
    assert len(err.splitlines()) == 1 and "no run 99" in err and "Traceback" not in err


def test_a_bad_config_key_is_one_clear_line(config, tmp_path, capsys):
    code = cli.main(["advise", config, "--workspace", str(tmp_path / "ws"),
                     "--set", "data.batch_size=-1"])
    err = capsys.readouterr().err.strip()
    assert code == cli.EXIT_BAD_CONFIG and len(err.splitlines()) == 1
    assert "data.batch_size" in err


@pytest.mark.slow
def test_an_unknown_finding_is_one_clear_line(config, tmp_path, capsys):
    code = cli.main(["advise", config, "--workspace", str(tmp_path / "ws"), "--try", "nope"])
    err = capsys.readouterr().err.strip()
    assert code == cli.EXIT_BAD_CONFIG and len(err.splitlines()) == 1
    assert "--try nope: no such finding" in err and "small-batch" in err


@pytest.mark.slow
def test_a_run_without_a_capture_gets_one_of_its_config(config, tmp_path, capsys):
    from engine.config import RunConfig
    from engine.workspace import Workspace

    with Workspace(tmp_path / "ws") as ws:
        run = ws.create_run(RunConfig.load(config), "never-profiled")
    assert cli.main(["advise", str(run.id), "--workspace", str(tmp_path / "ws")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Diagnosis of run {run.id} (")
    assert f"note: run {run.id} has no profiler capture: captured 5 steps of its config" in out
    assert "[small-batch]" in out
