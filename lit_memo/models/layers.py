"""Layers shared by the network families: the pairwise output layer and the activations."""

from __future__ import annotations

import math

import torch
from torch import nn


class Square(nn.Module):
    """``sigma(z) = z^2`` (the quadratic activation of Ge et al. 2019)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * x


ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "softplus": nn.Softplus, "square": Square}


def make_activation(name: str) -> nn.Module:
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}") from None


def check_even(width: int, layer: str) -> None:
    if width % 2:
        raise ValueError(
            f"layer {layer!r} has width {width}, which is odd: mirrored/pairwise layers pair unit i with "
            f"unit i + width/2, so the width must be even (use {width + 1} or {width - 1})"
        )


class PairwiseLinear(nn.Module):
    """Output layer ``f = (phi_1 - phi_2) v`` of Zhang et al. (2021), problem (10).

    The incoming features ``phi`` have ``in_features`` channels; ``phi_1`` is the first half and
    ``phi_2`` the second. Only ``weight`` (= v, shape ``out x in/2``) is trained, so the outer
    weights of the second half are ``-v`` by construction, not by a constraint.
    """

    def __init__(self, in_features: int, out_features: int, name: str = "output") -> None:
        super().__init__()
        check_even(in_features, name)
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features // 2))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # LeCun normal with the fan-in of the full layer (in_features units feed each output)
        nn.init.normal_(self.weight, std=1.0 / math.sqrt(self.in_features))

    def forward(self, phi: torch.Tensor) -> torch.Tensor:
        half = self.in_features // 2
        return (phi[..., :half] - phi[..., half:]) @ self.weight.t()

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features} (trains v of {self.in_features // 2})"


def lecun_normal_(weight: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """N(0, 1/fan_in) in place, fan_in = product of all but the first dimension."""
    fan_in = weight[0].numel()
    with torch.no_grad():
        return weight.normal_(0.0, 1.0 / math.sqrt(fan_in), generator=generator)
