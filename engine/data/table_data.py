"""A table file as a run's data: read, clean, split, then preprocessing fitted on train.

Row filters that need no statistic (missing target, duplicates, numeric_impute =
drop_rows) come before the split; everything fitted (imputation values, clip
bounds, scaling, categories) is fitted on the training rows alone, through one
ColumnTransformer whose state is stored as JSON (engine.data.preprocess).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.config import ConfigError, RunConfig

from .datasets import DataBundle, _features, _targets, scale_target, split_rows
from .preprocess import as_categories, build_transformer, fitted_state, split_columns
from .tables import Table, load_table, read_table, select, table_path


def load_table_dataset(cfg: RunConfig) -> DataBundle:
    d, pre = cfg.data, cfg.preprocess
    table = load_table(d, pre)
    frame, notes = _clean(table, pre)
    task, target = table.task, table.target
    classification = task == "classification"
    problems = cfg.task_errors(task)
    if problems:
        raise ConfigError(problems)
    class_names = None
    if classification:
        y, class_names = _encode_classes(frame[target])
    else:
        y = frame[target].to_numpy(dtype=np.float64)
    test_frame = _test_table(cfg, table) if d.test_path else None
    groups = frame[table.group].astype(str).to_numpy() if table.group else None
    train, val, test = split_rows(
        cfg, y, class_names, test_fraction=0.0 if test_frame is not None else None,
        too_few="add rows of that class to the file, or remove its rows", groups=groups)
    numeric, categorical = split_columns(frame, table.features)
    features = as_categories(frame[table.features], categorical)
    ct = build_transformer(pre, numeric, categorical)
    x_tr = ct.fit_transform(features.iloc[train])
    x_va = ct.transform(features.iloc[val])
    x_te = y_te = None
    if test is not None:
        x_te, y_te = ct.transform(features.iloc[test]), y[test]
    elif test_frame is not None:
        x_te = ct.transform(as_categories(test_frame[table.features], categorical))
        y_te = (_test_classes(test_frame[target], class_names, d.test_path) if classification
                else test_frame[target].to_numpy(dtype=np.float64))
    y_tr, y_va = y[train], y[val]
    target_mean, target_std = 0.0, 1.0
    if not classification:
        target_mean, target_std, (y_tr, y_va, y_te) = scale_target(y_tr, y_va, y_te)
    state = fitted_state(ct, pre, numeric, categorical)
    shape = (x_tr.shape[1],)
    notes.append(f"{len(train)} training, {len(val)} validation"
                 + (f", {len(y_te)} test" if y_te is not None else "") + f" rows; "
                 f"{len(table.features)} columns -> {shape[0]} model inputs")
    preprocessing = {
        "dataset": d.dataset, "task": task, "input_shape": list(shape),
        "feature_names": state["output_names"], "feature_mean": None, "feature_std": None,
        "target_mean": target_mean, "target_std": target_std, "class_names": class_names,
        "target": target, "columns": list(table.features), "table": state,
    }
    return DataBundle(
        x_train=_features(x_tr, shape), y_train=_targets(y_tr, classification),
        x_val=_features(x_va, shape), y_val=_targets(y_va, classification),
        input_shape=shape, task=task, num_classes=len(class_names) if classification else None,
        class_names=class_names, feature_names=state["output_names"],
        target_mean=target_mean, target_std=target_std, preprocessing=preprocessing,
        x_test=None if x_te is None else _features(x_te, shape),
        y_test=None if y_te is None else _targets(y_te, classification), notes=notes)


def _clean(table: Table, pre) -> tuple[pd.DataFrame, list[str]]:
    """Drop duplicate rows and (numeric_impute = drop_rows) rows missing a number: row
    filters that fit nothing, so they may see every row."""
    frame, notes = table.frame, list(table.notes)
    if pre.duplicates == "drop":
        before = len(frame)
        frame = frame.drop_duplicates()
        if len(frame) < before:
            notes.append(f"dropped {before - len(frame)} duplicate row(s)")
    if pre.numeric_impute == "drop_rows":
        numeric, _ = split_columns(frame, table.features)
        keep = frame[numeric].notna().all(axis=1)
        if not keep.all():
            notes.append(f"dropped {int((~keep).sum())} row(s) missing a number "
                         f"(preprocess.numeric_impute = 'drop_rows')")
            frame = frame[keep]
    return frame.reset_index(drop=True), notes


def _encode_classes(target: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Class indices and names in sorted order (numbers numerically, text alphabetically)."""
    values = target.to_numpy()
    if pd.api.types.is_numeric_dtype(target) and not pd.api.types.is_bool_dtype(target):
        uniques, codes = np.unique(values.astype(np.float64), return_inverse=True)
        names = [str(int(u)) if float(u).is_integer() else str(u) for u in uniques]
    else:
        uniques, codes = np.unique(values.astype(str), return_inverse=True)
        names = [str(u) for u in uniques]
    return codes.astype(np.int64), names


def _test_classes(target: pd.Series, class_names: list[str], path: str) -> np.ndarray:
    codes, names = _encode_classes(target)
    index = {name: i for i, name in enumerate(class_names)}
    unseen = [n for n in names if n not in index]
    if unseen:
        raise ConfigError(f"data.test_path {path}: class {unseen[0]!r} of the target never "
                          f"occurs in the training table, so the model cannot predict it: "
                          f"remove those rows or add them to the training table")
    return np.array([index[names[c]] for c in codes], dtype=np.int64)


def _test_table(cfg: RunConfig, table: Table) -> pd.DataFrame:
    """The data.test_path table: the training table's feature and target columns."""
    path = table_path(cfg.data.test_path)
    frame = read_table(path, columns=[*table.features, table.target])
    tested = select(frame, path, cfg.data, cfg.preprocess)
    absent = [c for c in table.features if c not in tested.features]
    if absent:
        raise ConfigError(f"data.test_path {path} lacks column {absent[0]!r} of the training "
                          f"table: the test table needs the same columns")
    return tested.frame
