"""Empirical neural tangent kernel and its drift: the lazy-training diagnostic of the lecture
notes (papers/003): for very wide nets ``K_t = J_t J_t^T`` stays near ``K_0`` along training."""

from __future__ import annotations

import torch
from torch import nn

from lit_memo.diagnostics.functional import ParamSpec
from lit_memo.diagnostics.jacobian import DEFAULT_MAX_BYTES, jacobian_gram


def ntk_gram(model: nn.Module, inputs: torch.Tensor, params: ParamSpec = None, *,
             max_bytes: int = DEFAULT_MAX_BYTES) -> torch.Tensor:
    """``K = J J^T`` on the probe set (float64, ``k*C x k*C``): the Jacobian's Gram matrix."""
    return jacobian_gram(model, inputs, params, max_bytes=max_bytes)


def ntk_drift(kernel: torch.Tensor, kernel_0: torch.Tensor) -> float:
    """``||K_t - K_0||_F / ||K_0||_F``."""
    if kernel.shape != kernel_0.shape:
        raise ValueError(f"kernels differ in shape: {tuple(kernel.shape)} vs {tuple(kernel_0.shape)} (same probes?)")
    ref = torch.linalg.matrix_norm(kernel_0.double())
    return float(torch.linalg.matrix_norm(kernel.double() - kernel_0.double().to(kernel.device)) / ref)
