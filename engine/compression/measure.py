"""The before/after table: one row per candidate model, every figure measured, none estimated.

Latency is the median of timed repeats after a warm-up, on the CPU, at batch 1
(interactive use) and batch 64 (throughput). PyTorch models run under
``torch.inference_mode``; ONNX files run in an ONNX Runtime session. The
validation metric is the one the run reports: accuracy for classification,
R2 for regression (both higher-is-better, so the sweep's Pareto front reads
the same way for both).
"""

from __future__ import annotations

import io
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch_pruning as tp
from sklearn import metrics as skm
from torch import nn

from .prune import count_params, count_zeros

LATENCY_BATCHES = (1, 64)


@dataclass(frozen=True)
class Candidate:
    """Plain numbers about one model, safe to hand to another thread or print as JSON."""

    name: str
    runtime: str  # "torch" | "onnxruntime"
    params: int
    nonzero: int
    size_bytes: int
    macs: int
    latency_b1_ms: float
    latency_b64_ms: float
    metric_name: str
    metric: float
    ratio: float = 0.0  # pruning ratio it was made with (0 for the original)
    path: str | None = None  # the file it was measured from, when it has one

    def to_dict(self) -> dict:
        return asdict(self)


def state_dict_bytes(model: nn.Module) -> int:
    """Size of ``torch.save(model.state_dict())``: what a checkpoint of the model weighs."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell()


def file_bytes(path: str | Path, extra_files: tuple[str, ...] = ()) -> int:
    return Path(path).stat().st_size + sum(Path(f).stat().st_size for f in extra_files)


def count_macs(model: nn.Module, example: torch.Tensor) -> int:
    """Multiply-accumulates of one sample's forward pass (Torch-Pruning's counter)."""
    macs, _ = tp.utils.count_ops_and_params(model, example[:1])
    return int(macs)


def median_ms(fn: Callable[[], object], repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def batch_of(x_val: torch.Tensor, size: int) -> torch.Tensor:
    """``size`` validation samples (repeated when the split is smaller)."""
    reps = -(-size // len(x_val))
    return x_val.repeat(reps, *([1] * (x_val.ndim - 1)))[:size].contiguous()


def score(outputs: np.ndarray, y_val: np.ndarray, task: str) -> tuple[str, float]:
    if task == "classification":
        pred = (outputs[:, 0] > 0).astype(np.int64) if outputs.shape[1] == 1 \
            else outputs.argmax(axis=1)
        return "val_accuracy", float(skm.accuracy_score(y_val, pred))
    return "val_r2", float(skm.r2_score(y_val, outputs[:, 0]))


def torch_predictor(model: nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    model = model.eval()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x)).float().numpy()
    return run


def onnx_predictor(path: str | Path) -> Callable[[np.ndarray], np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def measure(name: str, predictor: Callable[[np.ndarray], np.ndarray], *, runtime: str,
            params: int, nonzero: int, size_bytes: int, macs: int, x_val: torch.Tensor,
            y_val: torch.Tensor, task: str, ratio: float = 0.0, path: str | None = None,
            repeats: int = 30) -> Candidate:
    """Time ``predictor`` at each of LATENCY_BATCHES and score it on the validation split."""
    latency = [median_ms(lambda b=batch_of(x_val, n).numpy(): predictor(b), repeats)
               for n in LATENCY_BATCHES]
    x = x_val.numpy()
    outputs = np.concatenate([predictor(x[i:i + 512]) for i in range(0, len(x), 512)])
    metric_name, metric = score(outputs, y_val.numpy(), task)
    return Candidate(name, runtime, params, nonzero, size_bytes, macs, latency[0], latency[1],
                     metric_name, metric, ratio, path)


def measure_torch(name: str, model: nn.Module, *, macs: int, x_val, y_val, task: str,
                  ratio: float = 0.0, counts_from: nn.Module | None = None,
                  repeats: int = 30) -> Candidate:
    """A PyTorch candidate: size from its state_dict. MACs are given, and a quantized model
    reports the parameters of ``counts_from``, its float original: Torch-Pruning's counter
    and comparisons cannot run on torchao's int8 tensors."""
    counted = counts_from if counts_from is not None else model
    params = count_params(counted)
    return measure(name, torch_predictor(model), runtime="torch", params=params,
                   nonzero=params - count_zeros(counted), size_bytes=state_dict_bytes(model),
                   macs=macs, x_val=x_val, y_val=y_val, task=task, ratio=ratio,
                   repeats=repeats)


def measure_onnx(name: str, path: str | Path, *, params: int, nonzero: int, macs: int,
                 x_val, y_val, task: str, ratio: float = 0.0,
                 extra_files: tuple[str, ...] = (), repeats: int = 30) -> Candidate:
    """An ONNX candidate: size is the .onnx plus its external-data files."""
    return measure(name, onnx_predictor(path), runtime="onnxruntime", params=params,
                   nonzero=nonzero, size_bytes=file_bytes(path, extra_files), macs=macs,
                   x_val=x_val, y_val=y_val, task=task, ratio=ratio, path=str(path),
                   repeats=repeats)


def format_table(candidates: list[Candidate]) -> str:
    """A markdown table, as the CLI and bench/compression.py print it."""
    head = ("| candidate | runtime | params | non-zero | size | MACs | latency b1 | latency b64 "
            "| metric |")
    rows = [head, "|" + "---|" * 9]
    for c in candidates:
        rows.append(f"| {c.name} | {c.runtime} | {c.params:,} | {c.nonzero:,} | "
                    f"{human_bytes(c.size_bytes)} | {c.macs / 1e6:.3f} M | "
                    f"{c.latency_b1_ms:.3f} ms | {c.latency_b64_ms:.3f} ms | "
                    f"{metric_text(c)} |")
    return "\n".join(rows)


def metric_text(c: Candidate) -> str:
    if c.metric_name == "val_accuracy":
        return f"{c.metric * 100:.2f}% acc"
    return f"{c.metric:.4f} R2"


def human_bytes(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 ** 2:
        return f"{n / 1024:.1f} KiB"
    return f"{n / 1024 ** 2:.1f} MiB"
