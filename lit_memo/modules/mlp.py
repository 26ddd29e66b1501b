"""LightningModule for the MNIST network with two hidden layers: Zhang et al. (2021) App. H, Fig. 7."""

from __future__ import annotations

import math
from typing import Sequence

from lit_memo.models.mlp import MLP
from lit_memo.modules.deep import DeepNetModule


class MLPModule(DeepNetModule):
    """A fully connected net trained in one of the regimes; by default the second hidden layer is constrained.

    In ``ours`` every hidden layer is mirrored (weights and biases) and the output layer is
    pairwise, so the output is exactly 0 at init; the parameters of ``constrained_modules``
    (default ``hidden.1``, the paper's "layer 2") form one Frobenius ball around their initial
    value and the output layer's v is kept in V (see :class:`DeepNetModule`).

    Args:
        hidden_widths: width of each hidden layer (``hidden.0``, ``hidden.1``, ...).
        activation: tanh, relu, softplus or square (the paper's: relu).
        bias: biases in the hidden layers.
        constrained_modules: modules of the net forming the ball-constrained group.
        **kwargs: the shared options of :class:`MemorizationModule` (regime, radius, zeta, gamma, lrs, ...).
    """

    head_name = "output"

    def __init__(self, hidden_widths: Sequence[int] = (1024, 118), activation: str = "relu", bias: bool = True,
                 constrained_modules: Sequence[str] = ("hidden.1",), **kwargs) -> None:
        super().__init__(constrained_modules=constrained_modules, **kwargs)
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        self.net = MLP(input_dim=math.prod(self.input_shape), hidden_widths=hidden_widths,
                       output_dim=self.num_outputs, activation=activation, pairwise=self.regime.mirrored, bias=bias)
        self._finish_net_()
