"""Quadratic-activation networks of Ge, Wang, Zhao (2019), Sec. 2.2 and App. A.

Two-layer: ``f(x) = sum_i a_i (w_i^T x)^2`` with ``a`` fixed to +1 on the first half of the
hidden units and -1 on the second; only W trains. Three-layer: a fixed random first layer
``z = (V x)^p`` (random features, p = 2 in the paper's experiments), then the two-layer net on z;
only the middle layer W trains.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from lit_memo.models.layers import check_even


def signed_halves(width: int) -> torch.Tensor:
    """``a = [+1, ..., +1, -1, ..., -1]``: the fixed outer weights of Ge et al. Sec. 2.2."""
    check_even(width, "hidden")
    return torch.cat([torch.ones(width // 2), -torch.ones(width // 2)])


class QuadraticNet(nn.Module):
    """``f(x) = sum_i a_i (w_i^T x)^2``: W (``width x input_dim``) trains, ``a`` is a buffer.

    ``a`` is saved in checkpoints (a persistent buffer) but is no parameter, so no optimizer ever
    sees it. W starts ``N(0, init_std^2)`` (default ``1/sqrt(input_dim)``, LeCun: our choice; the
    paper's landscape result holds from any initialization). Output shape ``(N, 1)``.
    """

    def __init__(self, input_dim: int, width: int, init_std: Optional[float] = None) -> None:
        super().__init__()
        if input_dim < 1:
            raise ValueError(f"input_dim must be >= 1, got {input_dim}")
        if width < 2:
            raise ValueError(f"width must be an even number >= 2, got {width}")
        self.input_dim, self.width = input_dim, width
        self.weight = nn.Parameter(torch.empty(width, input_dim))
        self.register_buffer("a", signed_halves(width))
        std = 1.0 / math.sqrt(input_dim) if init_std is None else init_std
        if not std >= 0:
            raise ValueError(f"init_std must be >= 0, got {init_std}")
        with torch.no_grad():
            self.weight.normal_(0.0, std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1) @ self.weight.t()
        return (h * h) @ self.a.unsqueeze(1)

    def extra_repr(self) -> str:
        return f"input_dim={self.input_dim}, width={self.width} (a = +1 x {self.width // 2}, -1 x {self.width // 2}, fixed)"


class RandomFeatures(nn.Module):
    """``z = (V x)^p`` elementwise, V (``features x input_dim``) a fixed buffer, ``N(0, scale^2)``.

    V is drawn from its own generator seeded by ``seed`` (independent of the global RNG, so
    the same seed gives the same features in every run and on every rank) and is saved in
    checkpoints as a persistent buffer; it is never a parameter.
    """

    def __init__(self, input_dim: int, features: int, power: int = 2, scale: float = 1.0, seed: int = 0) -> None:
        super().__init__()
        if input_dim < 1 or features < 1:
            raise ValueError(f"input_dim and features must be >= 1, got {input_dim}, {features}")
        if power < 1:
            raise ValueError(f"power must be an integer >= 1, got {power}")
        if not scale > 0:
            raise ValueError(f"scale (the std of V's entries) must be > 0, got {scale}")
        self.power = power
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("V", torch.randn(features, input_dim, generator=gen) * scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.flatten(1) @ self.V.t()).pow(self.power)


class ThreeLayerQuadraticNet(nn.Module):
    """Ge et al. Sec. 2.2 three-layer net: :class:`RandomFeatures` then :class:`QuadraticNet`.

    Only the middle layer (``quadratic.weight``) trains; V and ``a`` are fixed buffers.
    """

    def __init__(self, input_dim: int, features: int, width: int, power: int = 2, feature_scale: float = 1.0,
                 feature_seed: int = 0, init_std: Optional[float] = None) -> None:
        super().__init__()
        self.features = RandomFeatures(input_dim, features, power, feature_scale, feature_seed)
        self.quadratic = QuadraticNet(features, width, init_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.quadratic(self.features(x))
