from __future__ import annotations

import pytest
import torch
from torch import nn

from lit_memo.models import ACTIVATIONS, OneHiddenLayerNet, PairwiseLinear
from lit_memo.modules import ShallowNetModule


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_pairwise_network_outputs_zero_at_init_in_train_and_eval(activation):
    torch.manual_seed(0)
    module = ShallowNetModule(input_shape=(7,), num_outputs=3, width=64, activation=activation, regime="ours")
    x = torch.randn(129, 7)
    for mode in (True, False):
        module.train(mode)
        assert torch.equal(module(x), torch.zeros(129, 3))


def test_pairwise_layer_trains_half_the_outer_weights_and_twins_differ_after_a_step():
    module = ShallowNetModule(input_shape=(4,), width=10, regime="ours")
    assert module.net.output.weight.shape == (1, 5)
    w = module.net.hidden.weight
    assert torch.equal(w[:5], w[5:])
    loss = (module(torch.randn(8, 4)) - 1).pow(2).mean()
    loss.backward()
    assert not torch.equal(w.grad[:5], w.grad[5:])  # +v vs -v: the twins get opposite-sign gradients


def test_regular_network_is_not_zero_and_has_plain_output():
    module = ShallowNetModule(input_shape=(4,), width=11, regime="regular")
    assert isinstance(module.net.output, nn.Linear)
    assert module(torch.randn(5, 4)).abs().sum() > 0


def test_lecun_variance():
    net = OneHiddenLayerNet(input_dim=400, width=2000, pairwise=False)
    assert abs(net.hidden.weight.var().item() * 400 - 1) < 0.02
    assert abs(net.output.weight.var().item() * 2000 - 1) < 0.2


@pytest.mark.parametrize("make", [
    lambda: OneHiddenLayerNet(5, 7, pairwise=True),
    lambda: PairwiseLinear(7, 1),
    lambda: ShallowNetModule(input_shape=(5,), width=7, regime="ours"),
])
def test_odd_width_names_the_layer(make):
    with pytest.raises(ValueError, match=r"layer '(hidden|output)'.*odd"):
        make()


def test_unknown_activation():
    with pytest.raises(ValueError, match="activation"):
        OneHiddenLayerNet(3, 4, activation="gelu")
