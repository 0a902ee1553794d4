"""Export of trained models: safetensors, torch.export programs (.pt2) and ONNX, each verified.

The public API; the compression panel and `torchwork export` both use it.
"""

from .feed import decode_outputs, onnx_meta, raw_inputs
from .formats import FORMATS, ONNX_EXTERNAL_DATA_BYTES, SUFFIXES, export_model
from .loading import (
    EXAMPLE_ROWS,
    LoadedRun,
    build_from_meta,
    load_run_model,
    model_meta,
    read_safetensors_meta,
    rebuild_from_safetensors,
    run_checkpoint,
)
from .report import ExportError, ExportInputError, ExportReport, VerificationError, human_size
from .verification import TOLERANCE, Verification, verify

__all__ = ["EXAMPLE_ROWS", "FORMATS", "ONNX_EXTERNAL_DATA_BYTES", "SUFFIXES", "TOLERANCE",
           "ExportError", "ExportInputError", "ExportReport", "LoadedRun", "Verification",
           "VerificationError", "build_from_meta", "decode_outputs", "export_model",
           "human_size", "load_run_model", "model_meta", "onnx_meta", "raw_inputs",
           "read_safetensors_meta", "rebuild_from_safetensors", "run_checkpoint", "verify"]
