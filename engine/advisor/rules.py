"""The advisor's rules: each a small function from Evidence to a Finding, or None.

Every threshold is a module constant, listed with its rule in docs/advisor.md.
A finding's ``changes`` are RunConfig keys and their new values (what "Try it"
runs and "Apply" puts in the form); where no option can make the change, they
are None and ``hint`` says what to change in code. ``gain`` is a rough prior (the
share of the step the change could save at best) used only to order findings: a
speed-up is claimed only once an A/B run has measured it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

from engine.run_options import FUSED_OPTIMIZERS

from .evidence import Evidence

# input-bound
INPUT_BOUND_SHARE = 0.15  # DataLoader share of the step (= the profiler report's own hint)
INPUT_IDLE_GPU_UTIL = 50.0  # % mean GPU utilization under which an idle GPU counts...
INPUT_IDLE_MIN_SHARE = 0.05  # ...when the DataLoader takes at least this share of the step
MAX_SUGGESTED_WORKERS = 8
# host-device synchronisation
SYNC_PER_STEP = 0.5  # median sync points per step above this: a sync in most steps
LOG_EVERY = 10  # the train.log_every proposed where the trainer's own read syncs each step
# precision (CUDA compute capability)
TENSOR_CORES = (7, 0)  # Volta: fp16 Tensor Cores
BF16 = (8, 0)  # Ampere: bf16 and TF32
# launch-bound (GPU)
LAUNCH_KERNELS_PER_STEP = 100  # at least this many kernels per step...
LAUNCH_MEAN_KERNEL_US = 20.0  # ...averaging under this many µs each
LAUNCH_BATCH_FACTOR = 4
# small batch with memory to spare (any device)
SMALL_BATCH_MAX = 128  # batches under this size...
SMALL_BATCH_HEADROOM = 8  # ...where the memory forecast fits this many times more
# optimizer implementation
OPTIMIZER_SHARE = 0.10  # a for-loop optimizer step over this share of the step
# CPU threads
THREADS_SLACK = 0  # torch threads may differ from the physical cores by this many


@dataclass(frozen=True)
class Finding:
    id: str
    title: str
    evidence: str  # the numbers, in words
    numbers: dict  # the same numbers, as data
    effect: str  # what the change is expected to do (to be measured, never assumed)
    changes: dict | None  # RunConfig key -> new value; None: no option can do it
    hint: str = ""  # what to do by hand, where the code must change
    gain: float = 0.0  # the ordering prior, a share of the step in [0, 1]

    def as_dict(self) -> dict:
        return asdict(self)


def input_bound(e: Evidence) -> Finding | None:
    loader, util = e.share("DataLoader"), e.gpu_utilization
    idle = e.on_gpu and util is not None and util < INPUT_IDLE_GPU_UTIL
    if not (loader >= INPUT_BOUND_SHARE or (idle and loader >= INPUT_IDLE_MIN_SHARE)):
        return None
    changes: dict = {}
    workers = _suggested_workers(e)
    if workers > e.num_workers:
        changes["data.num_workers"] = workers
    elif e.image_loading == "stream":  # no core to spare: read the batches from memory
        changes["data.image_loading"] = "memory"
    if e.on_gpu and not e.pin_memory:
        changes["data.pin_memory"] = True
    text = f"the DataLoader takes {loader:.0%} of each step"
    if util is not None and e.on_gpu:
        text += f"; the GPU was busy {util:.0f}% of the run"
    text += f" (data.num_workers={e.num_workers}, data.pin_memory={e.pin_memory})"
    hint = "A larger data.batch_size spreads the loader's fixed cost per batch."
    if e.image_loading == "stream":
        hint += " data.image_loading='memory' decodes each image once, if they fit in RAM."
    return Finding(
        "input-bound", "Training waits for data", text,
        {"dataloader_share": loader, "gpu_utilization": util, "num_workers": e.num_workers,
         "pin_memory": e.pin_memory},
        "Loader workers prepare the next batches while the model trains, hiding up to the "
        "DataLoader's share of the step" + ("; pinned memory makes the copies to the GPU "
                                            "asynchronous." if "data.pin_memory" in changes
                                            else "."),
        changes or None, hint, gain=max(loader, 1 - util / 100 if idle else 0.0))


def _suggested_workers(e: Evidence) -> int:
    """One worker per core the training process does not use, doubling what is set
    already; never more than MAX_SUGGESTED_WORKERS. On a GPU the training process keeps
    one core (at least one worker); on the CPU it keeps torch's threads, and with no core
    to spare a worker would only take time from the training: none (0)."""
    cores = e.physical_cores or e.logical_cores or 2
    if e.on_gpu:
        return min(MAX_SUGGESTED_WORKERS, max(cores - 1, 1, 2 * e.num_workers))
    free = cores - e.torch_threads
    return min(MAX_SUGGESTED_WORKERS, max(free, 2 * e.num_workers)) if free >= 1 else 0


def host_sync(e: Evidence) -> Finding | None:
    if e.syncs_per_step <= SYNC_PER_STEP:
        return None
    op = max(e.sync_ops, key=e.sync_ops.get) if e.sync_ops else "a sync"
    where = e.sync_sources[0] if e.sync_sources else None
    text = (f"{e.syncs_per_step:g} host-device synchronisations per step (median over "
            f"{e.steps} steps), mostly {op}" + (f", from {where}" if where else ""))
    if where:
        hint = (f"{where} reads a tensor's value in the step ({op}): keep the value on the "
                f"device (accumulate it there) and read it once per logging interval.")
    else:
        hint = (f"Something in the step reads a tensor's value ({op}: .item(), .cpu(), "
                f"print of a tensor, a Python if on a tensor). Capture with stacks (torchwork "
                f"profile --with-stack) to name the line.")
    if e.on_gpu:
        effect = ("Each sync makes the CPU wait until the GPU has finished all queued work, so "
                  "the next kernels cannot be queued ahead: removing it lets the CPU run ahead.")
        busy = e.gpu_busy_share
        gain = min(0.5, 1 - busy) if busy is not None else 0.2
    else:
        effect = ("On the CPU a sync costs little; on a GPU each one stalls the device's "
                  "queue, so this matters when the model moves to one.")
        gain = 0.02
    return Finding("host-sync", "The step waits for the device", text,
                   {"syncs_per_step": e.syncs_per_step, "sync_ops": dict(e.sync_ops),
                    "sources": list(e.sync_sources)},
                   effect, None, hint, gain)


def logging_sync(e: Evidence) -> Finding | None:
    """The trainer reads the loss back once per train.log_every steps, by design; at a
    small interval on a GPU that read is a sync in most steps."""
    if not e.on_gpu or e.log_syncs_per_step <= SYNC_PER_STEP or e.log_every >= LOG_EVERY:
        return None
    busy = e.gpu_busy_share
    return Finding(
        "log-interval", "Logging reads the loss back every step",
        f"train.log_every={e.log_every}: the trainer's read of the loss makes "
        f"{e.log_syncs_per_step:g} host-device synchronisations per step (median over "
        f"{e.steps} steps)",
        {"log_every": e.log_every, "log_syncs_per_step": e.log_syncs_per_step},
        f"Reading the loss once every {LOG_EVERY} steps lets the CPU queue the next steps' "
        f"kernels while the GPU works; the curves get a point per {LOG_EVERY} steps.",
        {"train.log_every": LOG_EVERY},
        gain=min(0.5, 1 - busy) if busy is not None else 0.2)


def mixed_precision(e: Evidence) -> Finding | None:
    if not e.on_gpu or e.amp != "off" or e.capability is None or e.capability < TENSOR_CORES:
        return None
    dtype = "bf16" if e.capability >= BF16 else "fp16"
    cap = f"{e.capability[0]}.{e.capability[1]}"
    kernel = e.share("Kernel")
    return Finding(
        "precision", f"fp32 on a GPU with Tensor Cores: use {dtype}",
        f"precision.amp='off' on a GPU of compute capability {cap} (Tensor Cores"
        f"{', bf16' if dtype == 'bf16' else ''}); kernels take {kernel:.0%} of the step",
        {"amp": e.amp, "capability": cap, "kernel_share": kernel},
        f"Autocast to {dtype} runs matmuls and convolutions on Tensor Cores and halves "
        f"activation memory; " + ("bf16 needs no loss scaling." if dtype == "bf16" else
                                  "fp16 adds a gradient scaler."),
        {"precision.amp": dtype}, gain=0.5 * kernel)


def tf32_matmul(e: Evidence) -> Finding | None:
    """fp32 matmuls and convolutions on a GPU with TF32 Tensor Cores: TF32 keeps the fp32
    weights and the code as they are (the alternative to autocast, or a step before it)."""
    if (not e.on_gpu or e.amp != "off" or e.tf32 == "on" or e.capability is None
            or e.capability < BF16):
        return None
    cap = f"{e.capability[0]}.{e.capability[1]}"
    kernel = e.share("Kernel")
    return Finding(
        "tf32", "fp32 matmuls without TF32",
        f"precision.tf32={e.tf32!r} and precision.amp='off' on a GPU of compute capability "
        f"{cap} (TF32 Tensor Cores); kernels take {kernel:.0%} of the step",
        {"tf32": e.tf32, "capability": cap, "kernel_share": kernel},
        "TF32 runs fp32 matmuls and convolutions on Tensor Cores, rounding their inputs to "
        "10 bits of mantissa; weights, activations and the loss stay fp32.",
        {"precision.tf32": "on"}, gain=0.4 * kernel)


def channels_last(e: Evidence) -> Finding | None:
    if not (e.on_gpu and e.conv_model and e.channels_last is not True and e.capability
            and e.capability >= TENSOR_CORES):
        return None
    kernel = e.share("Kernel")
    text = (f"a convolutional model in NCHW on a GPU with Tensor Cores; kernels take "
            f"{kernel:.0%} of the step")
    effect = ("Tensor-Core convolutions want channels-last (NHWC) tensors: without it cuDNN "
              "transposes around each convolution. The gain is largest with mixed precision.")
    if e.channels_last is None:  # the option does not apply to this data
        return Finding("channels-last", "Convolutions in NCHW", text, {"kernel_share": kernel},
                       effect, None, "Convert the model and its inputs with "
                       ".to(memory_format=torch.channels_last).", gain=0.2 * kernel)
    return Finding("channels-last", "Convolutions in NCHW", text, {"kernel_share": kernel},
                   effect, {"precision.channels_last": True}, gain=0.2 * kernel)


def launch_bound(e: Evidence) -> Finding | None:
    if (not e.on_gpu or e.kernels_per_step is None or e.mean_kernel_us is None
            or e.kernels_per_step < LAUNCH_KERNELS_PER_STEP
            or e.mean_kernel_us >= LAUNCH_MEAN_KERNEL_US):
        return None
    busy = e.gpu_busy_share
    text = f"{e.kernels_per_step:.0f} kernels per step averaging {e.mean_kernel_us:.1f} µs"
    if busy is not None:
        text += f"; the GPU is busy {busy:.0%} of the step"
    bigger = _larger_batch(e, LAUNCH_BATCH_FACTOR)
    if bigger:
        changes = {"data.batch_size": bigger}
        effect = (f"A batch of {bigger} gives each kernel {bigger / e.batch_size:g}x the work "
                  f"for the same launches (scale optim.lr with it); precision.compile fuses "
                  f"kernels too.")
    elif not e.compile:
        changes = {"precision.compile": True}
        effect = "torch.compile fuses the small kernels into fewer, larger ones."
    else:
        changes, effect = None, "Fewer, larger operations per step (vectorise Python loops)."
    return Finding("launch-bound", "Many short kernels: the CPU cannot launch them fast enough",
                   text, {"kernels_per_step": e.kernels_per_step,
                          "mean_kernel_us": e.mean_kernel_us, "gpu_busy_share": busy},
                   effect, changes, gain=1 - busy if busy is not None else 0.3)


def small_batch(e: Evidence) -> Finding | None:
    """A larger batch spreads the step's fixed costs; where loading the data takes a large
    share of the step (input-bound) that share grows with the batch too, and a larger
    batch measured a slow-down (0.90x on streamed images): input-bound speaks there."""
    if (e.largest_batch is None or e.batch_size >= SMALL_BATCH_MAX
            or e.largest_batch < SMALL_BATCH_HEADROOM * e.batch_size
            or e.share("DataLoader") >= INPUT_BOUND_SHARE):
        return None
    bigger = _larger_batch(e, SMALL_BATCH_HEADROOM)
    if not bigger:
        return None
    return Finding(
        "small-batch", "A small batch with memory to spare",
        f"data.batch_size={e.batch_size}; the memory forecast fits up to {e.largest_batch}",
        {"batch_size": e.batch_size, "largest_batch": e.largest_batch},
        f"A batch of {bigger} does {bigger // e.batch_size}x the work per step for about the "
        f"same per-step overhead (Python, launches, the optimizer); it changes the "
        f"optimisation, so scale optim.lr with it.",
        {"data.batch_size": bigger}, gain=0.3)


def _larger_batch(e: Evidence, factor: int) -> int | None:
    """``factor`` times the batch, capped by the forecast's largest batch and a quarter of
    the training samples (at least four steps per epoch), down to a power of two; None
    without a forecast (a guess could run out of memory) or where the batch would not at
    least double."""
    if e.largest_batch is None:
        return None
    target = min(e.batch_size * factor, e.largest_batch)
    if e.train_samples:
        target = min(target, max(e.train_samples // 4, 1))
    if target > e.batch_size and target & (target - 1):  # a round size, as people pick them
        target = 1 << (target.bit_length() - 1)
    return target if target >= 2 * e.batch_size else None


def optimizer_impl(e: Evidence) -> Finding | None:
    if (e.optimizer_impl != "for-loop" or e.optimizer == "lbfgs" or e.optimizer_share is None
            or e.optimizer_share < OPTIMIZER_SHARE):
        return None
    name = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD", "adagrad": "Adagrad",
            "rmsprop": "RMSprop"}.get(e.optimizer, e.optimizer)
    impl = ("fused" if e.device in FUSED_OPTIMIZERS.get(e.optimizer, ()) else
            "foreach" if e.device != "cpu" else None)  # on the CPU foreach is no faster
    hint = "" if impl else (f"torch has no fused {name} on the CPU, and foreach is no faster "
                            f"there than the for-loop: {', '.join(FUSED_OPTIMIZERS)} have a "
                            f"fused CPU kernel (optim.implementation = 'fused').")
    return Finding(
        "optimizer", f"{name} updates one parameter at a time",
        f"the optimizer step takes {e.optimizer_share:.0%} of each step with the for-loop "
        f"implementation",
        {"optimizer": e.optimizer, "implementation": e.optimizer_impl,
         "optimizer_share": e.optimizer_share},
        "A fused (one kernel for all parameters) or foreach (a few batched operations) "
        "implementation does the same update in far fewer operations than one parameter at "
        "a time.",
        {"optim.implementation": impl} if impl else None, hint,
        gain=0.5 * e.optimizer_share)


def grad_accumulation(e: Evidence) -> Finding | None:
    if e.grad_accum_steps <= 1 or e.largest_batch is None:
        return None
    whole = e.batch_size * e.grad_accum_steps
    if e.largest_batch < whole:
        return None
    return Finding(
        "grad-accumulation", "Gradient accumulation where the whole batch fits",
        f"train.grad_accum_steps={e.grad_accum_steps} micro-batches of {e.batch_size}; the "
        f"memory forecast fits a batch of {e.largest_batch}",
        {"grad_accum_steps": e.grad_accum_steps, "batch_size": e.batch_size,
         "largest_batch": e.largest_batch},
        f"One batch of {whole} per optimizer step: the same update in one forward and "
        f"backward pass instead of {e.grad_accum_steps}.",
        {"data.batch_size": whole, "train.grad_accum_steps": 1},
        gain=0.3 * (1 - 1 / e.grad_accum_steps))


def cpu_threads(e: Evidence) -> Finding | None:
    cores = e.physical_cores
    if e.device != "cpu" or not cores or abs(e.torch_threads - cores) <= THREADS_SLACK:
        return None
    fewer = e.torch_threads < cores
    return Finding(
        "cpu-threads", "torch uses " + ("fewer" if fewer else "more") + " threads than cores",
        f"torch.get_num_threads()={e.torch_threads} on {cores} physical cores"
        f" ({e.logical_cores} logical)",
        {"torch_threads": e.torch_threads, "physical_cores": cores,
         "logical_cores": e.logical_cores},
        ("Idle cores could share the work." if fewer else
         "Threads beyond the physical cores fight over them (and their caches)."),
        {"train.threads": cores},
        gain=min(0.5, 1 - e.torch_threads / cores) if fewer else 0.1)


RULES: tuple[Callable[[Evidence], Finding | None], ...] = (
    input_bound, host_sync, logging_sync, mixed_precision, tf32_matmul, channels_last,
    launch_bound, small_batch, optimizer_impl, grad_accumulation, cpu_threads)


def advise(e: Evidence) -> list[Finding]:
    """Every rule's finding, the largest expected gain first; where two propose the same
    change (launch-bound and small-batch both growing the batch), the first is kept."""
    findings = sorted((f for f in (rule(e) for rule in RULES) if f is not None),
                      key=lambda f: f.gain, reverse=True)
    out, seen = [], []
    for f in findings:
        if f.changes is not None and f.changes in seen:
            continue
        seen.append(f.changes)
        out.append(f)
    return out
