"""The advisor's rules on hand-made Evidence: each fires past its threshold, stays silent
short of it, and proposes a change the configuration can take."""

from dataclasses import replace

import pytest

from engine.advisor import rules
from engine.advisor.evidence import Evidence
from engine.config import RunConfig, all_keys

CPU = Evidence(device="cpu", torch_threads=4, physical_cores=4, logical_cores=8, steps=5,
               step_us=10_000.0, shares={"CPU Exec": 0.9, "Other": 0.1},
               optimizer_impl="foreach", optimizer_share=0.05, batch_size=64)
GPU = replace(CPU, device="cuda", capability=(8, 0), amp="bf16",
              shares={"Kernel": 0.8, "CPU Exec": 0.15, "Other": 0.05},
              kernels_per_step=50, mean_kernel_us=200.0, gpu_utilization=90.0,
              pin_memory=True)


def test_efficient_runs_get_no_findings():
    assert rules.advise(CPU) == []
    assert rules.advise(GPU) == []


def test_input_bound_on_the_loader_share():
    below = replace(CPU, shares={"DataLoader": rules.INPUT_BOUND_SHARE - 0.01, "CPU Exec": 0.86})
    assert rules.input_bound(below) is None
    loaded = replace(CPU, shares={"DataLoader": 0.6, "CPU Exec": 0.4})
    found = rules.input_bound(replace(loaded, torch_threads=1))
    # one worker per core the training process (torch's threads) leaves free; no pinning
    assert found.changes == {"data.num_workers": 3}
    assert found.numbers["dataloader_share"] == 0.6
    assert "60%" in found.evidence and found.gain == 0.6


def test_input_bound_on_the_cpu_with_no_core_to_spare():
    loaded = replace(CPU, shares={"DataLoader": 0.6, "CPU Exec": 0.4})  # 4 threads, 4 cores
    # a worker would take its time from the training: no workers proposed...
    assert rules.input_bound(loaded).changes is None
    # ...but a streamed image folder can be read from memory instead
    streamed = rules.input_bound(replace(loaded, image_loading="stream"))
    assert streamed.changes == {"data.image_loading": "memory"}


def test_input_bound_when_the_gpu_idles_waiting_for_data():
    slow = replace(GPU, pin_memory=False, num_workers=2,
                   shares={"DataLoader": rules.INPUT_IDLE_MIN_SHARE, "Kernel": 0.3})
    assert rules.input_bound(replace(slow, gpu_utilization=rules.INPUT_IDLE_GPU_UTIL)) is None
    found = rules.input_bound(replace(slow, gpu_utilization=20.0))
    assert found.changes == {"data.num_workers": 4, "data.pin_memory": True}
    assert found.gain == pytest.approx(0.8)
    # nothing left to raise: the finding stays, with advice but no change
    maxed = replace(slow, gpu_utilization=20.0, pin_memory=True,
                    num_workers=rules.MAX_SUGGESTED_WORKERS)
    assert rules.input_bound(maxed).changes is None


def test_host_sync_names_the_op_and_the_line():
    assert rules.host_sync(replace(CPU, syncs_per_step=rules.SYNC_PER_STEP)) is None
    found = rules.host_sync(replace(GPU, syncs_per_step=2.0, sync_ops={"aten::item": 10},
                                    sync_sources=("model.py:12 (forward)",), has_stacks=True))
    assert found.changes is None
    assert "model.py:12 (forward)" in found.hint and "aten::item" in found.evidence
    assert found.numbers["sources"] == ["model.py:12 (forward)"]
    # without stacks it says how to get the line
    blind = rules.host_sync(replace(CPU, syncs_per_step=1.0, sync_ops={"aten::item": 5}))
    assert "--with-stack" in blind.hint and "costs little" in blind.effect


def test_logging_every_step_on_a_gpu():
    chatty = replace(GPU, log_every=1, log_syncs_per_step=1.0,
                     shares={"Kernel": 0.4, "CPU Exec": 0.6})
    found = rules.logging_sync(chatty)
    assert found.changes == {"train.log_every": rules.LOG_EVERY}
    assert found.gain == pytest.approx(0.5)
    assert rules.logging_sync(replace(chatty, log_syncs_per_step=rules.SYNC_PER_STEP)) is None
    assert rules.logging_sync(replace(chatty, log_every=rules.LOG_EVERY)) is None
    assert rules.logging_sync(replace(chatty, device="cpu")) is None  # costs little there


def test_precision_by_compute_capability():
    fp32 = replace(GPU, amp="off")
    assert rules.mixed_precision(replace(fp32, capability=(6, 1))) is None  # no Tensor Cores
    assert rules.mixed_precision(replace(fp32, capability=(7, 5))).changes == {
        "precision.amp": "fp16"}
    ampere = rules.mixed_precision(fp32)
    assert ampere.changes == {"precision.amp": "bf16"}
    assert rules.mixed_precision(GPU) is None  # already bf16
    assert rules.mixed_precision(replace(CPU, amp="off")) is None  # no GPU: capability None


def test_tf32_for_fp32_on_ampere_and_later():
    fp32 = replace(GPU, amp="off")
    found = rules.tf32_matmul(fp32)
    assert found.changes == {"precision.tf32": "on"}
    assert found.gain == pytest.approx(0.4 * 0.8)  # ordered after autocast's 0.5 * kernels
    assert rules.tf32_matmul(replace(fp32, tf32="off")).changes == {"precision.tf32": "on"}
    assert rules.tf32_matmul(replace(fp32, tf32="on")) is None
    assert rules.tf32_matmul(replace(fp32, capability=(7, 5))) is None  # no TF32 units
    assert rules.tf32_matmul(GPU) is None  # autocast to bf16 already
    assert rules.tf32_matmul(replace(CPU, amp="off")) is None


def test_channels_last_for_convolutional_models_on_gpu():
    conv = replace(GPU, conv_model=True, channels_last=False)
    assert rules.channels_last(conv).changes == {"precision.channels_last": True}
    assert rules.channels_last(replace(conv, channels_last=True)) is None
    assert rules.channels_last(replace(conv, conv_model=False)) is None
    assert rules.channels_last(replace(conv, device="cpu", capability=None)) is None
    # a conv model where the option does not apply: the code change instead
    assert rules.channels_last(replace(conv, channels_last=None)).changes is None


def test_launch_bound_grows_the_batch_or_compiles():
    short = replace(GPU, kernels_per_step=rules.LAUNCH_KERNELS_PER_STEP,
                    mean_kernel_us=rules.LAUNCH_MEAN_KERNEL_US - 1,
                    shares={"Kernel": 0.2, "CPU Exec": 0.8}, largest_batch=10_000)
    assert rules.launch_bound(replace(short, mean_kernel_us=rules.LAUNCH_MEAN_KERNEL_US)) is None
    assert rules.launch_bound(replace(short, kernels_per_step=99)) is None
    assert rules.launch_bound(short).changes == {"data.batch_size": 256}
    assert rules.launch_bound(short).gain == pytest.approx(0.8)
    # no memory forecast: a bigger batch is a guess, so compile instead
    assert rules.launch_bound(replace(short, largest_batch=None)).changes == {
        "precision.compile": True}
    assert rules.launch_bound(replace(short, largest_batch=None, compile=True)).changes is None


def test_small_batch_where_the_forecast_fits_eight_times_more():
    tiny = replace(CPU, batch_size=8, train_samples=100_000)
    assert rules.small_batch(tiny) is None  # no forecast
    assert rules.small_batch(replace(tiny, largest_batch=63)) is None
    found = rules.small_batch(replace(tiny, largest_batch=64))
    assert found.changes == {"data.batch_size": 64}
    assert rules.small_batch(replace(tiny, batch_size=rules.SMALL_BATCH_MAX,
                                     largest_batch=10**6)) is None
    # never more than a quarter of the training set per batch (40), rounded down to 32
    assert rules.small_batch(replace(tiny, largest_batch=10**6, train_samples=160)) \
        .changes == {"data.batch_size": 32}
    assert rules.small_batch(replace(tiny, largest_batch=100)).changes == \
        {"data.batch_size": 64}  # a round size under the forecast's 100
    # input-bound: loading grows with the batch, and input-bound's own change comes first
    assert rules.small_batch(replace(tiny, largest_batch=64, shares={
        "DataLoader": rules.INPUT_BOUND_SHARE, "CPU Exec": 0.85})) is None


def test_optimizer_without_foreach_or_fused():
    loop = replace(CPU, optimizer="adamw", optimizer_impl="for-loop",
                   optimizer_share=rules.OPTIMIZER_SHARE)
    found = rules.optimizer_impl(loop)
    assert found.changes == {"optim.implementation": "fused"}
    assert rules.optimizer_impl(replace(loop, optimizer_share=0.09)) is None
    assert rules.optimizer_impl(replace(loop, optimizer_impl="fused")) is None
    assert rules.optimizer_impl(replace(loop, optimizer_impl="foreach")) is None
    # torch has no fused RMSprop, and no fused Adagrad on CUDA: foreach there; on the
    # CPU foreach is no faster than the for-loop, so only a fused optimizer is named
    rmsprop = rules.optimizer_impl(replace(loop, optimizer="rmsprop"))
    assert rmsprop.changes is None and "no fused RMSprop on the CPU" in rmsprop.hint
    assert rules.optimizer_impl(replace(loop, optimizer="rmsprop", device="cuda")).changes == {
        "optim.implementation": "foreach"}
    assert rules.optimizer_impl(replace(loop, optimizer="adagrad")).changes == {
        "optim.implementation": "fused"}
    assert rules.optimizer_impl(replace(loop, optimizer="adagrad", device="cuda")).changes == {
        "optim.implementation": "foreach"}
    assert rules.optimizer_impl(replace(loop, optimizer="lbfgs")) is None


def test_gradient_accumulation_where_the_whole_batch_fits():
    accum = replace(CPU, batch_size=32, grad_accum_steps=4, largest_batch=128)
    assert rules.grad_accumulation(accum).changes == {"data.batch_size": 128,
                                                      "train.grad_accum_steps": 1}
    assert rules.grad_accumulation(replace(accum, largest_batch=127)) is None
    assert rules.grad_accumulation(replace(accum, largest_batch=None)) is None
    assert rules.grad_accumulation(replace(accum, grad_accum_steps=1)) is None


def test_cpu_threads_against_physical_cores():
    assert rules.cpu_threads(CPU) is None
    fewer = rules.cpu_threads(replace(CPU, torch_threads=1))
    assert fewer.changes == {"train.threads": 4} and fewer.gain == 0.5
    more = rules.cpu_threads(replace(CPU, torch_threads=8))
    assert more.title.startswith("torch uses more") and more.changes == {"train.threads": 4}
    assert rules.cpu_threads(replace(GPU, torch_threads=1)) is None  # the GPU computes
    assert rules.cpu_threads(replace(CPU, physical_cores=None)) is None


def test_advise_orders_by_gain_and_drops_repeated_changes():
    e = replace(GPU, amp="off", batch_size=8, largest_batch=10_000, kernels_per_step=500,
                mean_kernel_us=5.0, gpu_utilization=40.0,  # input-bound: the GPU idles
                shares={"Kernel": 0.3, "DataLoader": 0.1, "CPU Exec": 0.6})
    found = rules.advise(e)
    gains = [f.gain for f in found]
    assert gains == sorted(gains, reverse=True)
    ids = [f.id for f in found]
    assert ids[0] == "launch-bound" and "input-bound" in ids and "precision" in ids
    # small-batch would grow the batch to 64: a different change, so both stay
    assert "small-batch" in ids
    same = replace(e, batch_size=16, largest_batch=64)  # both would propose 64
    assert [f.changes for f in rules.advise(same)].count({"data.batch_size": 64}) == 1


def test_every_proposed_change_is_a_valid_run_option():
    e = replace(GPU, amp="off", conv_model=True, channels_last=False, batch_size=8,
                grad_accum_steps=2, log_every=1, log_syncs_per_step=3.0,
                largest_batch=10_000, train_samples=50_000,
                kernels_per_step=500, mean_kernel_us=5.0, pin_memory=False,
                optimizer_impl="for-loop", optimizer_share=0.3,
                shares={"Kernel": 0.3, "DataLoader": 0.5, "CPU Exec": 0.2})
    cpu = replace(CPU, torch_threads=1, optimizer="sgd", optimizer_impl="for-loop",
                  optimizer_share=0.3)
    proposed = [f.changes for ev in (e, cpu) for rule in rules.RULES
                if (f := rule(ev)) and f.changes]
    assert len(proposed) >= 9
    # the options the rules once named as missing are proposed, so "Try it" measures them
    assert {k for changes in proposed for k in changes} >= {
        "optim.implementation", "precision.tf32", "train.threads"}
    keys = set(all_keys())
    for changes in proposed:
        cfg = RunConfig()
        cfg.set("data.dataset", "digits")  # where channels_last applies
        for key, value in changes.items():
            assert key in keys
            cfg.set(key, value)
        cfg.validate()


def test_the_rules_load_without_torch():
    """The window's view and the command import the rules before any run: no torch."""
    import subprocess
    import sys

    code = ("import sys, engine.advisor.rules, engine.advisor.trace_facts; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
