"""The MNIST network with several hidden layers (Zhang et al. 2021, Fig. 7)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lit_memo.models import MLP, PairwiseLinear


def test_layers_widths_and_parameter_count():
    net = MLP(784, [100, 30], 10, bias=True)
    assert [(l.in_features, l.out_features) for l in net.hidden] == [(784, 100), (100, 30)]
    assert sum(p.numel() for p in net.parameters()) == 784 * 100 + 100 + 100 * 30 + 30 + 30 * 10
    pair = MLP(784, [100, 30], 10, pairwise=True, bias=False)
    assert isinstance(pair.output, PairwiseLinear)
    assert sum(p.numel() for p in pair.parameters()) == 784 * 100 + 100 * 30 + 15 * 10


def test_forward_matches_a_hand_written_composition():
    torch.manual_seed(0)
    net = MLP(12, [8, 6], 3, activation="tanh")
    x = torch.randn(5, 3, 4)
    h = x.flatten(1)
    for layer in net.hidden:
        h = torch.tanh(h @ layer.weight.t() + layer.bias)
    assert torch.allclose(net(x), h @ net.output.weight.t(), atol=1e-6)


@pytest.mark.parametrize("kwargs,message", [
    ({"hidden_widths": []}, "at least one width"),
    ({"hidden_widths": [10, 0]}, "at least one width >= 1"),
    ({"activation": "gelu"}, "unknown activation 'gelu'"),
    ({"hidden_widths": [10, 7], "pairwise": True}, "width 7, which is odd"),
])
def test_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MLP(784, **{"output_dim": 10, **kwargs})


def test_init_is_lecun():
    torch.manual_seed(0)
    net = MLP(784, [2048, 64], 10)
    assert abs(net.hidden[0].weight.var().item() * 784 - 1) < 0.02 and torch.all(net.hidden[0].bias == 0)
    assert isinstance(net.act, nn.ReLU)
