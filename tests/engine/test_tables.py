"""engine.data.tables: table files as data, and one clear line for each bad input."""

import os
import sys

import numpy as np
import pandas as pd
import pytest

from engine.cli import main
from engine.config import ConfigError, RunConfig
from engine.data import load_dataset
from engine.data.tables import decide_task, table_path


def table_config(path, **values) -> RunConfig:
    cfg = RunConfig()
    cfg.set("data.dataset", f"table:{path}")
    for key, value in {"data.target": "label", **values}.items():
        cfg.set(key.replace("__", "."), value)
    return cfg


def sample_frame(n=60, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    label = np.array(["a", "b", "c"])[np.arange(n) % 3]
    return pd.DataFrame({"x": rng.normal(size=n) + (label == "b") * 3,
                         "colour": rng.choice(["red", "green"], size=n),
                         "label": label})


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet"])
def test_each_format_loads_by_suffix(tmp_path, suffix):
    frame = sample_frame()
    path = tmp_path / f"data{suffix}"
    if suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_csv(path, sep="\t" if suffix == ".tsv" else ",", index=False)
    b = load_dataset(table_config(path))
    assert b.task == "classification" and b.class_names == ["a", "b", "c"]
    assert b.input_shape == (3,)  # x, and colour one-hot (green, red)
    assert len(b.x_train) + len(b.x_val) == 60


def test_packaged_penguins_csv_is_found_by_pkg_url():
    path = table_path("table:pkg://palmerpenguins/penguins.csv")
    assert path.is_file() and path.name == "penguins.csv"
    with pytest.raises(ConfigError, match="no installed package 'no_such_pkg'"):
        table_path("table:pkg://no_such_pkg/x.csv")


def test_features_select_columns_and_drop_columns_remove_them(tmp_path):
    path = tmp_path / "d.csv"
    sample_frame().assign(extra=1.0).to_csv(path, index=False)
    b = load_dataset(table_config(path, data__features=["x", "extra"]))
    assert b.preprocessing["columns"] == ["x", "extra"]
    b = load_dataset(table_config(path, preprocess__drop_columns=["colour"]))
    assert b.preprocessing["columns"] == ["x", "extra"]


def test_auto_task_rule_and_override():
    assert decide_task(pd.Series(["a", "b"], name="t"), "auto")[0] == "classification"
    assert decide_task(pd.Series([1, 2, 3, 1] * 5, name="t"), "auto")[0] == "classification"
    assert decide_task(pd.Series(np.arange(100), name="t"), "auto")[0] == "regression"
    assert decide_task(pd.Series([0.5, 1.5] * 5, name="t"), "auto")[0] == "regression"
    assert decide_task(pd.Series([1, 2] * 5, name="t"), "regression")[0] == "regression"


def test_auto_task_is_in_the_log_and_settles_the_loss(tmp_path):
    path = tmp_path / "r.csv"
    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    pd.DataFrame({"x": x, "label": 3 * x + 0.1 * rng.normal(size=200)}).to_csv(path, index=False)
    from engine.training import Trainer

    cfg = table_config(path, train__epochs=1, train__device="cpu")
    trainer = Trainer(cfg)
    assert trainer.task == "regression" and trainer.config.data.task == "regression"
    assert trainer.loss_fn.fn.__class__.__name__ == "MSELoss"
    assert any("task: regression (auto" in note for note in trainer.data.notes)


def write(tmp_path, text: str | bytes, name="bad.csv"):
    path = tmp_path / name
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    return path


def error_of(cfg) -> str:
    with pytest.raises(ConfigError) as info:
        load_dataset(cfg)
    return str(info.value)


def test_missing_file_names_it(tmp_path):
    msg = error_of(table_config(tmp_path / "nope.csv"))
    assert "nope.csv not found" in msg and "data.dataset" in msg


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0,
                    reason="permissions do not stop root")
def test_unreadable_file_names_it(tmp_path):
    path = write(tmp_path, "x,label\n1,a\n")
    path.chmod(0)
    try:
        msg = error_of(table_config(path))
    finally:
        path.chmod(0o600)
    assert f"cannot read table file {path}" in msg and "permissions" in msg


def test_a_folder_in_place_of_the_file(tmp_path):
    (tmp_path / "folder.csv").mkdir()
    msg = error_of(table_config(tmp_path / "folder.csv"))
    assert "cannot read table file" in msg and "is a folder" in msg


def test_empty_file(tmp_path):
    assert "is empty" in error_of(table_config(write(tmp_path, "")))


def test_header_only(tmp_path):
    msg = error_of(table_config(write(tmp_path, "x,label\n")))
    assert "has a header but no data rows" in msg and "bad.csv" in msg


@pytest.mark.parametrize("row", ["1,2,a", "1"])  # too many fields, too few
def test_ragged_row_gives_its_line_number(tmp_path, row):
    path = write(tmp_path, "x,y,label\n" + "1,2,a\n" * 3 + row.replace("1,2,a", "1,2,a,9")
                 + "\n" + "1,2,b\n")
    msg = error_of(table_config(path))
    assert f"{path} line 5 has" in msg and "header has 3" in msg


def test_wrong_encoding_gives_line(tmp_path):
    path = write(tmp_path, "x,label\n1,a\n2,caf\xe9\n".encode("latin-1"))
    msg = error_of(table_config(path))
    assert "is not UTF-8 text (line 3" in msg and "save it as UTF-8" in msg


def test_missing_target_suggests_the_close_column(tmp_path):
    path = write(tmp_path, "x,Species\n1,a\n2,b\n")
    msg = error_of(table_config(path, data__target="species"))
    assert "data.target='species'" in msg and "did you mean 'Species'?" in msg


def test_entirely_empty_feature_column(tmp_path):
    path = write(tmp_path, "x,blank,label\n" + "1,,a\n2,,b\n" * 10)
    msg = error_of(table_config(path))
    assert "feature column 'blank'" in msg and "is empty" in msg and "drop_columns" in msg


def test_non_numeric_target_for_regression(tmp_path):
    path = write(tmp_path, "x,label\n" + "1,a\n2,b\n" * 10)
    msg = error_of(table_config(path, data__task="regression"))
    assert "needs a numeric target" in msg and "'label'" in msg and "classification" in msg


def test_too_few_rows_of_a_class_for_the_split(tmp_path):
    path = write(tmp_path, "x,label\n" + "1,a\n2,b\n" * 10 + "3,c\n")
    msg = error_of(table_config(path))
    assert "class 'c'" in msg and "only 1 sample" in msg and "add rows of that class" in msg


def test_rows_with_missing_target_are_dropped_and_counted(tmp_path):
    path = write(tmp_path, "x,label\n" + "1,a\n2,b\n" * 10 + "3,\n4,\n")
    b = load_dataset(table_config(path))
    assert len(b.x_train) + len(b.x_val) == 20
    assert any("dropped 2 row(s)" in note and "target 'label' is missing" in note
               for note in b.notes)


def test_cli_refuses_a_bad_table_before_creating_a_run(tmp_path, capsys):
    write(tmp_path, "x,label\n1,a\n2,b\n", name="t.csv")
    config = tmp_path / "run.toml"
    config.write_text('[data]\ndataset = "table:t.csv"\ntarget = "labl"\n')
    ws = tmp_path / "ws"
    assert main(["run", str(config), "--workspace", str(ws)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "did you mean 'label'?" in err
    assert not (ws / "runs").exists() or not any((ws / "runs").iterdir())


def test_relative_table_path_resolves_beside_the_config(tmp_path, monkeypatch):
    folder = tmp_path / "project"
    folder.mkdir()
    sample_frame().to_csv(folder / "t.csv", index=False)
    (folder / "run.toml").write_text('[data]\ndataset = "table:t.csv"\ntarget = "label"\n'
                                     '[train]\nepochs = 1\ndevice = "cpu"\n')
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(folder / "run.toml"), "--workspace", str(tmp_path / "ws")]) == 0
    from engine.workspace import Workspace

    with Workspace(tmp_path / "ws") as ws:
        stored = ws.get_run(1).config
    assert stored.data.dataset == f"table:{folder / 't.csv'}"  # resumable from anywhere
    assert stored.data.task == "classification"  # what data.task = 'auto' decided


def test_a_table_run_is_named_after_its_file():
    from engine.workspace.records import default_run_name

    cfg = table_config("/data/penguins.csv")
    assert default_run_name(cfg) == "penguins-mlp"
    cfg.set("data.dataset", "table:pkg://palmerpenguins/penguins.csv")
    assert default_run_name(cfg) == "penguins-mlp"


def test_task_rules_are_checked_once_the_data_decided_the_task(tmp_path):
    path = write(tmp_path, "x,label\n" + "".join(f"{i},{i * 1.5}\n" for i in range(40)))
    cfg = table_config(path, regularization__early_stopping_metric="val_accuracy")
    cfg.validate()  # data.task = 'auto': the file decides, so validation cannot know yet
    msg = error_of(cfg)
    assert "early_stopping_metric='val_accuracy' is not measured for regression" in msg


def test_read_head_reads_the_first_rows_of_csv_and_parquet(tmp_path):
    from engine.data.tables import read_head

    frame = pd.DataFrame({"a": range(1000), "b": ["x", None] * 500})
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_parquet(tmp_path / "t.parquet")
    for name in ("t.csv", "t.parquet"):
        head, more = read_head(tmp_path / name, 10)
        assert list(head["a"]) == list(range(10)) and more, name
        assert head["b"].isna().sum() == 5, name
        whole, more = read_head(tmp_path / name, 5000)
        assert len(whole) == 1000 and not more, name


def test_read_head_names_a_missing_or_header_only_file(tmp_path):
    from engine.data.tables import read_head

    with pytest.raises(ConfigError, match="nothere.csv not found"):
        read_head(tmp_path / "nothere.csv", 10)
    (tmp_path / "h.csv").write_text("a,b\n")
    with pytest.raises(ConfigError, match="header but no data rows"):
        read_head(tmp_path / "h.csv", 10)
