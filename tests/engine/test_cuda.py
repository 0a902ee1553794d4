"""The CUDA paths on a real NVIDIA GPU: mixed precision, data kept on the device, pinned
loading with workers, a real out-of-memory, NVML against nvidia-smi and a CUDA profiler trace.

Skipped where no GPU is (CI has none); on a GPU machine run them with ``pytest -m cuda``.
"""

import json
import math
import os
import shutil
import subprocess
import sys

import pytest
import torch

from engine.monitor import Sampler
from engine.profiling.capture import ProfilerCapture
from engine.profiling.options import CaptureOptions, profiling_config
from engine.profiling.report import read_trace
from engine.profiling.timeline import load_trace
from engine.training import Trainer
from engine.training import events as ev
from engine.training.checkpoint import load_checkpoint

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

MIB = 2 ** 20


def on_gpu(tiny_config, **overrides):
    return tiny_config(**{"train.device": "cuda", **overrides})


def weights(trainer):
    return {k: v.detach().float().cpu() for k, v in trainer.model.state_dict().items()}


def max_diff(a, b):
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.mark.parametrize("amp", ["fp16", "bf16"])
def test_mixed_precision_trains_and_resumes_exactly(tiny_config, tmp_path, amp):
    cfg = on_gpu(tiny_config, **{"precision.amp": amp, "train.epochs": 4})
    straight = Trainer(cfg)
    assert (straight.precision.scaler is not None) == (amp == "fp16")
    before = straight.validate()["val_loss"]
    result = straight.run()
    assert result.status == "completed", result.error
    assert straight.validate()["val_loss"] < before

    first = Trainer(cfg, checkpoint_dir=tmp_path)
    first.on(ev.StepEnded, lambda e: e.step == 11 and first.stop())
    assert first.run().status == "stopped"
    state = load_checkpoint(tmp_path / "last.pt")
    if amp == "fp16":  # the loss scale travels with the checkpoint
        assert state["scaler"]["scale"] > 0
    second = Trainer(cfg)
    second.load_checkpoint(tmp_path / "last.pt")
    assert second.run().status == "completed"
    assert max_diff(weights(straight), weights(second)) <= 1e-5


def test_in_memory_data_stays_on_the_device(tiny_config):
    trainer = Trainer(on_gpu(tiny_config))
    assert trainer.train_loader.on_device.type == "cuda"
    assert trainer.val_loader.on_device.type == "cuda"
    x, y = next(iter(trainer.train_loader.epoch(1)))
    assert x.is_cuda and y.is_cuda
    assert trainer.run().status == "completed"


def test_pinned_batches_from_workers_give_the_run_without_them(tiny_config):
    alone = Trainer(on_gpu(tiny_config))
    alone.run()
    workers = Trainer(on_gpu(tiny_config, **{"data.num_workers": 2, "data.pin_memory": True}))
    assert workers.train_loader.pin_memory and workers.train_loader.on_device.type == "cpu"
    x, _ = next(iter(workers.train_loader.epoch(1)))
    assert x.is_pinned()
    assert workers.run().status == "completed"
    assert max_diff(weights(alone), weights(workers)) <= 1e-5


def test_a_real_out_of_memory_ends_the_run_with_advice_and_frees_the_gpu(tiny_config,
                                                                         faulty_model):
    # a petabyte: the caching allocator refuses it at once, as a real OOM
    arch = faulty_model("if self.calls == 3: torch.empty(2 ** 50, device=out.device)")
    trainer = Trainer(on_gpu(tiny_config, **{"model.arch": arch}))
    raised = []
    trainer.on(ev.ExceptionRaised, raised.append)
    result = trainer.run()
    assert result.status == "failed"
    assert "CUDA out of memory at batch size 32 (step 3)" in result.error
    assert "data.batch_size=16" in result.error and raised[0].kind == "oom"
    # the GPU is usable again: the next run in the same process trains
    assert Trainer(on_gpu(tiny_config)).run().status == "completed"


def smi(*fields):
    out = subprocess.run([shutil.which("nvidia-smi"), f"--query-gpu={','.join(fields)}",
                          "--format=csv,noheader,nounits"], capture_output=True, text=True,
                         check=True).stdout
    return [dict(zip(fields, (v.strip() for v in line.split(",")))) for line in out.splitlines()]


@pytest.mark.skipif(shutil.which("nvidia-smi") is None, reason="needs nvidia-smi")
def test_nvml_readings_agree_with_nvidia_smi_and_torch_counters_land_on_the_same_gpu():
    held = torch.empty(2 * 1024 * MIB, dtype=torch.uint8, device="cuda")
    torch.cuda.synchronize()
    problems = []
    sample = Sampler(0.1, on_problem=problems.append).sample()
    ref = smi("index", "uuid", "name", "memory.used", "memory.total", "temperature.gpu",
              "power.limit")
    assert [g.index for g in sample.gpus] == [int(r["index"]) for r in ref]
    for g, r in zip(sample.gpus, ref):
        assert g.uuid == r["uuid"] and g.name == r["name"]
        assert g.memory_total / MIB == pytest.approx(float(r["memory.total"]), abs=1)
        assert g.memory_used / MIB == pytest.approx(float(r["memory.used"]), abs=64)
        assert g.temperature == pytest.approx(float(r["temperature.gpu"]), abs=3)
        assert g.power_limit == pytest.approx(float(r["power.limit"]), rel=0.01)
        assert 0 <= g.utilization <= 100 and g.power > 0 and g.sm_clock > 0
    # torch's device 0 found its NVML GPU by UUID (not by index)
    dev = torch.cuda.current_device()
    uuid = f"GPU-{torch.cuda.get_device_properties(dev).uuid}"
    mine = next(g for g in sample.gpus if g.uuid == uuid)
    assert mine.torch_allocated >= held.numel() and mine.torch_reserved >= held.numel()
    # what this process holds, where NVML can attribute it (NaN inside some containers)
    assert math.isnan(mine.process_memory) or mine.process_memory >= held.numel()
    print("nvml problems:", problems, "process memory:", mine.process_memory)


def test_monitor_command_reads_the_gpu_as_json():
    out = subprocess.run([sys.executable, "-m", "engine.cli", "monitor", "--count", "2",
                          "--interval", "0.2", "--json"], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 2
    gpu = lines[-1]["gpus"][0]
    assert gpu["uuid"].startswith("GPU-") and gpu["memory_total"] > 0
    assert gpu["utilization"] is not None and gpu["power"] > 0


def test_a_cuda_trace_has_kernels_stream_lanes_and_copies(tiny_config, tmp_path):
    options = CaptureOptions(wait=1, warmup=1, active=3)
    cfg = profiling_config(on_gpu(tiny_config, **{"data.dataset": "digits",
                                                  "model.arch": "cnn", "model.channels": [8],
                                                  "model.hidden": [16], "train.log_every": 1}),
                           options)
    trainer = Trainer(cfg)
    cap = ProfilerCapture(worker="gpu").attach(trainer, tmp_path / "run")
    cap.request(options, "c1")
    assert trainer.run().status == "completed"
    trace = cap.results[0].trace
    if os.environ.get("TW_KEEP_TRACE"):  # to read it where there is no GPU
        shutil.copy(trace, os.environ["TW_KEEP_TRACE"])
    report = read_trace(trace)
    assert report.has_gpu and len(report.steps) == options.active
    assert all(step.costs_us["Kernel"] > 0 for step in report.steps)
    assert report.kernels and all(k.calls > 0 and k.total_us > 0 for k in report.kernels)
    assert any("conv" in k.name.lower() or "gemm" in k.name.lower() for k in report.kernels)
    # the operator table carries each operator's kernel time
    conv = next(op for op in report.operators if op.name == "aten::cudnn_convolution")
    assert conv.device_self_us > 0 and conv.device_total_us >= conv.device_self_us
    assert any(m.device.startswith("GPU") for m in report.memory) or not report.memory
    index = load_trace(trace)
    gpu_lanes = [t for t in index.tracks if t.kind == "gpu"]
    assert gpu_lanes and all("stream" in t.label.lower() for t in gpu_lanes)
    names = {n.lower() for n in index.names}
    assert any(n.startswith("memcpy") for n in names)  # the loss read back each step
    print("lanes:", [t.label for t in index.tracks])
    print("kernels:", [(k.name[:60], k.calls, k.tensor_cores) for k in report.kernels[:8]])


def test_class_weights_and_oversampling_train_on_the_gpu(tiny_config):
    trainer = Trainer(on_gpu(tiny_config, **{"train.class_weights": "balanced",
                                             "data.oversample": True}))
    assert trainer.loss_fn.weight.device.type == "cuda"  # beside the outputs it weighs
    assert trainer.run().status == "completed"
