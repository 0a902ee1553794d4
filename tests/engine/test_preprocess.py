"""engine.data.preprocess: each [preprocess] option, fitted on training rows only, and the
JSON replay that export, evaluate and predict use."""

import json

import numpy as np
import pandas as pd
import pytest

from engine.config import RunConfig
from engine.data import load_dataset
from engine.data.datasets import split_rows
from engine.data.preprocess import (
    ReplayError,
    as_categories,
    build_transformer,
    fitted_state,
    split_columns,
    transform_frame,
)


def pre(**values):
    cfg = RunConfig()
    for key, value in values.items():
        cfg.set(f"preprocess.{key}", value)
    return cfg.preprocess


TRAIN = pd.DataFrame({"n": [1.0, 2.0, np.nan, 4.0, 100.0],
                      "c": ["a", "a", np.nan, "b", "z"]})


def fit(frame=TRAIN, **values):
    p = pre(**values)
    numeric, categorical = split_columns(frame, list(frame.columns))
    ct = build_transformer(p, numeric, categorical)
    ct.fit(as_categories(frame, categorical))
    state = json.loads(json.dumps(fitted_state(ct, p, numeric, categorical)))  # plain JSON
    return ct, state


def replay(state, rows):
    return transform_frame(state, pd.DataFrame(rows))


@pytest.mark.parametrize("how, fill", [("mean", 26.75), ("median", 3.0), ("constant", -1.0)])
def test_numeric_imputation(how, fill):
    _, state = fit(numeric_impute=how, numeric_fill=-1.0, scaling="none")
    out = replay(state, {"n": [np.nan], "c": ["a"]})
    assert out[0, 0] == pytest.approx(fill)


def test_drop_rows_refuses_a_missing_number_at_replay():
    _, state = fit(TRAIN.dropna(), numeric_impute="drop_rows", scaling="none")
    with pytest.raises(ReplayError, match="column 'n' has missing values.*drop_rows"):
        replay(state, {"n": [np.nan], "c": ["a"]})


def test_clip_iqr_bounds_from_training_rows():
    _, state = fit(outliers="clip_iqr", iqr_factor=1.0, scaling="none", numeric_impute="median")
    q1, q3 = np.quantile([1.0, 2.0, 3.0, 4.0, 100.0], [0.25, 0.75])  # median-filled train
    assert state["clip"] == [[q1 - (q3 - q1)], [q3 + (q3 - q1)]]
    assert replay(state, {"n": [1e6], "c": ["a"]})[0, 0] == pytest.approx(q3 + (q3 - q1))


def test_clip_quantile_bounds():
    _, state = fit(outliers="clip_quantile", quantile_low=0.1, quantile_high=0.9,
                   scaling="none", numeric_impute="median")
    low, high = np.quantile([1.0, 2.0, 3.0, 4.0, 100.0], [0.1, 0.9])
    assert replay(state, {"n": [-50.0, 500.0], "c": ["a", "a"]})[:, 0] == \
        pytest.approx([low, high])


@pytest.mark.parametrize("scaling, expected", [
    ("standard", lambda v: (v - v.mean()) / v.std()),
    ("minmax", lambda v: (v - v.min()) / (v.max() - v.min())),
    ("robust", lambda v: (v - np.median(v)) / (np.quantile(v, 0.75) - np.quantile(v, 0.25))),
    ("none", lambda v: v),
])
def test_scaling(scaling, expected):
    frame = pd.DataFrame({"n": [1.0, 2.0, 3.0, 4.0, 10.0]})
    _, state = fit(frame, scaling=scaling)
    values = frame["n"].to_numpy()
    assert replay(state, frame)[:, 0] == pytest.approx(expected(values).astype(np.float32))


def test_categorical_most_frequent_and_constant():
    _, state = fit(scaling="none")
    assert state["categories"] == [["a", "b", "z"]]
    assert replay(state, {"n": [1.0], "c": [np.nan]})[0, 1:].tolist() == [1, 0, 0]
    _, state = fit(scaling="none", categorical_impute="constant", categorical_fill="?")
    assert state["categories"] == [["?", "a", "b", "z"]]
    assert replay(state, {"n": [1.0], "c": [np.nan]})[0, 1:].tolist() == [1, 0, 0, 0]


def test_unknown_category_is_all_zeros_and_rare_ones_share_a_column():
    _, state = fit(scaling="none", min_frequency=2)  # a: 3 (with the fill), b: 1, z: 1
    assert state["infrequent"] == [["b", "z"]]
    out = replay(state, {"n": [1.0] * 3, "c": ["a", "z", "never-seen"]})
    assert out[:, 1:].tolist() == [[1, 0], [0, 1], [0, 0]]


def test_columns_the_run_did_not_see_are_ignored_and_a_missing_one_is_named():
    _, state = fit(scaling="none")
    assert replay(state, {"extra": [5], "n": [1.0], "c": ["a"]}).shape == (1, 4)
    with pytest.raises(ReplayError, match="lack column 'c'"):
        replay(state, {"n": [1.0]})


def write_table(tmp_path, n=120, seed=0):
    rng = np.random.default_rng(seed)
    label = np.array(["p", "q"])[np.arange(n) % 2]
    frame = pd.DataFrame({
        "a": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
        "b": rng.exponential(size=n) * 10,
        "colour": np.where(rng.random(n) < 0.1, None,
                           rng.choice(["red", "green", "blue", "teal"], p=[.5, .3, .15, .05],
                                      size=n)),
        "label": label})
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    return path, frame


def table_cfg(path, **values):
    cfg = RunConfig()
    cfg.set("data.dataset", f"table:{path}")
    cfg.set("data.target", "label")
    for key, value in values.items():
        cfg.set(key, value)
    return cfg


@pytest.mark.parametrize("options", [
    {},
    {"preprocess.scaling": "minmax", "preprocess.outliers": "clip_iqr",
     "preprocess.numeric_impute": "median", "preprocess.min_frequency": 10},
    {"preprocess.scaling": "robust", "preprocess.outliers": "clip_quantile",
     "preprocess.numeric_impute": "constant", "preprocess.categorical_impute": "constant"},
])
def test_json_replay_equals_the_fitted_transformer_on_validation_rows(tmp_path, options):
    path, frame = write_table(tmp_path)
    cfg = table_cfg(path, **options)
    b = load_dataset(cfg)
    state = json.loads(json.dumps(b.preprocessing["table"]))
    y = (frame["label"] == "q").to_numpy().astype(np.int64)
    _, val, _ = split_rows(cfg, y, ["p", "q"])
    replayed = transform_frame(state, frame.iloc[val])
    np.testing.assert_array_equal(replayed, b.x_val.numpy())


def test_validation_rows_never_reach_a_fitted_statistic(tmp_path):
    path, frame = write_table(tmp_path)
    cfg = table_cfg(path, **{"preprocess.outliers": "clip_iqr", "preprocess.min_frequency": 3})
    before = load_dataset(cfg).preprocessing["table"]
    y = (frame["label"] == "q").to_numpy().astype(np.int64)
    _, val, _ = split_rows(cfg, y, ["p", "q"])
    poisoned = frame.copy()  # the same labels, so the same split; wild validation rows
    poisoned.loc[val, "a"] = 1e9
    poisoned.loc[val, "b"] = np.nan
    poisoned.loc[val, "colour"] = "violet"
    poisoned.to_csv(path, index=False)
    after = load_dataset(cfg).preprocessing["table"]
    assert after == before


def test_duplicate_rows_dropped_or_kept(tmp_path):
    path = tmp_path / "d.csv"
    pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0] * 10,
                  "label": ["a", "b"] * 20}).to_csv(path, index=False)
    kept = load_dataset(table_cfg(path))
    dropped = load_dataset(table_cfg(path, **{"preprocess.duplicates": "drop",
                                              "data.val_fraction": 0.5}))
    assert len(kept.x_train) + len(kept.x_val) == 40
    assert len(dropped.x_train) + len(dropped.x_val) == 4
    assert any("dropped 36 duplicate" in note for note in dropped.notes)


def test_drop_rows_drops_rows_missing_a_number(tmp_path):
    path, frame = write_table(tmp_path)
    b = load_dataset(table_cfg(path, **{"preprocess.numeric_impute": "drop_rows"}))
    assert len(b.x_train) + len(b.x_val) == frame["a"].notna().sum()
    assert not np.isnan(b.x_train.numpy()).any()
