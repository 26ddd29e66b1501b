"""LightningModule for the one-hidden-layer network (Zhang et al. 2021 Sec. 5.1, Fig. 4)."""

from __future__ import annotations

import math

from torch import nn

from lit_memo.models.shallow import OneHiddenLayerNet
from lit_memo.modules.base import MemorizationModule


class ShallowNetModule(MemorizationModule):
    """``f(x) = sum_i v_i sigma(w_i^T x)``; the hidden weights W are the ball-constrained group.

    Args:
        width: number of hidden units m (even for the ``ours`` regime).
        activation: tanh, relu, softplus or square.
        bias: hidden-layer bias (Zhang et al. use none).
        **kwargs: the shared options of :class:`MemorizationModule` (regime, radius, lrs, ...).
    """

    def __init__(self, width: int = 400, activation: str = "tanh", bias: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        self.net = OneHiddenLayerNet(
            input_dim=math.prod(self.input_shape),
            width=width,
            output_dim=self.num_outputs,
            activation=activation,
            pairwise=self.regime.mirrored,
            bias=bias,
        )
        self.init_network_()

    def hidden_parameters(self) -> list[nn.Parameter]:
        return list(self.net.hidden.parameters())

    def outer_parameters(self) -> list[nn.Parameter]:
        return [self.net.output.weight]
