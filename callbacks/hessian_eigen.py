"""Extreme eigenvalues of the training-loss Hessian: second-order stationarity as in Ge, Wang,
Zhao (2019) (perturbed GD ends where ``lambda_min`` is not much below 0)."""

from __future__ import annotations

from typing import Any, Callable, Optional, Union

import pytorch_lightning as pl
import torch
from torch import nn

from .base import DiagnosticCallback
from .probes import first_samples, select_params
from lit_memo.diagnostics import hessian_extreme_eigenvalues


class HessianEigenCallback(DiagnosticCallback):
    """Logs ``hessian/lambda_min``, ``hessian/lambda_max`` and ``hessian/seconds``.

    The loss is ``loss_fn(pl_module(x), y)`` on a fixed batch, the first ``batch_size``
    training samples, evaluated in eval mode; the eigenvalues come from Lanczos on
    Hessian-vector products (:func:`lit_memo.diagnostics.hessian_extreme_eigenvalues`).
    ``loss_fn`` is, in this order: the ``loss`` argument, the module's ``loss(outputs, targets)``
    method, the module's ``criterion`` (the usual name in Lightning templates); with none of
    them, fit stops at setup with an error naming the three.

    Args:
        every_n_steps: optimizer steps between measurements (also at train start and end).
        batch_size: samples in the fixed batch.
        params: constraint-group names, parameter names or module prefixes; None: every
            trainable parameter.
        num_iter: Lanczos steps (memory: ``num_iter x #params`` float64 numbers).
        seed: of Lanczos's start vector (its own generator; the global RNG is not touched).
        loss: ``(outputs, targets) -> scalar``, e.g. ``torch.nn.MSELoss()`` or, in YAML,
            ``{class_path: torch.nn.CrossEntropyLoss}`` or ``torch.nn.functional.mse_loss``.
    """

    prefix = "hessian"

    def __init__(self, every_n_steps: Optional[int] = 1000, batch_size: int = 256, params: Optional[list[str]] = None,
                 num_iter: int = 30, seed: int = 0,
                 loss: Optional[Union[nn.Module, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]] = None) -> None:
        super().__init__(every_n_steps)
        if batch_size < 1 or num_iter < 1:
            raise ValueError(f"batch_size and num_iter must be >= 1, got {batch_size} and {num_iter}")
        if loss is not None and not callable(loss):
            raise TypeError(f"HessianEigenCallback(loss=...) must be callable as loss(outputs, targets), got {loss!r}")
        self.batch_size, self.params, self.num_iter, self.seed = batch_size, params, num_iter, seed
        self.loss = loss
        self._batch = None
        self._loss_fn: Optional[Callable] = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self._loss_fn = self.resolve_loss(pl_module)
        if isinstance(self._loss_fn, nn.Module) and self._loss_fn is not getattr(pl_module, "criterion", None):
            self._loss_fn.to(pl_module.device)  # e.g. CrossEntropyLoss's class weights
        self._batch = None

    def resolve_loss(self, pl_module: pl.LightningModule) -> Callable:
        """The loss argument, else ``pl_module.loss``, else ``pl_module.criterion``."""
        for candidate in (self.loss, getattr(pl_module, "loss", None), getattr(pl_module, "criterion", None)):
            if callable(candidate):
                return candidate
        raise TypeError(
            f"HessianEigenCallback needs a loss: pass HessianEigenCallback(loss=...) (in YAML: init_args.loss: "
            f"{{class_path: torch.nn.MSELoss}}), or give {type(pl_module).__name__} a loss(outputs, targets) "
            "method or a callable criterion attribute")

    def measure(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        if self._batch is None:
            self._batch = first_samples(trainer, self.batch_size, pl_module.device)
        params = select_params(pl_module, self.params, default_groups=False)
        lo, hi = hessian_extreme_eigenvalues(pl_module, self._loss_fn, self._batch, params,
                                             num_iter=self.num_iter, seed=self.seed)
        return {"hessian/lambda_min": lo, "hessian/lambda_max": hi}
