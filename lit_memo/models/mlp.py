"""Fully connected network with several hidden layers: Zhang et al. (2021) App. H, Fig. 7 (MNIST)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from lit_memo.models.layers import PairwiseLinear, lecun_normal_, make_activation


class MLP(nn.Module):
    """``hidden.0`` -> act -> ``hidden.1`` -> act -> ... -> ``output``; inputs of any shape are flattened.

    Args:
        input_dim: input features.
        hidden_widths: width of each hidden layer (the paper's MNIST net: two).
        output_dim: outputs (classes).
        activation: tanh, relu, softplus or square.
        pairwise: ``output`` is :class:`PairwiseLinear` (``f = (phi_1 - phi_2) v``) instead of a
            bias-free ``nn.Linear``.
        bias: biases in the hidden layers.

    Weights start LeCun normal (variance 1/fan_in), biases at 0.
    """

    def __init__(self, input_dim: int, hidden_widths: Sequence[int] = (1024, 118), output_dim: int = 10,
                 activation: str = "relu", pairwise: bool = False, bias: bool = True) -> None:
        super().__init__()
        widths = list(hidden_widths)
        if not widths or min(widths) < 1 or input_dim < 1 or output_dim < 1:
            raise ValueError(f"hidden_widths must list at least one width >= 1 and input_dim, output_dim must be "
                             f">= 1, got hidden_widths={widths}, input_dim={input_dim}, output_dim={output_dim}")
        dims = [input_dim] + widths
        self.hidden = nn.ModuleList(nn.Linear(a, b, bias=bias) for a, b in zip(dims[:-1], dims[1:]))
        self.act = make_activation(activation)
        self.output = (PairwiseLinear(widths[-1], output_dim) if pairwise
                       else nn.Linear(widths[-1], output_dim, bias=False))
        for layer in self.hidden:
            lecun_normal_(layer.weight)
            if bias:
                nn.init.zeros_(layer.bias)
        if not pairwise:
            lecun_normal_(self.output.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for layer in self.hidden:
            x = self.act(layer(x))
        return self.output(x)
