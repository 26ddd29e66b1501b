"""LightningModules for the quadratic networks of Ge, Wang, Zhao (2019), Sec. 2.2-4 and App. A."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from lit_memo.models.quadratic import QuadraticNet, ThreeLayerQuadraticNet
from lit_memo.modules.base import MemorizationModule


def only_regular(cls_name: str, kwargs: dict, why: str) -> None:
    """Zhang et al.'s regimes presuppose a trained outer layer; refuse them where there is none."""
    regime = kwargs.get("regime", "regular")
    if regime != "regular":
        raise ValueError(f"{cls_name}: regime {regime!r} does not apply ({why}); use regime: regular")
    for name in ("radius", "zeta", "gamma"):
        if name in kwargs and not math.isinf(kwargs[name]) and not (name == "zeta" and kwargs[name] == 0):
            raise ValueError(f"{cls_name}: {name} is a constraint of Zhang et al.'s 'ours' regime and does not "
                             "apply here; remove it")
    if kwargs.get("lr_outer") is not None:
        raise ValueError(f"{cls_name}: lr_outer does not apply (the outer weights are fixed); use lr_hidden or the "
                         "optimizer's lr")


class QuadraticModule(MemorizationModule):
    """Trains W of ``f(x) = sum_i a_i (w_i^T x)^2`` (a fixed +-1) on squared loss (Ge et al. Sec. 3).

    The objective is ``mean_j (f(x_j) - y_j)^2 + lam/2 ||W||_F^2``: Ge et al.'s
    ``1/2 sum_j r_j^2 + gamma/2 ||W||_F^2`` times ``2/n`` (so ``lam = 2 gamma / n``); ``train/loss``
    logs this whole objective (what the optimizer, PerturbedGD included, descends) and, when
    ``lam > 0``, ``train/mse`` the data term alone.

    Only regime ``regular`` is accepted: the outer weights are fixed to +-1, so Zhang et al.'s
    mirrored pairwise layer and projections (``ours``, ``constrained_regular``) have nothing to
    act on.

    Args:
        width: k, the number of hidden units (even; Ge et al. Theorem 4: k >= 2d).
        lam: the regularization weight (0: none).
        init_std: std of W's initial entries (None: 1/sqrt(input dimension)).
        **kwargs: the shared options of :class:`MemorizationModule` (optimizer, lr_hidden, ...).
    """

    def __init__(self, width: int = 1568, lam: float = 0.0, init_std: Optional[float] = None, regime: str = "regular",
                 **kwargs) -> None:
        only_regular(type(self).__name__, dict(kwargs, regime=regime), "Ge et al. fix the outer weights to +-1")
        super().__init__(regime=regime, **kwargs)  # plain **kwargs: jsonargparse follows it to the base's options
        if not lam >= 0:
            raise ValueError(f"lam must be >= 0, got {lam}")
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        self.lam = lam
        if self.num_outputs != 1 or self.task != "regression":
            raise ValueError(f"{type(self).__name__} has one real output for squared loss; the data give "
                             f"task={self.task!r}, num_outputs={self.num_outputs} (use data targets: float)")
        self.net = self.build_net(math.prod(self.input_shape), width, init_std)
        self._last_mse: Optional[torch.Tensor] = None

    def build_net(self, input_dim: int, width: int, init_std: Optional[float]) -> nn.Module:
        return QuadraticNet(input_dim, width, init_std)

    @property
    def quadratic(self) -> QuadraticNet:
        return self.net

    @property
    def hidden_width(self) -> int:
        return self.quadratic.width

    def certificate_features(self, x: torch.Tensor) -> torch.Tensor:
        """The vectors whose squares ``v (x) v`` Ge et al.'s landscape condition is about: the inputs."""
        return x.flatten(1)

    def hidden_parameters(self) -> list[nn.Parameter]:
        return [self.quadratic.weight]

    def outer_parameters(self) -> list[nn.Parameter]:
        return []

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        mse = super().loss(out, y)
        if self.lam == 0:
            return mse
        self._last_mse = mse.detach()
        return mse + 0.5 * self.lam * self.quadratic.weight.pow(2).sum()

    def training_step(self, batch, batch_idx: int):
        loss = super().training_step(batch, batch_idx)
        if self.lam > 0 and self._last_mse is not None:
            self.log("train/mse", self._last_mse, on_step=True, on_epoch=False)
        return loss


class ThreeLayerQuadraticModule(QuadraticModule):
    """Ge et al. Sec. 4: fixed random features ``z = (V x)^p`` then the quadratic net; W trains.

    Args:
        features: the dimension of z (rows of V).
        power: p (2 in the paper's experiments).
        feature_scale: std of V's entries.
        feature_seed: V's seed (its own generator: V is the same in every run with this seed).
        width, lam, init_std, **kwargs: as :class:`QuadraticModule` (width against the z dimension).
    """

    def __init__(self, features: int = 400, power: int = 2, feature_scale: float = 1.0, feature_seed: int = 0,
                 **kwargs) -> None:
        self._feature_args = dict(features=features, power=power, feature_scale=feature_scale, feature_seed=feature_seed)
        super().__init__(**kwargs)

    def build_net(self, input_dim: int, width: int, init_std: Optional[float]) -> nn.Module:
        return ThreeLayerQuadraticNet(input_dim, width=width, init_std=init_std, **self._feature_args)

    @property
    def quadratic(self) -> QuadraticNet:
        return self.net.quadratic

    def certificate_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.features(x)
