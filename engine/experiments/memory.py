"""Memory forecast of one training step, from torch's own memory tracker over fake tensors.

The run's model, optimizer and loss are built under ``FakeTensorMode``
(tensors with shapes, dtypes and devices but no storage) and two training
steps run inside ``torch.distributed._tools.mem_tracker.MemTracker``, which
accounts every storage the dispatcher creates by its role: parameters,
buffers, gradients, optimizer state, activations and backward temporaries
(rounded to the CUDA caching allocator's 512-byte blocks on a GPU). The
second step is the one that matters: the optimizer's state exists by then.
Nothing is allocated, so a forecast of a model too big for the machine is as
cheap as any other.

The peak grows linearly with the batch (activations and temporaries per
sample on top of a fixed part), so forecasts at two sizes give the largest
batch that fits in the device's budget: the GPU's free memory less the data
the loader keeps on it, or on the CPU the RAM that is still available.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch

from ..config import ConfigError, RunConfig
from ..training.footprint import available_bytes
from ..training.setup import Precision, build_loss, build_optimizer, num_outputs, resolve_device


class ForecastError(Exception):
    """A model whose training step cannot run on fake tensors (its message says which)."""


ROLES = ("Parameter", "Buffer", "Gradient", "Optstate", "Activation", "Temp")


@dataclass
class MemoryForecast:
    device: str
    batch_size: int
    peak_bytes: int  # one training step, data on the device included
    parts: dict[str, int] = field(default_factory=dict)  # by role, at the tracker's peak
    data_bytes: int = 0  # the training and validation tensors the loader keeps on the GPU
    budget_bytes: int = 0  # free GPU memory, or available RAM
    per_sample_bytes: int = 0
    largest_batch: int | None = None  # None: even one sample does not fit
    train_samples: int = 0

    def as_json(self) -> dict:
        return {**asdict(self), "summary": self.summary()}

    def summary(self) -> str:
        """One line for the form: the peak, its biggest parts and the largest batch."""
        parts = ", ".join(f"{_role_word(k)} {size_text(v)}" for k, v in
                          sorted(self.parts.items(), key=lambda kv: -kv[1])[:3] if v)
        if not self.largest_batch:
            fits = "not even one sample fits"
        elif self.largest_batch >= self.train_samples:
            fits = f"all {self.train_samples} training samples fit"
        else:
            fits = f"up to {self.largest_batch} fit"
        where = "free RAM" if self.device == "cpu" else f"free {self.device.upper()} memory"
        return (f"Memory forecast: {size_text(self.peak_bytes)} peak per step at batch "
                f"{self.batch_size} on {self.device} ({parts}). Largest batch in "
                f"{size_text(self.budget_bytes)} of {where}: {fits}")


def forecast(cfg: RunConfig, data=None, *, budget: int | None = None) -> MemoryForecast:
    """The forecast for ``cfg`` on its device; ``data`` (its DataBundle) is loaded if not given.

    Raises ConfigError for a configuration that cannot be built (its message
    names the key), like the run itself would.
    """
    from ..data import load_dataset, settle_task
    from ..models import ModelError

    cfg.validate()
    device = resolve_device(cfg.train.device)
    if data is None:
        data = load_dataset(cfg)
        cfg = settle_task(cfg, data)
    batch = max(1, min(cfg.data.batch_size, len(data.y_train)))
    on_gpu = device.type == "cuda"
    data_bytes = _data_bytes(data) if on_gpu else 0
    if budget is None:
        budget = torch.cuda.mem_get_info(device)[0] if on_gpu else available_bytes()
    cache: dict[int, dict[str, int]] = {}

    def peak(size: int) -> int:
        if size not in cache:
            try:
                cache[size] = step_memory(cfg, data, device, size)
            except (ConfigError, ModelError):
                raise
            except Exception as exc:
                first = (str(exc).strip().splitlines() or [""])[0]
                raise ForecastError(f"a training step at batch {size} could not run on fake "
                                    f"tensors ({type(exc).__name__}: {first}): no forecast "
                                    f"for this model") from None
        return cache[size]["Total"] + data_bytes

    try:
        largest, per_sample = _largest_batch(peak, batch, budget)
        parts = dict(cache[batch])
    except ModelError as exc:
        raise ConfigError(str(exc)) from None
    parts.pop("Total")
    return MemoryForecast(device.type, batch, peak(batch), parts, data_bytes, int(budget),
                          per_sample, largest, len(data.y_train))


def _largest_batch(peak, batch: int, budget: int) -> tuple[int | None, int]:
    """(the largest batch whose step peak fits ``budget``, bytes per extra sample).

    Small batches can peak in the optimizer step, where the batch does not
    matter; large ones peak in the backward pass, linearly in the batch. So the
    slope is measured at large sizes, the line solved for the budget, and the
    answer checked (and bisected down if the line was optimistic). Fake tensors
    cost the same at any size, so large sizes are as cheap to forecast as small ones.
    """
    peak(batch)
    large = max(2 * batch, 1024)
    per_sample = max(0, (peak(2 * large) - peak(large)) // large)
    if per_sample == 0:
        return (None if peak(1) > budget else 2**31 - 1), 0
    guess = int((budget - (peak(large) - per_sample * large)) // per_sample)
    if guess >= 1 and peak(guess) <= budget:
        return guess, per_sample
    fits, fails = 0, max(guess, 1)
    if peak(1) > budget:
        return None, per_sample
    fits = 1
    for _ in range(16):
        if fails - fits <= 1:
            break
        mid = (fits + fails) // 2
        if peak(mid) <= budget:
            fits = mid
        else:
            fails = mid
    return fits, per_sample


def step_memory(cfg: RunConfig, data, device: torch.device, batch: int) -> dict[str, int]:
    """Bytes by role at the peak of a training step at ``batch``, and their "Total"."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.distributed._tools.mem_tracker import MemTracker

    from ..models import build_model
    from ..models.transfer import freeze

    precision = Precision(cfg.precision.amp, device)
    shape = tuple(int(d) for d in data.input_shape)
    # Built on its device, not moved there: fake parameters cannot be swapped by .to().
    with FakeTensorMode(), torch.device(device):
        model = build_model(cfg, shape, num_outputs(cfg, data.num_classes))
        freeze(model, cfg.model.freeze)
        _frozen_as_buffers(model)
        optimizer = build_optimizer(cfg, model, set())
        loss_fn = build_loss(cfg).to(device)
        x = torch.empty((batch, *shape), device=device)
        y = (torch.zeros(batch, dtype=torch.long, device=device)
             if data.task == "classification" else torch.zeros(batch, device=device))
        tracker = MemTracker()
        tracker.track_external(model, optimizer)
        with tracker:
            for _ in range(2):
                with precision.autocast():
                    loss = loss_fn(model(x), y)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                tracker.reset_mod_stats()
        snapshot = tracker.get_tracker_snapshot("peak")
    at = next((v for k, v in snapshot.items() if k.type == device.type), {})
    return {str(getattr(k, "value", k)): int(v) for k, v in at.items()
            if str(getattr(k, "value", k)) in (*ROLES, "Total")}


def _frozen_as_buffers(model: torch.nn.Module) -> None:
    """Frozen weights held as buffers (the same bytes, counted as buffers): MemTracker hooks
    the gradient of every parameter, and a tensor without one refuses the hook (the
    forecast of a model whose first layers are frozen failed with "cannot register a hook
    on a tensor that doesn't require gradient")."""
    for module in model.modules():
        for name, param in list(module._parameters.items()):
            if param is not None and not param.requires_grad:
                del module._parameters[name]
                module.register_buffer(name, param.detach())


def _data_bytes(data) -> int:
    return sum(t.numel() * t.element_size() for t in (data.x_train, data.y_train, data.x_val,
                                                       data.y_val)
               if isinstance(t, torch.Tensor))


def _role_word(role: str) -> str:
    return {"Parameter": "parameters", "Buffer": "buffers", "Gradient": "gradients",
            "Optstate": "optimizer state", "Activation": "activations",
            "Temp": "temporaries"}.get(role, role.lower())


def size_text(n: int) -> str:
    """Bytes as a person reads them: 812 KiB, 3.4 MiB, 1.2 GiB."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            value = n / scale
            return f"{value:.1f} {unit}" if value < 100 else f"{math.floor(value)} {unit}"
    return f"{n} B"
