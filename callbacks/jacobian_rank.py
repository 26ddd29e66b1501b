"""Smallest singular value and rank of the Jacobian along training: Zhang et al. (2021) Fig. 4 c-d,
and the PL certificate of the lecture notes (papers/003)."""

from __future__ import annotations

from typing import Any, Optional

import pytorch_lightning as pl
import torch

from .base import has_wandb
from .probes import ProbeCallback, select_params
from lit_memo.diagnostics import default_rtol, jacobian_spectrum, resolve_params, spectrum_summary
from lit_memo.diagnostics.jacobian import DEFAULT_MAX_BYTES


class JacobianRankCallback(ProbeCallback):
    """Logs ``jacobian/sigma_min``, ``sigma_max``, ``rank``, ``condition`` and ``seconds``; on W&B
    also ``jacobian/spectrum`` (a histogram of all singular values).

    J is the Jacobian of the outputs on the probe set (the first ``num_probes`` training samples,
    fixed for the run) w.r.t. ``params``, from :func:`lit_memo.diagnostics.jacobian_spectrum`.

    Args:
        every_n_steps: optimizer steps between measurements (also at train start and end).
        num_probes: k, the number of training samples in the probe set.
        params: constraint-group names, parameter names or module prefixes (``net.hidden``);
            None: the module's constrained groups, or every trainable parameter without any.
        rank_rtol, rank_atol: a singular value counts when ``> max(atol, rtol * sigma_max)``;
            rtol None: ``max(rows, cols) * eps`` of the parameters' dtype (torch.linalg.matrix_rank's).
        max_bytes: memory bound of one temporary Jacobian block.
    """

    prefix = "jacobian"

    def __init__(self, every_n_steps: Optional[int] = 500, num_probes: int = 32, params: Optional[list[str]] = None,
                 rank_rtol: Optional[float] = None, rank_atol: float = 0.0, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        super().__init__(every_n_steps, num_probes)
        self.params = params
        self.rank_rtol, self.rank_atol, self.max_bytes = rank_rtol, rank_atol, max_bytes

    def measure(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        sv, metrics = self.spectrum(pl_module, self.probes(trainer, pl_module))
        if has_wandb(trainer) and bool(torch.isfinite(sv).all()):  # NaN weights (diverged): no histogram exists
            import wandb

            metrics["jacobian/spectrum"] = wandb.Histogram(sv.cpu().numpy())
        return metrics

    def spectrum(self, pl_module: pl.LightningModule, probes: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any]]:
        """The singular values of J at ``probes`` w.r.t. this callback's parameters, and their summary
        (``jacobian/sigma_min``, ``rank``, ...); also used by the sweep's batched groups at the end."""
        params = list(resolve_params(pl_module, select_params(pl_module, self.params, default_groups=True)).values())
        sv = jacobian_spectrum(pl_module, probes, params, max_bytes=self.max_bytes)
        rtol = self.rank_rtol
        if rtol is None:
            with torch.no_grad():
                rows = len(probes) * pl_module(probes[:1]).numel()  # k * C
            rtol = default_rtol(rows, sum(p.numel() for p in params), params[0].dtype)
        return sv, {f"jacobian/{k}": v for k, v in spectrum_summary(sv, rtol, self.rank_atol).items()}
