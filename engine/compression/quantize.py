"""int8 dynamic quantization: of the PyTorch model (torchao) and of its ONNX export (ONNX Runtime).

Dynamic quantization stores weights as int8 and quantizes activations on the
fly, so it needs no calibration data. torchao's int8 configs replace the
weights of Linear layers only; ONNX Runtime also quantizes convolutions. Which
is faster depends on the machine and the model, so callers measure both
(engine.compression.measure) rather than guess.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from pathlib import Path

from torch import nn

from engine.files import atomic_path

from .errors import CompressionError

TARGETS = ("torch", "onnx", "none")


def quantize_torch(model: nn.Module) -> nn.Module:
    """An int8-dynamic copy of ``model`` (torchao Int8DynamicActivationInt8WeightConfig)."""
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

    if not any(isinstance(m, nn.Linear) for m in model.modules()):
        raise CompressionError(f"torchao int8 quantization applies to Linear layers and "
                               f"{type(model).__name__} has none: quantize the ONNX export "
                               f"instead (--quantize onnx)")
    model = copy.deepcopy(model).cpu().eval()
    quantize_(model, Int8DynamicActivationInt8WeightConfig())
    return model


# Which ONNX operators quantize_dynamic may turn into int8 ones. ConvInteger is
# slow on many CPUs (int8 convolutions without a fused kernel), so "linear"
# quantizes only MatMul/Gemm; callers measure both and keep the faster.
ONNX_OPS = {"all": None, "linear": ["MatMul", "Gemm"]}


def quantize_onnx(source: str | Path, out_path: str | Path, ops: str = "all") -> Path:
    """Write an int8 copy of the ONNX model ``source`` to ``out_path``; nothing half-written.

    Weights of the ``ops`` operators (see ONNX_OPS) become signed int8 (QInt8);
    the quantized model keeps its weights inside the one file. ONNX Runtime's
    quant_pre_process is not run: it cannot read the external-data files the
    torch.export-based exporter writes. The exporter's intermediate shapes
    (``value_info``) are dropped first and inferred again by the quantizer:
    torch 2.11's exporter wrote some that onnxruntime 1.30 found at odds with
    the weights (seen on a GPU machine's stack), and the quantization failed.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source, out_path = Path(source), Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(out_path) as tmp:
            model = onnx.load(str(source))  # with its external data
            del model.graph.value_info[:]
            with _quiet_root_logger():
                quantize_dynamic(model, tmp, weight_type=QuantType.QInt8,
                                 op_types_to_quantize=ONNX_OPS[ops])
    except Exception as exc:
        raise CompressionError(f"ONNX Runtime could not quantize {source.name} "
                               f"({type(exc).__name__}: {exc})") from exc
    return out_path


@contextlib.contextmanager
def _quiet_root_logger():
    """quantize_dynamic logs advice about pre-processing on the root logger; keep it off."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)
