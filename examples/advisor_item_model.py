"""A model for `examples/advisor-item-sync.toml`: an MLP whose forward reads a tensor's value
back every step (a "did the activations blow up?" check), a host-device sync in every
step that `torchwork advise` names by its line."""

import torch
from torch import nn


class CheckedMLP(nn.Module):
    def __init__(self, features: int, outputs: int):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(features, 128), nn.ReLU(), nn.Linear(128, 128),
                                  nn.ReLU(), nn.Linear(128, outputs))

    def forward(self, x):
        out = self.body(x)
        if out.abs().max().item() > 1e6:  # the planted sync: .item() in every step
            raise FloatingPointError("the activations blew up")
        return out


def build_model(input_shape, num_outputs):
    return CheckedMLP(int(input_shape[0]), num_outputs)
