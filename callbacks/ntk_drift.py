"""Relative drift of the empirical NTK from its value at the start of training: the lazy-training
diagnostic of the lecture notes (papers/003)."""

from __future__ import annotations

from typing import Any, Optional

import pytorch_lightning as pl
import torch

from .probes import ProbeCallback, select_params
from lit_memo.diagnostics import ntk_drift, ntk_gram
from lit_memo.diagnostics.jacobian import DEFAULT_MAX_BYTES


class NTKDriftCallback(ProbeCallback):
    """Logs ``ntk/drift = ||K_t - K_0||_F / ||K_0||_F`` and ``ntk/seconds``.

    ``K = J J^T`` on the probe set (the first ``num_probes`` training samples). ``K_0`` is taken
    at the first train start and kept in the callback's checkpoint state, so a resumed run keeps
    measuring against the initial kernel.

    Args:
        every_n_steps: optimizer steps between measurements (also at train start and end).
        num_probes: k, the number of training samples in the probe set.
        params: constraint-group names, parameter names or module prefixes; None: every
            trainable parameter (the usual empirical NTK).
        max_bytes: memory bound of one temporary Jacobian block.
    """

    prefix = "ntk"

    def __init__(self, every_n_steps: Optional[int] = 500, num_probes: int = 32, params: Optional[list[str]] = None,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        super().__init__(every_n_steps, num_probes)
        self.params, self.max_bytes = params, max_bytes
        self.kernel_0: Optional[torch.Tensor] = None

    def measure(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        params = select_params(pl_module, self.params, default_groups=False)
        kernel = ntk_gram(pl_module, self.probes(trainer, pl_module), params, max_bytes=self.max_bytes)
        if self.kernel_0 is None:
            self.kernel_0 = kernel
        return {"ntk/drift": ntk_drift(kernel, self.kernel_0)}

    def state_dict(self) -> dict[str, Any]:
        return {"kernel_0": None if self.kernel_0 is None else self.kernel_0.cpu()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.kernel_0 = state_dict.get("kernel_0")
