"""Fit a freshly built model to saved weights whose layers were pruned, and start runs from them.

Structured pruning removes channels, so a pruned model's layers are narrower
than its config builds. Its weights still name the same layers: rebuilding
from the config and resizing each layer to the saved tensors' shapes gives the
pruned model back, with no pickled module (Torch-Pruning's own
``tp.load_state_dict`` restores a pickled ``__dict__``, which a
``weights_only`` load cannot check). Unstructured pruning keeps the shapes but
carries masks (``weight_orig`` and ``weight_mask``); they are put back as
torch.nn.utils.prune masks, so training cannot regrow the pruned weights.

``model.init`` starts a run from such a file (a Torchwork safetensors export) or
from a trained run: fine-tuning a pruned model is then an ordinary run, and a
model trained on other data loads what fits (engine.models.transfer).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import prune

from engine.config import file_problem

from .errors import ModelError
from .transfer import InitReport, load_matching

META_KEY = "torchwork"  # the metadata entry (safetensors header, ONNX props, .pt2 extra file)
KEEP_ZEROS = "keep_zeros"  # meta: tensors whose zeros are pruned weights, kept at zero


def fit_to_state(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """Resize ``model``'s layers to the tensors of ``state`` and put back its pruning masks.

    Returns ``model`` (changed in place), ready for ``load_state_dict(state)``.
    Raises ModelError when the state names other tensors than the model has,
    or when a layer whose size changed is of a kind that cannot be resized.
    """
    # "x.weight_orig" + "x.weight_mask" is the masked tensor "x.weight" (5 = len("_orig"))
    wanted, masks = _unmasked(state)
    masked = sorted(masks)
    own = dict(model.named_parameters())
    own.update(model.named_buffers())
    missing = sorted(set(own) - set(wanted))
    extra = sorted(set(wanted) - set(own))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"lacks {', '.join(missing[:4])}{' …' if len(missing) > 4 else ''}")
        if extra:
            parts.append(f"has unknown {', '.join(extra[:4])}{' …' if len(extra) > 4 else ''}")
        raise ModelError(f"the saved weights do not belong to this architecture (the file "
                         f"{' and '.join(parts)}): build it from the config it was saved with")
    for name, tensor in wanted.items():
        if tuple(own[name].shape) != tuple(tensor.shape):
            _resize(model, name, tuple(tensor.shape))
    for name in masked:
        module_name, _, tensor_name = name.rpartition(".")
        module = model.get_submodule(module_name)
        if not prune.is_pruned(module) or not hasattr(module, tensor_name + "_mask"):
            prune.custom_from_mask(module, tensor_name, torch.ones_like(state[name + "_mask"]))
    return model


def _resize(model: nn.Module, name: str, shape: tuple[int, ...]) -> None:
    module_name, _, tensor_name = name.rpartition(".")
    module = model.get_submodule(module_name)
    old = getattr(module, tensor_name)
    new = torch.zeros(shape, dtype=old.dtype, device=old.device)
    if isinstance(old, nn.Parameter):
        setattr(module, tensor_name, nn.Parameter(new, requires_grad=old.requires_grad))
    else:
        module._buffers[tensor_name] = new
    if tensor_name != "weight" and not (tensor_name == "running_mean"
                                        and isinstance(module, nn.modules.batchnorm._NormBase)):
        return
    if isinstance(module, nn.Linear):
        module.out_features, module.in_features = shape[0], shape[1]
    elif isinstance(module, nn.modules.conv._ConvNd):
        if module.groups > 1 and module.groups == module.out_channels:  # depthwise
            module.groups = shape[0]
        module.out_channels, module.in_channels = shape[0], shape[1] * module.groups
    elif isinstance(module, nn.modules.batchnorm._NormBase):
        module.num_features = shape[0]
    elif isinstance(module, nn.LayerNorm):
        module.normalized_shape = shape
    elif isinstance(module, nn.Embedding):
        module.num_embeddings, module.embedding_dim = shape
    else:
        raise ModelError(f"layer {module_name or '(model)'} ({type(module).__name__}) has "
                         f"{tensor_name} {tuple(old.shape)} but the saved weights have {shape}: "
                         f"only Linear, Conv, BatchNorm, LayerNorm and Embedding layers can "
                         f"take pruned sizes")


def fold_masks(model: nn.Module) -> nn.Module:
    """Make pruning masks permanent: no ``weight_orig``, no hooks, zeros stay zeros."""
    for module in model.modules():
        if prune.is_pruned(module):
            for hook in list(module._forward_pre_hooks.values()):
                if isinstance(hook, prune.BasePruningMethod):
                    prune.remove(module, hook._tensor_name)
    return model


def read_init(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """The tensors and the Torchwork metadata of a safetensors file ``model.init`` names."""
    from safetensors import SafetensorError, safe_open

    missing = file_problem("model.init", str(path))  # the message the form shows before a run
    if missing:
        raise ModelError(missing)
    path = Path(path).expanduser()
    try:
        with safe_open(str(path), framework="pt") as fh:
            header = fh.metadata() or {}
            state = {k: fh.get_tensor(k) for k in fh.keys()}
    except (SafetensorError, OSError) as exc:
        raise ModelError(f"model.init: cannot read {path} as safetensors ({exc}): the file is "
                         f"damaged or not a safetensors file") from None
    try:
        meta = json.loads(header.get(META_KEY, "{}"))
    except json.JSONDecodeError:
        meta = {}
    return state, meta


def start_from(model: nn.Module, source: str | Path | InitSource, *,
               input_shape: tuple[int, ...] | None = None,
               outputs: int | None = None) -> InitReport:
    """Load ``model.init``'s weights (a safetensors file, or a run's read by the caller into
    an InitSource) into a freshly built model; returns what was loaded, for the run's log.

    A source for the same inputs and outputs loads whole, pruned sizes and masks
    included (``fit_to_state``). A source trained on other data (another number of
    classes or inputs: the model with the saved sizes does not take ``input_shape``
    to ``outputs``) loads the tensors whose names and shapes match, and the others
    (the output head) keep their fresh initialization. Tensors a file lists under
    ``keep_zeros`` (an unstructured-pruned model) get masks from their zeros, so
    those weights stay zero while the run trains.
    """
    if not isinstance(source, InitSource):
        if not str(source).endswith(".safetensors"):
            raise ModelError(f"model.init={str(source)!r} names a run: build the run with "
                             f"engine.run_builder.build_trainer and the workspace that holds it")
        state, meta = read_init(source)
        source = InitSource(state, meta, str(source))
    state, meta, label = source.state, source.meta, source.label
    wanted, masks = _unmasked(state)
    own = dict(model.named_parameters())
    own.update(model.named_buffers())
    same_names = set(own) == set(wanted)
    same_shapes = same_names and all(tuple(own[k].shape) == tuple(v.shape)
                                     for k, v in wanted.items())
    if same_shapes or (same_names and _fits_task(model, state, input_shape, outputs)):
        fit_to_state(model, state)
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise ModelError(f"model.init: the weights in {label} do not fit the model ({first})"
                             ) from None
        report = InitReport(label, loaded=list(wanted), resized=not same_shapes)
    else:
        report = load_matching(model, wanted, masks, label)
    loaded = set(report.loaded)
    for name in meta.get(KEEP_ZEROS, []):
        if name not in loaded:
            continue
        module_name, _, tensor_name = name.rpartition(".")
        try:
            module = model.get_submodule(module_name)
        except AttributeError:
            raise ModelError(f"model.init: {label} keeps zeros of {name}, which the model does "
                             f"not have") from None
        prune.custom_from_mask(module, tensor_name, getattr(module, tensor_name).detach() != 0)
    return report


@dataclass(frozen=True)
class InitSource:
    """Weights to start from, already read: a run's checkpoint (engine.run_builder reads it
    from the workspace) or a file's tensors; ``label`` names it in messages and the log."""

    state: dict[str, torch.Tensor]
    meta: dict
    label: str


def _unmasked(state: dict[str, torch.Tensor]
              ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The tensors by their plain names (a masked "x.weight" is its "x.weight_orig"), and the
    masks by the same names."""
    wanted, masks = {}, {}
    for key, tensor in state.items():
        base = key[:-5]
        if key.endswith("_orig") and base + "_mask" in state:
            wanted[base] = tensor
        elif key.endswith("_mask") and base + "_orig" in state:
            masks[base] = state[key]
        else:
            wanted[key] = tensor
    return wanted, masks


def _fits_task(model: nn.Module, state: dict[str, torch.Tensor],
               input_shape: tuple[int, ...] | None, outputs: int | None) -> bool:
    """Whether ``model`` resized to ``state`` (a pruned model) still takes the run's input to
    its outputs; if not, the saved model was trained on other data, and this is a transfer."""
    if input_shape is None or outputs is None:
        return True  # nothing to check against: sizes are taken, as before transfer existed
    trial = copy.deepcopy(model)
    try:
        fit_to_state(trial, state)
        trial.eval()
        with torch.no_grad():
            out = trial(torch.zeros(2, *input_shape))
    except Exception:  # any layer that cannot take the input: not the same task
        return False
    return tuple(out.shape) == (2, outputs)
