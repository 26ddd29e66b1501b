"""LightningModule for ResNet-18 with a narrowed ``layer4``: Zhang et al. (2021) Sec. 5.2, Fig. 5, 8, 9."""

from __future__ import annotations

from typing import Sequence

import torch

from lit_memo.models.resnet import LAYER4_WIDTH, ResNet18
from lit_memo.modules.deep import DeepNetModule


class ResNet18Module(DeepNetModule):
    """ResNet-18 (torchvision's blocks) trained in one of the regimes; ``layer4`` is the constrained block.

    In ``ours`` every conv, BatchNorm (affine parameters and running statistics) and 1x1
    downsample shortcut is mirrored and the head ``fc`` is pairwise, so the output is exactly 0
    at init in train and eval mode; all parameters of ``layer4`` form one Frobenius ball around
    their initial value and the head's v is kept in V (see :class:`DeepNetModule` for what V
    means with several classes).

    Args:
        layer4_width: channels of ``layer4`` (512 in torchvision's ResNet-18; the paper goes down to 64).
        stem: ``cifar`` (3x3 conv, no max pool) or ``imagenet`` (7x7 conv stride 2 + max pool).
        constrained_modules: modules of the net forming the ball-constrained group (default ``[layer4]``).
        channels_last: keep weights and inputs in channels-last memory format (faster convolutions
            on GPUs with tensor cores, especially with ``trainer.precision: bf16-mixed``).
        **kwargs: the shared options of :class:`MemorizationModule` (regime, radius, zeta, gamma, lrs, ...).

    SyncBatchNorm under DDP: set ``trainer.sync_batchnorm: true`` (Lightning converts every
    BatchNorm, keeping the parameters, so the constraint groups are unchanged).
    """

    head_name = "fc"

    def __init__(self, layer4_width: int = LAYER4_WIDTH, stem: str = "cifar",
                 constrained_modules: Sequence[str] = ("layer4",), channels_last: bool = False, **kwargs) -> None:
        super().__init__(constrained_modules=constrained_modules, **kwargs)
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        if len(self.input_shape) != 3:
            raise ValueError(f"ResNet18Module needs image inputs (C, H, W), got input_shape {self.input_shape}: "
                             "set data.init_args.flatten=false (and no pca_dim)")
        self.channels_last = channels_last
        self.net = ResNet18(num_classes=self.num_outputs, layer4_width=layer4_width, stem=stem,
                            in_channels=self.input_shape[0], pairwise=self.regime.mirrored)
        self._finish_net_()
        if channels_last:  # after the init: the values are the same, only the strides change
            self.net.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)
