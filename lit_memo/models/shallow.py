"""One-hidden-layer network ``f(x) = sum_i v_i sigma(w_i^T x)`` of Zhang et al. (2021), Sec. 4."""

from __future__ import annotations

import torch
from torch import nn

from lit_memo.models.layers import PairwiseLinear, check_even, lecun_normal_, make_activation


class OneHiddenLayerNet(nn.Module):
    """Hidden layer ``hidden`` (weights W, ``width x input_dim``), activation, output layer ``output``.

    With ``pairwise=True`` the output layer is :class:`PairwiseLinear` (trains v of width/2, the
    second half's outer weights are -v); otherwise a plain bias-free ``nn.Linear``. Inputs of any
    shape are flattened. Weights start LeCun normal (variance 1/fan_in) in both cases.
    """

    def __init__(
        self,
        input_dim: int,
        width: int,
        output_dim: int = 1,
        activation: str = "tanh",
        pairwise: bool = False,
        bias: bool = False,
    ) -> None:
        super().__init__()
        if input_dim < 1 or width < 1 or output_dim < 1:
            raise ValueError(f"input_dim, width and output_dim must be >= 1, got {input_dim}, {width}, {output_dim}")
        if pairwise:
            check_even(width, "hidden")
        self.hidden = nn.Linear(input_dim, width, bias=bias)
        self.act = make_activation(activation)
        self.output = PairwiseLinear(width, output_dim) if pairwise else nn.Linear(width, output_dim, bias=False)
        lecun_normal_(self.hidden.weight)
        if bias:
            nn.init.zeros_(self.hidden.bias)
        if not pairwise:
            lecun_normal_(self.output.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.act(self.hidden(x.flatten(1))))
