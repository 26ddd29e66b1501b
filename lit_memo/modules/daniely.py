"""LightningModule for Daniely (2020): zero-output init, SGD with step eta/B^2, random +-1 labels."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import BinaryAccuracy

from lit_memo.models.daniely import ZeroOutputNet
from lit_memo.modules.base import SPLITS, MemorizationModule
from lit_memo.modules.quadratic import only_regular

LOSSES = ("logistic", "hinge")


class DanielyModule(MemorizationModule):
    """Trains W of ``h(x) = u^T sigma(W x)`` (``W = [W'; W']``, ``u = [B 1; -B 1]`` fixed) on +-1 labels.

    The step scaling of Daniely's Algorithm 1 (step ``eta / B^2``) is applied through the
    learning rate: the hidden weights' parameter group gets ``lr = eta / B^2`` (``lr_hidden``
    of :class:`MemorizationModule`), whatever the optimizer (SGD in the paper). The gradient
    w.r.t. W grows like B, so the output moves by O(eta) per step for every B, and large B is
    the kernel (NTK) regime of Theorem 8.

    Labels must be +-1 floats (``SyntheticDataModule`` with ``labels: sign``). The loss is
    our choice (Daniely's analysis needs a convex Lipschitz loss): ``logistic``,
    ``log(1 + exp(-y h))``, or ``hinge``, ``max(0, 1 - y h)``. ``train/acc`` is the fraction of
    samples with ``sign(h(x)) = y``.

    Only regime ``regular`` is accepted: the zero-output init is Daniely's own and always on;
    Zhang et al.'s pairwise v and projections have no trained outer layer to act on.

    Args:
        width: 2q, the number of hidden units (even); Daniely: about n/d (times polylog factors).
        activation: sigma, smooth (tanh, softplus).
        scale: B.
        eta: the step before scaling (the learning rate is eta / B^2).
        weight_std: std of W' (1: the text's standard Gaussian).
        loss: ``logistic`` or ``hinge``.
    """

    def __init__(self, width: int = 200, activation: str = "tanh", scale: float = 10.0, eta: float = 1.0,
                 weight_std: float = 1.0, loss: str = "logistic", regime: str = "regular", **kwargs) -> None:
        if kwargs.get("lr_hidden") is not None:
            raise ValueError("DanielyModule sets the learning rate to eta / scale^2 itself; give eta instead of lr_hidden")
        if not eta > 0:
            raise ValueError(f"eta must be > 0, got {eta}")
        if not scale > 0:
            raise ValueError(f"scale (B) must be > 0, got {scale}")
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        only_regular(type(self).__name__, dict(kwargs, regime=regime), "the zero-output init is Daniely's own and u is fixed")
        super().__init__(regime=regime, lr_hidden=eta / scale**2, **kwargs)
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        if self.num_outputs != 1 or self.task != "regression":
            raise ValueError(f"DanielyModule has one real output for +-1 labels; the data give task={self.task!r}, "
                             f"num_outputs={self.num_outputs} (use SyntheticDataModule with labels: sign)")
        self.loss_name = loss
        self.net = ZeroOutputNet(math.prod(self.input_shape), width, activation, scale, weight_std)
        for split in SPLITS:
            setattr(self, f"{split}_sign_acc", BinaryAccuracy())
        self._labels_checked = False

    @property
    def hidden_width(self) -> int:
        return self.net.width

    def hidden_parameters(self) -> list[nn.Parameter]:
        return [self.net.hidden.weight]

    def outer_parameters(self) -> list[nn.Parameter]:
        return []

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if not self._labels_checked:  # once: a host sync on the first batch only
            if not bool(((y == 1) | (y == -1)).all()):
                raise ValueError("DanielyModule needs labels in {-1, +1}; got other values "
                                 "(use SyntheticDataModule with labels: sign)")
            self._labels_checked = True
        margin = y * out.reshape(y.shape)
        if self.loss_name == "logistic":
            return F.softplus(-margin).mean()
        return F.relu(1 - margin).mean()

    # train/acc and val/test acc: the fraction with sign(h) = y (h = 0 counts as -1)
    def _log_eval_acc(self, split: str, out: torch.Tensor, y: torch.Tensor) -> None:
        out = out.reshape(y.shape)
        acc = getattr(self, f"{split}_sign_acc")
        acc((out > 0).long(), (y > 0).long())
        self.log(f"{split}/acc", acc, prog_bar=True, on_step=False, on_epoch=True)

    def _log_train_acc(self, out: torch.Tensor, y: torch.Tensor) -> None:
        out = out.reshape(y.shape)
        self._log_step_metric("train/acc", self.train_sign_acc, (out > 0).long(), (y > 0).long())
