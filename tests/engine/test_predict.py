"""`torchwork predict`: new rows or images through a run's stored preprocessing and model."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from engine.cli import main
from engine.data.datasets import split_rows
from engine.data.images import list_images
from engine.data.tables import table_path
from engine.export import load_run_model

from .image_folders import make_folder

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PENGUINS = table_path("table:pkg://palmerpenguins/penguins.csv")


def train(ws, config, *extra):
    assert main(["run", str(config), "--workspace", str(ws), *extra]) == 0


def raw_val_rows(cfg, target, classification):
    """The raw rows of the run's validation split: the file's rows with a target, split
    with the run's seed as load_dataset splits them."""
    frame = pd.read_csv(PENGUINS)
    kept = frame[frame[target].notna()].reset_index(drop=True)
    if classification:
        names = sorted(kept[target].unique())
        y = np.array([names.index(s) for s in kept[target]])
        _, val, _ = split_rows(cfg, y, names)
    else:
        _, val, _ = split_rows(cfg, kept[target].to_numpy(dtype=np.float64), None)
    return kept.iloc[val].reset_index(drop=True)


def read_out(path):
    return pd.read_csv(path)  # pandas 3 parses floats round-trip


@pytest.fixture(scope="module")
def penguins_ws(tmp_path_factory):
    ws = tmp_path_factory.mktemp("predict") / "ws"
    train(ws, EXAMPLES / "penguins-table.toml", "--set", "train.epochs=2")
    return ws


def test_predict_reproduces_the_validation_predictions_exactly(penguins_ws, tmp_path, capsys):
    loaded = load_run_model(penguins_ws, 1)
    raw = raw_val_rows(loaded.config, "species", True).assign(unused="x", note2=1)
    data = tmp_path / "new.csv"
    raw.to_csv(data, index=False)
    out = tmp_path / "pred.csv"
    capsys.readouterr()
    assert main(["predict", "1", "--data", str(data), "--out", str(out), "--workspace",
                 str(penguins_ws), "--json"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["rows"] == len(raw) and summary["ignored_columns"] == ["unused", "note2"]
    assert "note: ignored 2 column(s) the run did not see in training: unused, note2" \
        in captured.err
    got = read_out(out)
    names = loaded.bundle.class_names
    assert list(got.columns) == ["row", "species", "predicted", *[f"prob_{n}" for n in names]]
    with torch.no_grad():
        expected = torch.softmax(loaded.model(loaded.bundle.x_val), 1).numpy()
    np.testing.assert_array_equal(got[[f"prob_{n}" for n in names]].to_numpy(),
                                  expected.astype(np.float64))
    assert got["predicted"].tolist() == [names[i] for i in expected.argmax(1)]
    assert got["row"].tolist() == list(range(1, len(raw) + 1))
    assert got["species"].tolist() == raw["species"].tolist()  # passed through
    small = tmp_path / "small.csv"  # batches of 16 rows: the same up to float rounding
    assert main(["predict", "1", "--data", str(data), "--out", str(small), "--workspace",
                 str(penguins_ws), "--batch-size", "16"]) == 0
    np.testing.assert_allclose(read_out(small)[[f"prob_{n}" for n in names]].to_numpy(),
                               expected, rtol=1e-5, atol=1e-7)


def test_a_missing_column_is_one_line_naming_it_and_nothing_is_written(penguins_ws, tmp_path,
                                                                       capsys):
    data = tmp_path / "partial.csv"
    pd.read_csv(PENGUINS).drop(columns=["island"]).to_csv(data, index=False)
    out = tmp_path / "pred.csv"
    capsys.readouterr()
    assert main(["predict", "1", "--data", str(data), "--out", str(out), "--workspace",
                 str(penguins_ws)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'island'" in err and str(data) in err
    assert "Traceback" not in err
    assert not out.exists() and list(tmp_path.iterdir()) == [data]  # no temporary file left


def test_unknown_run_and_missing_file_are_clear_lines(penguins_ws, tmp_path, capsys):
    out = tmp_path / "pred.csv"
    assert main(["predict", "1", "--data", str(tmp_path / "nope.csv"), "--out", str(out),
                 "--workspace", str(penguins_ws)]) == 2
    assert "nope.csv not found" in capsys.readouterr().err
    data = tmp_path / "d.csv"
    pd.read_csv(PENGUINS).to_csv(data, index=False)
    assert main(["predict", "99", "--data", str(data), "--out", str(out),
                 "--workspace", str(penguins_ws)]) == 2
    err = capsys.readouterr().err
    assert "99" in err and "Traceback" not in err and not out.exists()


@pytest.mark.slow
def test_regression_predictions_are_in_the_targets_units(tmp_path, capsys):
    ws = tmp_path / "ws"
    train(ws, EXAMPLES / "penguins-mass-regression.toml", "--set", "train.epochs=3")
    loaded = load_run_model(ws, 1)
    raw = raw_val_rows(loaded.config, "body_mass_g", False)
    data = tmp_path / "new.parquet"
    raw.drop(columns=["body_mass_g"]).to_parquet(data)
    out = tmp_path / "pred.csv"
    capsys.readouterr()
    assert main(["predict", "1", "--data", str(data), "--out", str(out), "--workspace",
                 str(ws)]) == 0
    assert "ignored 1 column(s) the run did not see in training: year" in capsys.readouterr().err
    got = read_out(out)
    assert list(got.columns) == ["row", "predicted"]
    b = loaded.bundle
    with torch.no_grad():
        expected = loaded.model(b.x_val)[:, 0].double().numpy() * b.target_std + b.target_mean
    np.testing.assert_array_equal(got["predicted"].to_numpy(), expected)
    assert 2000 < got["predicted"].mean() < 7000  # grams, not standardized units


IMAGES_CONFIG = """
[data]
dataset = "images:pets"
image_size = 12
channels = 3
batch_size = 8
val_fraction = 0.25

[model]
arch = "cnn"
channels = [8]
hidden = [16]

[train]
epochs = 2
device = "cpu"
"""


def test_predict_on_an_image_folder_matches_the_validation_images(tmp_path, monkeypatch,
                                                                  capsys):
    monkeypatch.setenv("TORCHWORK_CACHE", str(tmp_path / "cache"))
    project = tmp_path / "project"
    make_folder(project / "pets", per_class=8)
    (project / "run.toml").write_text(IMAGES_CONFIG)
    ws = tmp_path / "ws"
    train(ws, project / "run.toml")
    loaded = load_run_model(ws, 1)  # the training folder as it was
    listing = list_images(loaded.config.data.dataset)
    _, val, _ = split_rows(loaded.config, listing.labels, listing.class_names)
    with torch.no_grad():
        expected = torch.softmax(loaded.model(loaded.bundle.x_val), 1).numpy()
    # files added since are predicted on (an undecodable one skipped), but the run's stored
    # split and normalization are not refitted to the folder as it is now
    (project / "pets" / "dog" / "broken.png").write_bytes(b"not a png")
    make_folder(tmp_path / "more", per_class=6, seed=1)
    for file in (tmp_path / "more" / "dog").iterdir():
        file.rename(project / "pets" / "dog" / f"new-{file.name}")
    out = tmp_path / "pred.csv"
    capsys.readouterr()
    assert main(["predict", "1", "--data", str(project / "pets"), "--out", str(out),
                 "--workspace", str(ws), "--batch-size", "5"]) == 0
    err = capsys.readouterr().err
    assert "skipped 1 image(s) that cannot be decoded" in err and "broken.png" in err
    got = read_out(out)
    assert list(got.columns) == ["path", "predicted", "prob_cat", "prob_dog"]
    assert len(got) == 22
    by_path = got.set_index("path")
    rows = by_path.loc[[str(listing.paths[i]) for i in val], ["prob_cat", "prob_dog"]]
    np.testing.assert_array_equal(rows.to_numpy(), expected.astype(np.float64))


def test_a_run_without_stored_preprocessing_is_rebuilt_from_its_data(penguins_ws, tmp_path):
    from engine.workspace import Workspace

    with Workspace(penguins_ws) as ws:
        stored = ws.get_run(1).dir / "preprocessing.json"
    assert json.loads(stored.read_text())["table"]["numeric"]  # written when the run started
    data = tmp_path / "d.csv"
    pd.read_csv(PENGUINS).head(30).to_csv(data, index=False)
    args = ["--data", str(data), "--workspace", str(penguins_ws)]
    assert main(["predict", "1", *args, "--out", str(tmp_path / "a.csv")]) == 0
    aside = stored.rename(stored.with_suffix(".aside"))
    try:  # a run recorded before runs stored it
        assert main(["predict", "1", *args, "--out", str(tmp_path / "b.csv")]) == 0
    finally:
        aside.rename(stored)
    pd.testing.assert_frame_equal(read_out(tmp_path / "a.csv"), read_out(tmp_path / "b.csv"))


def test_evaluate_data_judges_a_labelled_table_as_the_runs_own_validation_split(
        penguins_ws, tmp_path, capsys):
    """`evaluate --data`: the file's rows through the stored preprocessing give the very
    report of the run's validation split when they are those rows."""
    loaded = load_run_model(penguins_ws, 1)
    data = tmp_path / "labelled.csv"
    raw_val_rows(loaded.config, "species", True).assign(unused="x").to_csv(data, index=False)
    capsys.readouterr()
    assert main(["evaluate", "1", "--json", "--workspace", str(penguins_ws)]) == 0
    own = json.loads(capsys.readouterr().out)
    assert main(["evaluate", "1", "--data", str(data), "--json", "--workspace",
                 str(penguins_ws)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["confusion_matrix"] == own["confusion_matrix"]
    assert printed["accuracy"] == pytest.approx(own["accuracy"])
    assert printed["log_loss"] == pytest.approx(own["log_loss"], rel=1e-5)
    unlabelled = tmp_path / "unlabelled.csv"
    pd.read_csv(data).drop(columns=["species"]).to_csv(unlabelled, index=False)
    assert main(["evaluate", "1", "--data", str(unlabelled), "--workspace",
                 str(penguins_ws)]) == 2
    assert "has no column 'species'" in capsys.readouterr().err


def test_evaluate_data_reads_a_labelled_image_folder(tmp_path, capsys):
    folder = make_folder(tmp_path / "pets", per_class=8)
    config = tmp_path / "pets.toml"
    config.write_text(f'[data]\ndataset = "images:{folder}"\nimage_size = 12\n'
                      f'[model]\narch = "cnn"\nchannels = [4]\nhidden = [8]\n'
                      f'[train]\nepochs = 1\n')
    ws = tmp_path / "ws"
    train(ws, config)
    fresh = make_folder(tmp_path / "more", per_class=3, seed=5)
    capsys.readouterr()
    assert main(["evaluate", "1", "--data", str(fresh), "--json", "--workspace", str(ws)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert sum(map(sum, printed["confusion_matrix"])) == 6
    odd = make_folder(tmp_path / "zoo", per_class=2, classes=("cat", "emu"))
    assert main(["evaluate", "1", "--data", str(odd), "--workspace", str(ws)]) == 2
    assert "class 'emu' is not one the run learned (cat, dog)" in capsys.readouterr().err
