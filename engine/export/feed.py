"""Feeding an exported model raw table rows: the run's preprocessing replayed from its JSON.

Every export carries the run's ``preprocessing`` in its metadata (the ONNX model
property ``torchwork``, the safetensors header, the .pt2 extra file). For a table
run it holds the fitted ColumnTransformer's state, so raw rows become the model's
input with numpy and pandas alone, no pickle and no scikit-learn objects:

    meta = onnx_meta("penguins.onnx")
    x = raw_inputs(meta, pandas.read_csv("new-penguins.csv"))
    out = onnxruntime.InferenceSession("penguins.onnx").run(None, {"input": x})[0]
    labels = decode_outputs(meta, out)

docs/export.md documents this path; a test runs it end to end.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from engine.data.preprocess import transform_frame
from engine.models.fit import META_KEY

from .report import ExportInputError


def onnx_meta(path: str | Path) -> dict:
    """The Torchwork metadata of an ONNX file written by `torchwork export`."""
    import onnxruntime

    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own classes for every bad file
        raise ExportInputError(f"cannot read {path} as ONNX: {exc}") from None
    text = session.get_modelmeta().custom_metadata_map.get(META_KEY)
    if text is None:
        raise ExportInputError(f"{path} carries no Torchwork metadata (model property "
                               f"{META_KEY!r}): export it with `torchwork export`")
    return json.loads(text)


def raw_inputs(meta: dict, frame: pd.DataFrame) -> np.ndarray:
    """Raw rows -> the float32 batch the exported model takes (``meta``: its metadata).

    A table run replays its fitted preprocessing (columns it did not see are
    ignored, a missing one is an error naming it); a built-in dataset's rows are
    its features in order, scaled with the stored mean and std.
    """
    pre = meta["preprocessing"]
    if "table" in pre:
        return transform_frame(pre["table"], frame)
    x = frame[pre["feature_names"]].to_numpy(dtype=np.float64)
    if pre.get("feature_mean") is not None:
        x = (x - np.asarray(pre["feature_mean"])) / np.asarray(pre["feature_std"])
    return x.astype(np.float32).reshape(-1, *pre["input_shape"])


def decode_outputs(meta: dict, outputs: np.ndarray) -> list:
    """Model outputs -> class names (classification) or values in the target's units."""
    pre = meta["preprocessing"]
    outputs = np.asarray(outputs)
    if meta["task"] == "regression":
        return (outputs[:, 0] * pre["target_std"] + pre["target_mean"]).tolist()
    names = pre["class_names"]
    index = (outputs[:, 0] > 0).astype(int) if outputs.shape[1] == 1 else outputs.argmax(1)
    return [names[i] for i in index]
