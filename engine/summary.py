"""Model summary: per layer its type, output shape, parameters, FLOPs and activation memory.

The model is the one a run of the config trains: built from its data's input
shape by the model builders, started from ``model.init`` and with
``model.freeze`` applied, exactly as the Trainer does. One forward pass at the
configured batch size runs with forward hooks (output shapes and bytes) inside
torch's own ``torch.utils.flop_counter.FlopCounterMode``, whose per-module
counts are the FLOPs of each layer; then one backward pass over the trainable
parameters, so the training step's FLOPs (forward + backward; the optimizer's
elementwise update is not counted) are measured, not guessed as 3x forward.

The pass runs on fake tensors (``FakeTensorMode``: shapes without storage),
so a large model at a large batch costs no memory and little time. A model
whose forward reads values (``.item()``, data-dependent shapes), or one that
starts from ``model.init`` weights, is measured with a real pass on the CPU
instead (zeros at the configured batch); ``method`` says which.

FLOPs count a multiply-add as two, as FlopCounterMode does; it counts matrix
products and convolutions (and attention), not elementwise operations.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from .config import ConfigError, RunConfig

# torch is imported where a model is measured: the window formats summaries with this
# module's text helpers without loading torch
if TYPE_CHECKING:
    import torch
    from torch import nn

PRECISION_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "int8": 1}


class SummaryError(Exception):
    """A model whose forward pass could not be measured (the message says why)."""


@dataclass
class LayerRow:
    """One module. Parameters and FLOPs are its own (not its children's), so the rows of a
    summary add up to its totals; activation bytes are counted for leaf layers only (a
    container's output is its last layer's)."""

    name: str  # dotted, as model.named_modules() gives it; "" for the model itself
    type: str
    depth: int  # 0 for the model, 1 for its children, ...
    leaf: bool
    output_shape: list | None  # [batch, ...]; a list of shapes for several outputs; None: unused
    trainable: int = 0
    frozen: int = 0
    flops: int = 0  # forward, this module's own operations
    activation_bytes: int | None = None  # output tensors at the batch size (leaf layers)


@dataclass
class ModelSummary:
    arch: str
    input_shape: list[int]  # one sample
    batch_size: int
    method: str  # "fake": fake tensors; "real": a real pass on the CPU (see the module doc)
    layers: list[LayerRow] = field(default_factory=list)
    trainable_params: int = 0
    frozen_params: int = 0
    buffer_bytes: int = 0  # running statistics, pruning masks: stored as they are
    forward_flops: int = 0
    backward_flops: int | None = None  # None: not measured (see notes)
    activation_bytes: int = 0
    activation_dtype: str = "float32"
    notes: list[str] = field(default_factory=list)

    @property
    def total_params(self) -> int:
        return self.trainable_params + self.frozen_params

    @property
    def train_step_flops(self) -> int | None:
        return None if self.backward_flops is None else self.forward_flops + self.backward_flops

    def size_bytes(self) -> dict[str, int]:
        """The parameters' size in each precision (buffers not included)."""
        return {name: self.total_params * n for name, n in PRECISION_BYTES.items()}

    def to_dict(self) -> dict:
        return {**asdict(self), "total_params": self.total_params,
                "train_step_flops": self.train_step_flops, "size_bytes": self.size_bytes(),
                "flops_counted": "forward; backward_flops is the backward pass over the "
                                 "trainable parameters (train_step_flops = both)"}


def summarize(cfg: RunConfig, data=None, *, workspace=None) -> ModelSummary:
    """The summary of the model ``cfg`` trains; ``data`` (its DataBundle) is loaded if not given.

    ``workspace`` finds a run that ``model.init`` names. Raises ConfigError for a
    configuration (or model) that cannot be built, with the message the run would
    give, and SummaryError for a model whose forward cannot be measured.
    """
    import torch

    from .data import load_dataset, settle_task
    from .models import ModelError
    from .training.setup import num_outputs

    cfg.validate()
    if data is None:
        data = load_dataset(cfg)
        cfg = settle_task(cfg, data)
    shape = tuple(int(d) for d in data.input_shape)
    outputs = num_outputs(cfg, data.num_classes)
    batch = max(1, min(cfg.data.batch_size, len(data.y_train)))
    amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.precision.amp)
    try:
        if not cfg.model.init:
            with contextlib.suppress(Exception):  # a forward that reads values: a real pass
                return _measure(cfg, shape, outputs, batch, amp, fake=True)
        return _measure(cfg, shape, outputs, batch, amp, fake=False, workspace=workspace)
    except ModelError as exc:
        raise ConfigError(str(exc)) from None


def _measure(cfg: RunConfig, shape, outputs: int, batch: int, amp, *, fake: bool,
             workspace=None) -> ModelSummary:
    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode

    mode = FakeTensorMode() if fake else contextlib.nullcontext()
    with mode:
        model = _build(cfg, shape, outputs, workspace)
        summary = ModelSummary(cfg.model.arch, list(shape), batch, "fake" if fake else "real")
        _count_parameters(model, summary)
        x = torch.zeros((batch, *shape))
        _run_pass(model, x, amp, summary)
    if not fake:
        summary.notes.append(
            "measured with a real forward and backward pass on the CPU (zeros at the batch "
            "size): " + ("model.init loads weights" if cfg.model.init else
                         "the model's forward does not run on fake tensors"))
    return summary


def _build(cfg: RunConfig, shape, outputs: int, workspace) -> nn.Module:
    """The model as the Trainer builds it: from the config, model.init, model.freeze."""
    from .models import build_model
    from .models.fit import start_from
    from .models.transfer import freeze

    model = build_model(cfg, shape, outputs)
    init = cfg.model.init
    if init:
        if not init.endswith(".safetensors"):
            from .run_builder import run_weights
            from .workspace.store import default_workspace_dir

            init = run_weights(workspace or default_workspace_dir(), init)
        start_from(model, init, input_shape=shape, outputs=outputs)
    freeze(model, cfg.model.freeze)
    model.train()  # the mode it trains in: dropout and batch statistics as in a step
    return model


def _count_parameters(model: nn.Module, summary: ModelSummary) -> None:
    """One row per module with its own parameters, each shared tensor counted once."""
    seen: set[int] = set()
    for name, module in model.named_modules():
        row = LayerRow(name, type(module).__name__, 0 if not name else name.count(".") + 1,
                       leaf=not any(True for _ in module.children()), output_shape=None)
        for p in module.parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            if p.requires_grad:
                row.trainable += p.numel()
            else:
                row.frozen += p.numel()
        summary.layers.append(row)
    summary.trainable_params = sum(r.trainable for r in summary.layers)
    summary.frozen_params = sum(r.frozen for r in summary.layers)
    summary.buffer_bytes = sum(b.numel() * b.element_size() for b in model.buffers())


def _run_pass(model: nn.Module, x: torch.Tensor, amp, summary: ModelSummary) -> None:
    """Forward with hooks inside FlopCounterMode, then backward over the trainable parameters."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    rows = {r.name: r for r in summary.layers}
    outputs: dict[str, list[torch.Tensor]] = {}
    handles = []
    for name, module in model.named_modules():
        handles.append(module.register_forward_hook(_recorder(outputs, name)))
    counter = FlopCounterMode(display=False)
    autocast = torch.autocast("cpu", dtype=amp) if amp is not None else contextlib.nullcontext()
    try:
        with counter:
            with autocast:
                out = model(x)
            forward = counter.get_flop_counts()
            summary.forward_flops = counter.get_total_flops()
            _backward(model, out, summary)
            if summary.backward_flops is not None:
                summary.backward_flops = counter.get_total_flops() - summary.forward_flops
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise SummaryError(f"model.arch={summary.arch!r}: a forward pass at batch "
                           f"{summary.batch_size} failed ({type(exc).__name__}: {first})"
                           ) from None
    finally:
        for handle in handles:
            handle.remove()
    root = type(model).__name__
    total = {name: sum(ops.values()) for name, ops in forward.items()}
    for name, module in model.named_modules():
        row = rows[name]
        key = f"{root}.{name}" if name else root
        children = sum(total.get(f"{key}.{child}", 0) for child, _ in module.named_children())
        row.flops = max(0, total.get(key, 0) - children)
        tensors = outputs.get(name)
        if tensors:
            shapes = [list(t.shape) for t in tensors]
            row.output_shape = shapes[0] if len(shapes) == 1 else shapes
            if row.leaf:
                row.activation_bytes = sum(t.numel() * t.element_size() for t in tensors)
    summary.activation_bytes = sum(r.activation_bytes or 0 for r in summary.layers)
    dtypes = {str(t.dtype).removeprefix("torch.") for ts in outputs.values() for t in ts}
    summary.activation_dtype = ", ".join(sorted(dtypes)) or "float32"


def _recorder(outputs: dict, name: str):
    def hook(module, args, output):
        outputs[name] = _tensors(output)
    return hook


def _tensors(value) -> list[torch.Tensor]:
    """The tensors of a module's output: a tensor, or those in a tuple, list or dict."""
    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    return []


def _backward(model: nn.Module, out, summary: ModelSummary) -> None:
    """The backward pass of a training step: gradients of the trainable parameters (not stored
    in .grad) from the output's sum; the loss itself adds no counted FLOPs."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    tensors = [t for t in _tensors(out) if t.requires_grad and t.is_floating_point()]
    if not params or not tensors:
        summary.notes.append("backward FLOPs not measured: the model's output does not "
                             "depend on a trainable parameter")
        return
    loss = sum(t.float().sum() for t in tensors)
    torch.autograd.grad(loss, params, allow_unused=True)
    summary.backward_flops = 0  # set from the counter by the caller


# --- text, for `torchwork summary` and the window (on to_dict()'s plain data) ------------

def flops_text(n: int | None) -> str:
    """FLOPs with an SI prefix: 44.5 MFLOP, 1.2 GFLOP; "-" when not measured."""
    if n is None:
        return "-"
    for prefix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {prefix}FLOP"
    return f"{n} FLOP"


def bytes_text(n: int | None) -> str:
    """Bytes as a person reads them: 812 B, 3.4 KiB, 1.2 GiB; "-" for none."""
    if n is None:
        return "-"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def shape_text(shape) -> str:
    """[64, 32, 8, 8] -> "64 × 32 × 8 × 8"; several outputs joined by ";"."""
    if not shape:
        return "-"
    if isinstance(shape[0], list):
        return "; ".join(shape_text(s) for s in shape)
    return " × ".join(str(d) for d in shape)


def method_text(method: str) -> str:
    return "fake tensors" if method == "fake" else "a real pass on the CPU"


def layer_label(row: dict) -> str:
    """A row's name as the table shows it: the model itself is "(model)"."""
    return row["name"] or "(model)"


def totals_lines(d: dict) -> list[str]:
    """The totals under the table, from ``ModelSummary.to_dict()``."""
    batch = d["batch_size"]
    sizes = ", ".join(f"{k} {bytes_text(v)}" for k, v in d["size_bytes"].items())
    step = (f"training step (forward + backward) {flops_text(d['train_step_flops'])}"
            if d["train_step_flops"] is not None else "backward not measured")
    lines = [
        f"Parameters: {d['total_params']:,} ({d['trainable_params']:,} trainable, "
        f"{d['frozen_params']:,} frozen); buffers {bytes_text(d['buffer_bytes'])}",
        f"FLOPs at batch {batch}: forward {flops_text(d['forward_flops'])}, {step} "
        f"(torch.utils.flop_counter; a multiply-add counts 2)",
        f"Activations at batch {batch}: {bytes_text(d['activation_bytes'])} "
        f"({d['activation_dtype']}, the leaf layers' outputs)",
        f"Model size (parameters): {sizes}",
    ]
    return lines + [f"Note: {note}" for note in d["notes"]]


def table_text(d: dict) -> str:
    """The summary as a fixed-width table (one row per module, indented by depth), then totals."""
    head = ("Layer", "Type", "Output shape", "Trainable", "Frozen", "FLOPs", "Activations")
    rows = [("  " * r["depth"] + layer_label(r), r["type"], shape_text(r["output_shape"]),
             f"{r['trainable']:,}" if r["trainable"] else "-",
             f"{r['frozen']:,}" if r["frozen"] else "-",
             flops_text(r["flops"]) if r["flops"] else "-", bytes_text(r["activation_bytes"]))
            for r in d["layers"]]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    left = 3  # name, type and shape left-aligned; numbers right-aligned

    def line(cells) -> str:
        return "  ".join(c.ljust(w) if i < left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    rule = "-" * len(line(head))
    title = (f"Model summary: model.arch={d['arch']!r}, input {shape_text(d['input_shape'])} "
             f"per sample, batch {d['batch_size']}, measured on {method_text(d['method'])}")
    return "\n".join([title, rule, line(head), rule, *map(line, rows), rule,
                      *totals_lines(d)])
