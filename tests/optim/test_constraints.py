"""Issue 7 point 8: both constraints take a tensor, a list of tensors or a module, the same way."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lit_memo.models import PairwiseLinear
from lit_memo.optim import BallConstraint, OuterConstraint


def same(a, b) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b))


def test_ball_takes_a_tensor_a_list_or_a_module():
    layer = nn.Linear(4, 3)
    assert same(BallConstraint(layer.weight, 1.0).params, [layer.weight])  # one tensor, not its 3 rows
    assert same(BallConstraint([layer.weight, layer.bias], 1.0).params, [layer.weight, layer.bias])
    assert same(BallConstraint((p for p in layer.parameters()), 1.0).params, [layer.weight, layer.bias])
    assert same(BallConstraint(layer, 1.0).params, [layer.weight, layer.bias])
    block = nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4))
    assert same(BallConstraint(block, 1.0).params, list(block.parameters()))


def test_outer_takes_a_tensor_or_a_module_with_one_parameter():
    head = PairwiseLinear(6, 2)
    assert OuterConstraint(head.weight, 0.1, 2.0).param is head.weight
    assert OuterConstraint(head, 0.1, 2.0).param is head.weight
    assert OuterConstraint([head.weight], 0.1, 2.0).param is head.weight
    with pytest.raises(ValueError, match="one tensor .* got 2"):
        OuterConstraint(nn.Linear(3, 1), 0.1, 2.0)  # weight and bias


@pytest.mark.parametrize("cls,args", [(BallConstraint, (1.0,)), (OuterConstraint, (0.1, 2.0))])
def test_bad_arguments_name_what_is_accepted(cls, args):
    with pytest.raises(TypeError, match="takes a tensor, a list of tensors or an nn.Module, got float"):
        cls(3.0, *args)
    with pytest.raises(TypeError, match="item 1 is a str, not a tensor"):
        cls([torch.zeros(2), "w"], *args)
    with pytest.raises(ValueError, match="got no parameters"):
        cls(nn.ReLU(), *args)


def test_a_tensor_ball_projects_the_whole_tensor_as_one_vector():
    w = nn.Parameter(torch.ones(3, 4))
    ball = BallConstraint(w, 1.0)
    ball.project_([torch.zeros(3, 4)])
    assert torch.allclose(w.detach().norm(), torch.tensor(1.0))
    assert torch.allclose(w.detach(), torch.full((3, 4), 1 / 12**0.5))  # scaled as one vector, not per row
