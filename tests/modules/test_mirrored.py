"""MirroredInitMixin on a network it does not know: a small CNN with BatchNorm and a shortcut conv."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lit_memo import MirroredInitMixin
from lit_memo.models import PairwiseLinear


class TinyResCNN(MirroredInitMixin, nn.Module):
    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.body = nn.Sequential(nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
                                  nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width))
        self.shortcut = nn.Sequential(nn.Conv2d(width, 2 * width, 1, stride=2), nn.BatchNorm2d(2 * width))
        self.fc = PairwiseLinear(2 * width, 4)

    def forward(self, x):
        h = self.stem(x)
        h = torch.relu(self.body(h) + self.shortcut(h))
        return self.fc(h.mean((2, 3)))


def test_mirrored_cnn_outputs_exactly_zero_in_train_and_eval():
    torch.manual_seed(0)
    net = TinyResCNN().mirror_init_()
    x = torch.randn(6, 3, 9, 9)
    with torch.no_grad():
        for bn in (m for m in net.modules() if isinstance(m, nn.BatchNorm2d)):
            # give the running statistics something to mirror
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.5, 2)
            bn.weight.normal_()
            bn.bias.normal_()
    net.mirror_init_(weight_init=None)  # keep the weights, re-mirror everything
    net.train()
    assert torch.equal(net(x), torch.zeros(6, 4))
    net.eval()
    assert torch.equal(net(x), torch.zeros(6, 4))
    for name, m in net.mirrored_modules():
        for t in (m.weight, m.bias, getattr(m, "running_mean", None)):
            if t is not None:
                h = t.shape[0] // 2
                assert torch.equal(t[:h], t[h:]), name


def test_odd_channel_count_names_the_layer():
    net = TinyResCNN()
    net.stem[0] = nn.Conv2d(3, 7, 3)
    with pytest.raises(ValueError, match="layer 'stem.0'"):
        net.mirror_init_()


def test_without_pairwise_output_it_refuses():
    class Plain(MirroredInitMixin, nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 4), nn.Linear(4, 1)

    with pytest.raises(ValueError, match="PairwiseLinear"):
        Plain().mirror_init_()
