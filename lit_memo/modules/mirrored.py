"""Zero-output ("mirrored") initialization: Zhang et al. (2021) Sec. 4, Daniely (2020) Sec. 2."""

from __future__ import annotations

from typing import Callable, Iterator, Optional

import torch
from torch import nn

from lit_memo.models.layers import PairwiseLinear, check_even, lecun_normal_

_MIRRORED_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.modules.batchnorm._BatchNorm)


class MirroredInitMixin:
    """Give every hidden unit/channel a twin so that the network's output is exactly zero.

    ``mirror_init_()`` re-draws the first half of each mirrored layer's output channels (LeCun
    normal by default) and copies it into the second half: weights, biases, BatchNorm affine
    parameters and running statistics. Twins then compute identical features in train and eval
    mode, and every :class:`PairwiseLinear` output ``(phi_1 - phi_2) v`` is exactly 0.

    Mix into any ``nn.Module`` (usually a LightningModule). By default every Linear, Conv and
    BatchNorm layer except the pairwise outputs is mirrored; override ``mirrored_modules`` to
    choose. The network must end in a :class:`PairwiseLinear` for the output to vanish.
    """

    def mirrored_modules(self) -> Iterator[tuple[str, nn.Module]]:
        for name, module in self.named_modules():
            if isinstance(module, _MIRRORED_TYPES):
                yield name, module

    @torch.no_grad()
    def mirror_init_(
        self, weight_init: Optional[Callable[[torch.Tensor], torch.Tensor]] = lecun_normal_
    ) -> "MirroredInitMixin":
        """``weight_init`` draws the first half in place (None keeps the current first half)."""
        if not any(isinstance(m, PairwiseLinear) for m in self.modules()):
            raise ValueError(f"{type(self).__name__} has no PairwiseLinear output layer; mirroring alone would not zero the output")
        layers = list(self.mirrored_modules())
        for name, module in layers:  # validate everything before touching anything
            width = module.num_features if isinstance(module, nn.modules.batchnorm._BatchNorm) else module.weight.shape[0]
            check_even(width, name)
        for name, module in layers:
            if weight_init is not None and not isinstance(module, nn.modules.batchnorm._BatchNorm):
                half = module.weight.shape[0] // 2
                weight_init(module.weight[:half])
            for tensor in (module.weight, getattr(module, "bias", None), getattr(module, "running_mean", None), getattr(module, "running_var", None)):
                if tensor is not None:
                    half = tensor.shape[0] // 2
                    tensor[half:].copy_(tensor[:half])
        for module in self.modules():
            if isinstance(module, PairwiseLinear):
                module.reset_parameters()
        return self
