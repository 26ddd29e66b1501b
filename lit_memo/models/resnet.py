"""ResNet-18 with a narrowed final block: Zhang et al. (2021) Sec. 5.2, App. H (Fig. 5, 8, 9).

Built from torchvision's own ``ResNet`` and ``BasicBlock``; only ``layer4``'s width, the stem and
the head differ from ``torchvision.models.resnet18``.
"""

from __future__ import annotations

from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet

from lit_memo.models.layers import PairwiseLinear, lecun_normal_

STEMS = ("cifar", "imagenet")
LAYER4_WIDTH = 512  # torchvision's (and the paper's widest) layer4 width


class ResNet18(ResNet):
    """ResNet-18 whose ``layer4`` has ``layer4_width`` channels (512 in torchvision's).

    Args:
        num_classes: outputs of the head ``fc``.
        layer4_width: channels of both BasicBlocks of ``layer4`` (and of its 1x1 downsample
            shortcut); the paper narrows it from 512 down to 64.
        stem: ``cifar`` (3x3 conv, stride 1, no max pool: the usual CIFAR ResNet for 32x32
            images) or ``imagenet`` (torchvision's 7x7 conv, stride 2, 3x3 max pool).
        in_channels: input channels of the stem conv (3 for RGB).
        pairwise: head ``fc`` is :class:`PairwiseLinear` (``f = (phi_1 - phi_2) v``, Zhang et al.'s
            mirrored regime) instead of a plain ``nn.Linear``.

    Every conv/linear weight starts LeCun normal (variance 1/fan_in, the papers' init) instead of
    torchvision's Kaiming fan-out; BatchNorm starts at weight 1, bias 0 (torchvision's). The
    head has no bias in either case (our choice: so the two regimes differ only in mirroring).
    """

    def __init__(self, num_classes: int = 10, layer4_width: int = LAYER4_WIDTH, stem: str = "cifar",
                 in_channels: int = 3, pairwise: bool = False) -> None:
        if stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}, got {stem!r}")
        if layer4_width < 1 or num_classes < 1 or in_channels < 1:
            raise ValueError(f"layer4_width, num_classes and in_channels must be >= 1, got "
                             f"{layer4_width}, {num_classes}, {in_channels}")
        super().__init__(BasicBlock, [2, 2, 2, 2], num_classes=num_classes)
        self.layer4_width, self.stem = layer4_width, stem
        if stem == "cifar":
            self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        elif in_channels != 3:
            self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        if layer4_width != LAYER4_WIDTH:
            self.inplanes = 256  # layer3's output: torchvision's _make_layer reads it
            self.layer4 = self._make_layer(BasicBlock, layer4_width, 2, stride=2)
        self.fc = (PairwiseLinear(layer4_width, num_classes, name="fc") if pairwise
                   else nn.Linear(layer4_width, num_classes, bias=False))
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                lecun_normal_(m.weight)
