"""Extreme eigenvalues of the training-loss Hessian: second-order stationarity as in Ge, Wang,
Zhao (2019) (perturbed GD ends where ``lambda_min`` is not much below 0)."""

from __future__ import annotations

from typing import Any, Optional

import pytorch_lightning as pl

from .base import DiagnosticCallback
from .probes import first_samples, select_params
from lit_memo.diagnostics import hessian_extreme_eigenvalues


class HessianEigenCallback(DiagnosticCallback):
    """Logs ``hessian/lambda_min``, ``hessian/lambda_max`` and ``hessian/seconds``.

    The loss is ``pl_module.loss(pl_module(x), y)`` on a fixed batch, the first ``batch_size``
    training samples, evaluated in eval mode; the eigenvalues come from Lanczos on
    Hessian-vector products (:func:`lit_memo.diagnostics.hessian_extreme_eigenvalues`).

    Args:
        every_n_steps: optimizer steps between measurements (also at train start and end).
        batch_size: samples in the fixed batch.
        params: constraint-group names, parameter names or module prefixes; None: every
            trainable parameter.
        num_iter: Lanczos steps (memory: ``num_iter x #params`` float64 numbers).
        seed: of Lanczos's start vector (its own generator; the global RNG is not touched).
    """

    prefix = "hessian"

    def __init__(self, every_n_steps: Optional[int] = 1000, batch_size: int = 256, params: Optional[list[str]] = None,
                 num_iter: int = 30, seed: int = 0) -> None:
        super().__init__(every_n_steps)
        if batch_size < 1 or num_iter < 1:
            raise ValueError(f"batch_size and num_iter must be >= 1, got {batch_size} and {num_iter}")
        self.batch_size, self.params, self.num_iter, self.seed = batch_size, params, num_iter, seed
        self._batch = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if not callable(getattr(pl_module, "loss", None)):
            raise TypeError(f"HessianEigenCallback needs {type(pl_module).__name__}.loss(outputs, targets)")
        self._batch = None

    def measure(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        if self._batch is None:
            self._batch = first_samples(trainer, self.batch_size, pl_module.device)
        params = select_params(pl_module, self.params, default_groups=False)
        lo, hi = hessian_extreme_eigenvalues(pl_module, pl_module.loss, self._batch, params,
                                             num_iter=self.num_iter, seed=self.seed)
        return {"hessian/lambda_min": lo, "hessian/lambda_max": hi}
