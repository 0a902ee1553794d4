"""Synthetic Chrome traces shaped like torch.profiler's, of any size, for benchmarks and tests.

Recording a million-slice trace takes minutes of real training and varies
from run to run; this writes one in seconds, the same for the same seed: on
each CPU thread, ProfilerStep spans hold module calls (python_function) that
hold operators (cpu_op) with their own child operators, every slice nested
strictly inside its parent; optionally one CUDA stream gets a kernel or a
copy per operator.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson

OPS = ("aten::linear", "aten::addmm", "aten::relu", "aten::conv2d", "aten::convolution",
       "aten::mul", "aten::add_", "aten::copy_", "aten::empty", "aten::t", "aten::view",
       "aten::mm", "aten::sum", "aten::native_batch_norm", "aten::max_pool2d")
MODULES = ("nn.Module: Linear_0", "nn.Module: ReLU_1", "nn.Module: Conv2d_2",
           "nn.Module: BatchNorm2d_3", "nn.Module: MaxPool2d_4", "Optimizer.step#Adam.step")
KERNELS = ("void gemm_kernel<float>", "void elementwise_kernel<128, 4>", "Memcpy HtoD")


def synthetic_events(n_events: int, threads: int = 4, gpu: bool = False,
                     seed: int = 0) -> list[dict]:
    """About ``n_events`` complete ("X") slices, nested four deep, spread over ``threads``."""
    rng = np.random.default_rng(seed)
    per_thread = max(1, n_events // threads)
    events: list[dict] = []
    for t in range(threads):
        tid = 1000 + t
        made, ts, step = 0, 0.0, 0
        while made < per_thread:
            step_events, ts = _step(rng, tid, ts, step, gpu)
            events.extend(step_events)
            made += len(step_events)
            step += 1
            ts += 50.0
    return events


def _step(rng, tid: int, ts: float, step: int, gpu: bool) -> tuple[list[dict], float]:
    """One ProfilerStep on a thread: modules of operators of child operators."""
    out: list[dict] = []
    start = ts
    ts += 5.0
    for m in range(int(rng.integers(8, 16))):
        m_start = ts
        ts += 2.0
        module = MODULES[(m + step) % len(MODULES)]
        for _ in range(int(rng.integers(3, 8))):
            op_start = ts
            ts += 1.0
            op = OPS[int(rng.integers(len(OPS)))]
            for _ in range(int(rng.integers(0, 4))):
                child_dur = float(rng.uniform(0.5, 20.0))
                out.append(_slice("cpu_op", OPS[int(rng.integers(len(OPS)))], tid, ts,
                                  child_dur, shapes=True))
                ts += child_dur + 0.5
            ts += float(rng.uniform(0.5, 5.0))
            out.append(_slice("cpu_op", op, tid, op_start, ts - op_start, shapes=True))
            if gpu:
                kernel = KERNELS[int(rng.integers(len(KERNELS)))]
                cat = "gpu_memcpy" if kernel.startswith("Memcpy") else "kernel"
                out.append({"ph": "X", "cat": cat, "name": kernel, "pid": 0, "tid": 7,
                            "ts": ts + 0.1, "dur": float(rng.uniform(0.5, 1.5)),
                            "args": {"device": 0, "stream": 7}})
            ts += 0.5
        ts += 1.0
        out.append(_slice("python_function", module, tid, m_start, ts - m_start))
        ts += 1.0
    ts += 5.0
    out.append(_slice("user_annotation", f"ProfilerStep#{step}", tid, start, ts - start))
    return out, ts


def _slice(cat: str, name: str, tid: int, ts: float, dur: float, shapes: bool = False) -> dict:
    event = {"ph": "X", "cat": cat, "name": name, "pid": 1, "tid": tid, "ts": round(ts, 3),
             "dur": round(dur, 3)}
    if shapes:
        event["args"] = {"Input Dims": [[32, 64], [64]], "Input type": ["float", "float"]}
    return event


def write_synthetic_trace(path, n_events: int, threads: int = 4, gpu: bool = False,
                          seed: int = 0) -> Path:
    """Write a synthetic trace as torch.profiler lays it out ({"traceEvents": [...]})."""
    path = Path(path)
    events = synthetic_events(n_events, threads, gpu, seed)
    path.write_bytes(orjson.dumps({"schemaVersion": 1, "traceEvents": events}))
    return path
