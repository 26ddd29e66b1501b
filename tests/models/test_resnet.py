"""ResNet-18 with a narrowed layer4: torchvision's blocks, stems, heads, and the parameters layer4_width saves."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn
from torchvision.models import resnet18
from torchvision.models.resnet import BasicBlock, ResNet

from conftest import ROOT
from lit_memo.models import PairwiseLinear, ResNet18


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def layer4_count(w: int) -> int:
    """By hand: two BasicBlocks (3x3 convs 256->w, w->w, w->w, w->w; 1x1 shortcut 256->w; 5 BatchNorms)."""
    return 9 * 256 * w + 3 * 9 * w * w + 256 * w + 5 * 2 * w


def test_built_from_torchvision_blocks():
    net = ResNet18(num_classes=10, layer4_width=64)
    assert isinstance(net, ResNet)
    assert [type(b) for layer in (net.layer1, net.layer2, net.layer3, net.layer4) for b in layer] == [BasicBlock] * 8
    assert net.layer4[0].conv1.out_channels == 64 and net.layer4[0].downsample[0].kernel_size == (1, 1)


@pytest.mark.parametrize("classes", [10, 100])
def test_width_512_imagenet_stem_is_torchvisions_resnet18(classes):
    """Same parameter shapes as torchvision.models.resnet18, except the head has no bias."""
    ours = {k: v.shape for k, v in ResNet18(classes, stem="imagenet").named_parameters()}
    ref = {k: v.shape for k, v in resnet18(num_classes=classes).named_parameters()}
    assert ours == {k: s for k, s in ref.items() if k != "fc.bias"}


@pytest.mark.parametrize("width", [64, 128, 256])
@pytest.mark.parametrize("pairwise", [False, True])
def test_layer4_width_changes_exactly_layer4_and_the_head(width, pairwise):
    classes = 10
    head = (lambda w: w // 2 * classes) if pairwise else (lambda w: w * classes)
    narrow = ResNet18(classes, layer4_width=width, pairwise=pairwise)
    full = ResNet18(classes, layer4_width=512, pairwise=pairwise)
    assert count(narrow.layer4) == layer4_count(width)
    assert count(full) - count(narrow) == layer4_count(512) - layer4_count(width) + head(512) - head(width)
    for name in ("conv1", "bn1", "layer1", "layer2", "layer3"):
        assert count(getattr(narrow, name)) == count(getattr(full, name)), name


def test_readme_states_the_parameters_saved_at_width_64():
    """The percentages in README's "Deep networks" section are these counts."""
    layer4 = 1 - count(ResNet18(10, 64).layer4) / count(ResNet18(10, 512).layer4)
    whole = 1 - count(ResNet18(10, 64)) / count(ResNet18(10, 512))
    readme = (ROOT / "README.md").read_text()
    assert f"{100 * layer4:.1f}% fewer layer4 parameters" in readme
    assert f"{100 * whole:.1f}% fewer parameters in the whole network" in readme


def test_stems():
    cifar, imagenet = ResNet18(10, 64, stem="cifar"), ResNet18(10, 64, stem="imagenet")
    assert cifar.conv1.kernel_size == (3, 3) and cifar.conv1.stride == (1, 1) and isinstance(cifar.maxpool, nn.Identity)
    assert imagenet.conv1.kernel_size == (7, 7) and imagenet.conv1.stride == (2, 2)
    assert isinstance(imagenet.maxpool, nn.MaxPool2d)
    assert ResNet18(10, 64, in_channels=1).conv1.in_channels == 1
    # stride 1, no pool: a 16x16 input reaches layer4 at 2x2; the ImageNet stem divides by 4 first
    feats = {}
    for name, net in (("cifar", cifar), ("imagenet", imagenet)):
        net.layer4.register_forward_hook(lambda m, i, o, name=name: feats.__setitem__(name, o.shape))
        net(torch.randn(2, 3, 16, 16) if name == "cifar" else torch.randn(2, 3, 64, 64))
    assert feats == {"cifar": (2, 64, 2, 2), "imagenet": (2, 64, 2, 2)}


def test_head_and_init():
    pair = ResNet18(10, 64, pairwise=True)
    assert isinstance(pair.fc, PairwiseLinear) and pair.fc.weight.shape == (10, 32)
    plain = ResNet18(10, 64)
    assert isinstance(plain.fc, nn.Linear) and plain.fc.bias is None
    torch.manual_seed(0)
    w = ResNet18(10, 512).layer4[1].conv2.weight  # LeCun: variance 1/fan_in, fan_in = 512 * 9
    assert abs(w.var().item() * 512 * 9 - 1) < 0.01


def test_forward_backward_reaches_every_parameter():
    net = ResNet18(10, 16, pairwise=True)
    net(torch.randn(4, 3, 16, 16)).square().sum().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert missing == []


@pytest.mark.parametrize("kwargs,message", [
    ({"stem": "tiny"}, "stem must be one of"),
    ({"layer4_width": 0}, "must be >= 1"),
    ({"layer4_width": 63, "pairwise": True}, re.escape("layer 'fc' has width 63, which is odd")),
])
def test_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ResNet18(10, **kwargs)
