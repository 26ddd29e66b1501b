"""Depth-two network with the zero-output Xavier initialization of Daniely (2020), Definition 5.

``h(x) = u^T sigma(W x)`` with ``W = [W'; W']`` (W' Gaussian, ``q x d``) and ``u = [B 1; -B 1]``
fixed: every hidden unit has a twin with the same weights and the opposite outer weight, so
``h = 0`` for every x at initialization. Only W trains.
"""

from __future__ import annotations

import torch
from torch import nn

from lit_memo.models.layers import check_even, make_activation


class ZeroOutputNet(nn.Module):
    """``h(x) = u^T sigma(W x)``; ``width = 2q`` hidden units, ``u = [B 1_q; -B 1_q]`` a buffer.

    Args:
        input_dim: d.
        width: 2q, the number of hidden units (even).
        activation: sigma (a smooth one: tanh or softplus; Daniely needs bounded sigma', sigma'').
        scale: B, the magnitude of the outer weights.
        weight_std: std of W' (the text: "drawn from standard gaussian", i.e. 1; with unit-norm
            inputs each pre-activation is then N(0, 1)).
    """

    def __init__(self, input_dim: int, width: int, activation: str = "tanh", scale: float = 1.0,
                 weight_std: float = 1.0) -> None:
        super().__init__()
        if input_dim < 1:
            raise ValueError(f"input_dim must be >= 1, got {input_dim}")
        check_even(width, "hidden")
        if not scale > 0:
            raise ValueError(f"scale (B) must be > 0, got {scale}")
        if not weight_std > 0:
            raise ValueError(f"weight_std must be > 0, got {weight_std}")
        q = width // 2
        self.input_dim, self.width, self.scale = input_dim, width, scale
        self.hidden = nn.Linear(input_dim, width, bias=False)
        self.act = make_activation(activation)
        self.register_buffer("u", torch.cat([torch.full((q,), float(scale)), torch.full((q,), -float(scale))]))
        with torch.no_grad():
            self.hidden.weight[:q].normal_(0.0, weight_std)
            self.hidden.weight[q:].copy_(self.hidden.weight[:q])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, q, w = x.flatten(1), self.width // 2, self.hidden.weight
        # each half through its own matmul of the same shape (one matmul over all rows may round
        # twin rows differently), twins added before the sum: at init every pair cancels exactly
        phi1, phi2 = self.act(x @ w[:q].t()), self.act(x @ w[q:].t())
        return (phi1 * self.u[:q] + phi2 * self.u[q:]).sum(1, keepdim=True)

    def extra_repr(self) -> str:
        q = self.width // 2
        return f"u = [{self.scale} x {q}, -{self.scale} x {q}] (fixed)"
