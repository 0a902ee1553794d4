"""One scikit-learn ColumnTransformer from ``[preprocess]``, and its fitted state as JSON.

scikit-learn fits the statistics (imputation values, clip bounds, scaler
parameters, category lists) on the training rows. ``fitted_state`` copies them
out as plain JSON, stored with the run and with every export; ``transform_frame``
replays the transform from that JSON alone with the same arithmetic, so
evaluate, predict and an ONNX model fed raw columns see exactly what training
saw, and no pickle is ever written or loaded.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, RobustScaler, StandardScaler

STATE_FORMAT = "torchwork.table-preprocessing"
SCALERS = {"standard": StandardScaler, "minmax": MinMaxScaler, "robust": RobustScaler}


class Clip(TransformerMixin, BaseEstimator):
    """Clip each column to bounds fitted on the rows it is fitted on (the training split)."""

    def __init__(self, how: str = "clip_iqr", factor: float = 1.5, low: float = 0.01,
                 high: float = 0.99):
        self.how, self.factor, self.low, self.high = how, factor, low, high

    def fit(self, x, y=None):
        x = np.asarray(x, dtype=np.float64)
        if self.how == "clip_iqr":
            q1, q3 = np.quantile(x, [0.25, 0.75], axis=0)
            self.lower_, self.upper_ = q1 - self.factor * (q3 - q1), q3 + self.factor * (q3 - q1)
        else:
            self.lower_, self.upper_ = np.quantile(x, [self.low, self.high], axis=0)
        return self

    def transform(self, x):
        return np.clip(np.asarray(x, dtype=np.float64), self.lower_, self.upper_)

    def get_feature_names_out(self, input_features=None):
        return np.asarray(input_features, dtype=object)


def split_columns(frame: pd.DataFrame, features: list[str]) -> tuple[list[str], list[str]]:
    """(numeric, categorical) feature columns: a number column is numeric, anything else
    (text, booleans) is a category."""
    numeric = [c for c in features if pd.api.types.is_numeric_dtype(frame[c])
               and not pd.api.types.is_bool_dtype(frame[c])]
    return numeric, [c for c in features if c not in numeric]


def as_categories(frame: pd.DataFrame, categorical: list[str]) -> pd.DataFrame:
    """Category columns as Python strings with NaN for missing, as the encoder and the
    JSON replay both read them (a text column already is; booleans and others become text)."""
    out = {}
    for c in categorical:
        col = frame[c]
        if pd.api.types.is_string_dtype(col) and col.dtype != object:
            out[c] = col.astype(object)
        else:
            out[c] = col.map(_text, na_action="ignore").astype(object)
            out[c] = out[c].where(col.notna(), np.nan)
    return frame.assign(**out) if out else frame


def _text(value) -> str:
    return str(value)


def build_transformer(pre, numeric: list[str], categorical: list[str]) -> ColumnTransformer:
    """The ColumnTransformer ``pre`` (a PreprocessConfig) describes; numeric block first."""
    steps = []
    if pre.numeric_impute != "drop_rows":  # those rows are gone before the split
        strategy = pre.numeric_impute
        steps.append(("impute", SimpleImputer(strategy=strategy, fill_value=pre.numeric_fill,
                                              keep_empty_features=True)))
    if pre.outliers != "none":
        steps.append(("clip", Clip(pre.outliers, pre.iqr_factor, pre.quantile_low,
                                   pre.quantile_high)))
    if pre.scaling != "none":
        steps.append(("scale", SCALERS[pre.scaling]()))
    encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False,
                            min_frequency=pre.min_frequency if pre.min_frequency > 1 else None)
    cat_steps = [("impute", SimpleImputer(strategy=pre.categorical_impute,
                                          fill_value=pre.categorical_fill,
                                          keep_empty_features=True)),
                 ("onehot", encoder)]
    parts = []
    if numeric:
        parts.append(("numeric", Pipeline(steps) if steps else "passthrough", numeric))
    if categorical:
        parts.append(("categorical", Pipeline(cat_steps), categorical))
    return ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0)


def fitted_state(ct: ColumnTransformer, pre, numeric: list[str],
                 categorical: list[str]) -> dict[str, Any]:
    """The fitted parameters of ``ct`` as plain JSON: everything ``transform_frame`` needs."""
    state: dict[str, Any] = {"format": STATE_FORMAT, "version": 1, "numeric": numeric,
                             "categorical": categorical, "numeric_impute": pre.numeric_impute}
    if numeric:
        pipe = ct.named_transformers_["numeric"]
        named = pipe.named_steps if isinstance(pipe, Pipeline) else {}  # else passthrough
        if "impute" in named:
            state["fill"] = named["impute"].statistics_.tolist()
        if "clip" in named:
            state["clip"] = [named["clip"].lower_.tolist(), named["clip"].upper_.tolist()]
        if "scale" in named:
            state["scale"] = _scaler_state(named["scale"])
    if categorical:
        pipe = ct.named_transformers_["categorical"]
        enc = pipe.named_steps["onehot"]
        infrequent = enc.infrequent_categories_ if enc.min_frequency else [None] * len(categorical)
        state["categorical_fill"] = [str(v) for v in pipe.named_steps["impute"].statistics_]
        state["categories"] = [[str(v) for v in cats] for cats in enc.categories_]
        state["infrequent"] = [[] if inf is None else [str(v) for v in inf]
                               for inf in infrequent]
    state["output_names"] = [str(n) for n in ct.get_feature_names_out()]
    return state


def _scaler_state(scaler) -> dict[str, Any]:
    """x -> (x - sub) / div (standard, robust) or x * mul + add (minmax): sklearn's own
    arithmetic, so the replay gives the same bits."""
    if isinstance(scaler, MinMaxScaler):
        return {"kind": "minmax", "mul": scaler.scale_.tolist(), "add": scaler.min_.tolist()}
    if isinstance(scaler, StandardScaler):
        return {"kind": "standard", "sub": scaler.mean_.tolist(), "div": scaler.scale_.tolist()}
    return {"kind": "robust", "sub": scaler.center_.tolist(), "div": scaler.scale_.tolist()}


class ReplayError(ValueError):
    """Rows the stored preprocessing cannot transform; the message names the column."""


def transform_frame(state: dict[str, Any], frame: pd.DataFrame) -> np.ndarray:
    """Raw table rows -> the float32 matrix the model was trained on, from the JSON ``state``
    alone (``preprocessing["table"]`` of a run or an export). Columns the run did not see
    are ignored; a missing one raises ReplayError naming it."""
    if state.get("format") != STATE_FORMAT:
        raise ReplayError("this preprocessing state is not a table's (no 'format': "
                          f"{STATE_FORMAT!r})")
    numeric, categorical = state["numeric"], state["categorical"]
    absent = [c for c in [*numeric, *categorical] if c not in frame.columns]
    if absent:
        raise ReplayError(f"the rows lack column {absent[0]!r}, which the model was trained "
                          f"on (it needs {', '.join([*numeric, *categorical])})")
    blocks = []
    if numeric:
        x = frame[numeric].to_numpy(dtype=np.float64, na_value=np.nan)
        gaps = np.isnan(x)
        if "fill" in state:
            x = np.where(gaps, np.asarray(state["fill"]), x)
        elif gaps.any():  # numeric_impute = drop_rows: training never saw such a row
            column = numeric[int(np.argwhere(gaps)[0][1])]
            raise ReplayError(f"column {column!r} has missing values, and the run dropped such "
                              f"rows (preprocess.numeric_impute = 'drop_rows'): fill them")
        if "clip" in state:
            x = np.clip(x, np.asarray(state["clip"][0]), np.asarray(state["clip"][1]))
        scale = state.get("scale")
        if scale is not None and scale["kind"] == "minmax":
            x = x * np.asarray(scale["mul"]) + np.asarray(scale["add"])
        elif scale is not None:
            x = (x - np.asarray(scale["sub"])) / np.asarray(scale["div"])
        blocks.append(x)
    if categorical:
        cats = as_categories(frame[categorical], categorical)
        for i, column in enumerate(categorical):
            blocks.append(_one_hot(cats[column], state["categorical_fill"][i],
                                   state["categories"][i], state["infrequent"][i]))
    return np.ascontiguousarray(np.hstack(blocks), dtype=np.float32)


def _one_hot(values: pd.Series, fill: str, categories: list[str],
             infrequent: list[str]) -> np.ndarray:
    """Frequent categories in the encoder's order, then one shared column for the rare ones;
    a category never seen in training is all zeros (handle_unknown='ignore')."""
    values = values.where(values.notna(), fill).to_numpy(dtype=object)
    rare = [c for c in infrequent]
    frequent = [c for c in categories if c not in set(rare)]
    column = np.array([*range(len(frequent)), *[len(frequent)] * len(rare)], dtype=np.int64)
    position = pd.Index([*frequent, *rare], dtype=object).get_indexer(values)
    out = np.zeros((len(values), len(frequent) + (1 if rare else 0)))
    hit = np.flatnonzero(position >= 0)
    out[hit, column[position[hit]]] = 1.0
    return out
