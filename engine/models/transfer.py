"""Transfer learning: load the saved layers that fit a model built for other data; freeze layers.

A model trained on one dataset and started on another (more classes, other
inputs) shares its inner layers but not its output head, nor its first layer
when the inputs differ. Loading by name and shape keeps every tensor whose
shape matches; the others keep the fresh initialization the model was built
with (seeded like any run), and the report says which and why, for the run's log.

``model.freeze`` names layers by prefix, as ``model.named_parameters()`` does
("0", "features.3"); a prefix matches the name itself and what lies under it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.utils import prune

from .errors import ModelError


@dataclass
class InitReport:
    """What ``model.init`` did to a freshly built model, for the log and the optimizer."""

    source: str
    loaded: list[str] = field(default_factory=list)  # state names (masked: "x.weight")
    fresh: list[tuple[str, str]] = field(default_factory=list)  # (name, why it starts fresh)
    unused: list[str] = field(default_factory=list)  # in the source, not in the model
    resized: bool = False  # layers took the source's (pruned) sizes
    renamed: dict[str, str] = field(default_factory=dict)  # this model's name -> the source's

    def loaded_parameters(self, model: nn.Module) -> set[str]:
        """Names of ``model``'s parameters that came from the source (``x.weight_orig`` for
        a masked ``x.weight``): the backbone that optim.backbone_lr_scale slows down."""
        loaded = set(self.loaded)
        return {name for name, _ in model.named_parameters()
                if name in loaded or name.removesuffix("_orig") in loaded}

    def lines(self) -> list[str]:
        """The log's account: one line for what was loaded, one per tensor that starts fresh."""
        what = "all" if not self.fresh and not self.unused else "the matching"
        sized = " (layers took the saved, pruned sizes)" if self.resized else ""
        out = [f"model.init: loaded {what} {len(self.loaded)} tensors from {self.source}"
               f"{sized}: {_layers(self.loaded)}"]
        out += [f"model.init: re-initialised {name} ({why})" for name, why in self.fresh]
        if self.renamed:
            pairs = ", ".join(f"{s} -> {n}" for n, s in self.renamed.items()
                              if n in set(self.loaded))
            out.append(f"model.init: layers matched by their order among the layers with "
                       f"weights (the saved model has other layers without weights, such as "
                       f"Flatten or Dropout): {pairs}")
        if self.unused:
            out.append(f"model.init: not used from {self.source} (this model has no such "
                       f"tensor): {', '.join(self.unused)}")
        return out


def _layers(names: list[str]) -> str:
    """Tensor names grouped by layer: "0 (weight, bias), 2 (weight, bias)"."""
    by_layer: dict[str, list[str]] = {}
    for name in names:
        layer, _, tensor = name.rpartition(".")
        by_layer.setdefault(layer or "(model)", []).append(tensor)
    return ", ".join(f"{layer} ({', '.join(tensors)})" for layer, tensors in by_layer.items())


def load_matching(model: nn.Module, wanted: dict[str, torch.Tensor],
                  masks: dict[str, torch.Tensor], source: str) -> InitReport:
    """Copy each tensor of ``wanted`` whose name and shape ``model`` has; the rest stays fresh.

    ``masks`` (name -> 0/1 mask) puts pruning masks back on the loaded tensors
    they belong to. Raises ModelError when nothing fits: the source is then not
    a relative of this model at all, and training it from scratch by mistake
    would hide that.
    """
    own = dict(model.named_parameters())
    own.update(model.named_buffers())
    own = {name.removesuffix("_orig") if name.endswith("_orig") and name[:-5] + "_mask" in own
           else name: tensor for name, tensor in own.items() if not name.endswith("_mask")}
    report = InitReport(source)
    if set(own) != set(wanted):  # matched by layer order: see by_layer_order
        by_key = {key: name for name, key in by_layer_order(list(wanted)).items()}
        renamed = {name: by_key.get(key) for name, key in by_layer_order(list(own)).items()}
        report.renamed = {n: s for n, s in renamed.items() if s is not None and s != n}
        wanted = {name: wanted[s] for name, s in renamed.items() if s is not None}
        unused = sorted(set(by_key.values()) - set(renamed.values()))
    else:
        unused = []
    for name, tensor in own.items():
        saved = wanted.get(name)
        if saved is None:
            report.fresh.append((name, f"missing from {source}"))
        elif tuple(saved.shape) != tuple(tensor.shape):
            report.fresh.append((name, f"shape mismatch: saved {tuple(saved.shape)}, this "
                                       f"model {tuple(tensor.shape)}"))
        else:
            report.loaded.append(name)
    report.unused = unused
    if not report.loaded:
        raise ModelError(f"model.init: none of the {len(wanted)} tensors in {source} fits this "
                         f"model (it has {', '.join(list(own)[:4])}{' …' if len(own) > 4 else ''}"
                         f"; the source has {', '.join(list(wanted)[:4])}"
                         f"{' …' if len(wanted) > 4 else ''}): start from a run or export of "
                         f"the same architecture")
    with torch.no_grad():
        for name in report.loaded:
            own[name].copy_(wanted[name])
    for name in report.loaded:
        if name in masks:
            module_name, _, tensor_name = name.rpartition(".")
            module = model.get_submodule(module_name)
            if not hasattr(module, tensor_name + "_mask"):
                prune.custom_from_mask(module, tensor_name, masks[name].to(torch.bool))
    return report


def by_layer_order(names: list[str]) -> dict[str, tuple]:
    """Each tensor name's place among the layers that hold tensors: "1.weight" of
    [Flatten, Linear, ReLU, Linear] and "0.weight" of [Linear, ReLU, Linear] are both
    (0, "weight"). Layers without weights (Flatten, Dropout, an activation) shift the
    indices of an nn.Sequential between two builds of one architecture (image or
    tabular input, dropout on or off); their order among the weighted layers does not.
    ``names`` in registration order, as a state dict lists them."""
    ranks: dict[str, dict[str, int]] = {}  # parent path -> child name -> rank
    keys = {}
    for name in names:
        *path, tensor = name.split(".")
        key, parent = [], ""
        for part in path:
            siblings = ranks.setdefault(parent, {})
            key.append(siblings.setdefault(part, len(siblings)))
            parent = f"{parent}.{part}"
        keys[name] = (*key, tensor)
    return keys


def _under(name: str, prefix: str) -> bool:
    prefix = prefix.rstrip(".")
    return name == prefix or name.startswith(prefix + ".")


def freeze(model: nn.Module, prefixes: list[str]) -> list[nn.Module]:
    """Keep the parameters under ``prefixes`` fixed (requires_grad False).

    Returns the normalization layers under them (batch norm and the like): they
    must stay in eval mode while the rest trains, or their running statistics
    would still move. Raises ModelError naming a prefix that matches no
    parameter, with the model's top-level layers to choose from.
    """
    if not prefixes:
        return []
    params = {name.removesuffix("_orig"): p for name, p in model.named_parameters()}
    unmatched = [p for p in prefixes if not any(_under(name, p) for name in params)]
    if unmatched:
        raise ModelError(f"model.freeze: {', '.join(repr(p) for p in unmatched)} "
                         f"{'matches' if len(unmatched) == 1 else 'match'} no parameter of this "
                         f"model; its top-level layers are {_top_level(model)}")
    for name, p in params.items():
        if any(_under(name, prefix) for prefix in prefixes):
            p.requires_grad_(False)
    if not any(p.requires_grad for p in params.values()):
        raise ModelError(f"model.freeze={list(prefixes)!r} freezes every parameter, so the run "
                         f"would train nothing: leave out the output layer "
                         f"(top-level layers: {_top_level(model)})")
    return [m for name, m in model.named_modules()
            if isinstance(m, nn.modules.batchnorm._NormBase)
            and any(_under(name, prefix) for prefix in prefixes)]


def _top_level(model: nn.Module) -> str:
    """"0 (Linear), 2 (Linear), 4 (Linear)": the layers that hold parameters."""
    names = [f"{name} ({type(child).__name__})" for name, child in model.named_children()
             if any(True for _ in child.parameters())]
    names += [name for name, _ in model.named_parameters(recurse=False)]
    return ", ".join(names) or "(none)"
