"""Constraint groups: which parameters a constraint covers and the set they must stay in.

A group treats all its parameters as one vector (e.g. the whole final ResNet block is one
Frobenius ball). The anchors of a ball (its centre, the initial weights) live in the
LightningModule that declares the group (see ``ProjectedOptimizerMixin``). Both constraints take
their parameters the same ways: a tensor, a list of tensors, or a module (its parameters).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence, Union

import torch
from torch import nn

from lit_memo.optim.projections import Moved, check_outer_set, check_radius, project_ball_, project_outer_

ParamsLike = Union[torch.Tensor, nn.Module, Iterable[torch.Tensor]]


def as_parameter_list(params: ParamsLike, what: str) -> list[torch.Tensor]:
    """A tensor, a module (its parameters) or an iterable of tensors, as a list of tensors.

    A bare tensor is one tensor, never iterated: ``list(weight)`` would split it into its rows.
    """
    if isinstance(params, torch.Tensor):
        out = [params]
    elif isinstance(params, nn.Module):
        out = list(params.parameters())
    else:
        try:
            out = list(params)
        except TypeError:
            raise TypeError(f"{what} takes a tensor, a list of tensors or an nn.Module, got {type(params).__name__}") from None
    for i, t in enumerate(out):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{what}: item {i} is a {type(t).__name__}, not a tensor (pass a tensor, a list of tensors or an nn.Module)")
    if not out:
        raise ValueError(f"{what} got no parameters (an empty list, or a module without parameters)")
    return out


@dataclass
class BallConstraint:
    """``||W - W0||_F <= radius`` over all of ``params`` together (radius = inf: none).

    ``params``: a tensor, a list of tensors, or a module (all its parameters form one vector).
    """

    params: ParamsLike
    radius: float
    needs_anchor: bool = field(default=True, init=False)

    def __post_init__(self) -> None:
        check_radius(self.radius)
        self.params = as_parameter_list(self.params, "BallConstraint")

    @property
    def active(self) -> bool:
        return not math.isinf(self.radius)

    def project_(self, anchors: Sequence[torch.Tensor], sync_free: Optional[bool] = None) -> Moved:
        return project_ball_(self.params, anchors, self.radius, sync_free=sync_free)


@dataclass
class OuterConstraint:
    """``|v_i| >= zeta`` and ``max|v| <= gamma min|v|`` over all entries of ``param``.

    ``param``: a tensor, or a module or one-element list holding exactly one parameter (e.g. a
    :class:`PairwiseLinear` head, whose only parameter is v).
    """

    param: ParamsLike
    zeta: float
    gamma: float
    needs_anchor: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        check_outer_set(self.zeta, self.gamma)
        params = as_parameter_list(self.param, "OuterConstraint")
        if len(params) != 1:
            raise ValueError(f"OuterConstraint constrains one tensor (v), got {len(params)}: pass the weight itself, e.g. head.weight")
        self.param = params[0]

    @property
    def params(self) -> list[torch.Tensor]:
        return [self.param]

    @property
    def active(self) -> bool:
        return True

    def project_(self, anchors: Sequence[torch.Tensor] = (), sync_free: Optional[bool] = None) -> Moved:
        return project_outer_(self.param.data, self.zeta, self.gamma, sync_free=sync_free)


Constraint = BallConstraint | OuterConstraint
