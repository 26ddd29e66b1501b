"""Constraint groups: which parameters a constraint covers and the set they must stay in.

A group treats all its parameters as one vector (e.g. the whole final ResNet block is one
Frobenius ball). The anchors of a ball (its centre, the initial weights) live in the
LightningModule that declares the group (see ``ProjectedOptimizerMixin``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn

from lit_memo.optim.projections import check_outer_set, check_radius, project_ball_, project_outer_


@dataclass
class BallConstraint:
    """``||W - W0||_F <= radius`` over all of ``params`` together (radius = inf: none)."""

    params: Sequence[nn.Parameter]
    radius: float
    needs_anchor: bool = field(default=True, init=False)

    def __post_init__(self) -> None:
        check_radius(self.radius)
        self.params = list(self.params)

    @property
    def active(self) -> bool:
        return not math.isinf(self.radius)

    def project_(self, anchors: Sequence[torch.Tensor]) -> bool:
        return project_ball_(self.params, anchors, self.radius)


@dataclass
class OuterConstraint:
    """``|v_i| >= zeta`` and ``max|v| <= gamma min|v|`` over all entries of ``param``."""

    param: nn.Parameter
    zeta: float
    gamma: float
    needs_anchor: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        check_outer_set(self.zeta, self.gamma)

    @property
    def params(self) -> list[nn.Parameter]:
        return [self.param]

    @property
    def active(self) -> bool:
        return True

    def project_(self, anchors: Sequence[torch.Tensor] = ()) -> bool:
        return project_outer_(self.param.data, self.zeta, self.gamma)


Constraint = BallConstraint | OuterConstraint
