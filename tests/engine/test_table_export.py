"""A table run's export fed raw columns: the documented path of docs/export.md, end to end,
and the table examples reaching their bars."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from engine.cli import main
from engine.data.datasets import split_rows
from engine.data.tables import table_path
from engine.export import decode_outputs, load_run_model, onnx_meta, raw_inputs
from engine.workspace import Workspace

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PENGUINS = table_path("table:pkg://palmerpenguins/penguins.csv")


def run_example(tmp_path, name, *extra):
    ws = tmp_path / "ws"
    assert main(["run", str(EXAMPLES / name), "--workspace", str(ws), *extra]) == 0
    return ws


def last_epoch(capsys) -> dict:
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    return [e for e in lines if e["event"] == "epoch"][-1]


@pytest.mark.slow
def test_onnx_export_fed_raw_columns_matches_the_model(tmp_path, capsys):
    ws = run_example(tmp_path, "penguins-table.toml", "--set", "train.epochs=3", "--json")
    out = tmp_path / "penguins.onnx"
    assert main(["export", "1", "--out", str(out), "--workspace", str(ws)]) == 0
    capsys.readouterr()
    loaded = load_run_model(ws, 1)
    frame = pd.read_csv(PENGUINS)
    cfg = loaded.config
    kept = frame[frame["species"].notna()].reset_index(drop=True)
    names = sorted(kept["species"].unique())
    y = np.array([names.index(s) for s in kept["species"]])
    _, val, _ = split_rows(cfg, y, names)
    raw = kept.iloc[val].drop(columns=["species"]).assign(unused="ignored")

    import onnxruntime

    meta = onnx_meta(out)
    x = raw_inputs(meta, raw)
    np.testing.assert_array_equal(x, loaded.bundle.x_val.numpy())
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    onnx_out = session.run(None, {"input": x})[0]
    with torch.no_grad():
        expected = loaded.model(loaded.bundle.x_val).numpy()
    np.testing.assert_allclose(onnx_out, expected, atol=1e-4)
    labels = decode_outputs(meta, onnx_out)
    assert labels == [names[i] for i in expected.argmax(1)]


@pytest.mark.slow
def test_penguins_example_reaches_97_percent_validation_accuracy(tmp_path, capsys):
    run_example(tmp_path, "penguins-table.toml", "--json")
    assert last_epoch(capsys)["val_accuracy"] >= 0.97


@pytest.mark.slow
def test_penguin_mass_regression_example_learns(tmp_path, capsys):
    ws = run_example(tmp_path, "penguins-mass-regression.toml", "--json")
    assert last_epoch(capsys)["val_r2"] > 0.7
    with Workspace(ws) as w:
        log = (w.get_run(1).dir / "log.txt").read_text()
    assert "task: regression (auto" in log and "dropped 2 row(s)" in log
