"""Numerical rank and conditioning of a spectrum, with explicit tolerances (Zhang et al. 2021
Sec. 3: a full-rank Jacobian makes every stationary point a global minimum)."""

from __future__ import annotations

import math

import torch


def default_rtol(num_rows: int, num_cols: int, dtype: torch.dtype) -> float:
    """``max(rows, cols) * eps(dtype)``: the convention of ``torch.linalg.matrix_rank``; use the
    dtype the matrix was computed in (float32 J: eps 1.2e-7), not the float64 of its spectrum."""
    return max(num_rows, num_cols) * torch.finfo(dtype).eps


def numerical_rank(singular_values: torch.Tensor, rtol: float, atol: float = 0.0) -> int:
    """Number of singular values above ``max(atol, rtol * sigma_max)``."""
    if singular_values.numel() == 0:
        return 0
    tol = max(atol, rtol * float(singular_values.max()))
    return int((singular_values > tol).sum())


def spectrum_summary(singular_values: torch.Tensor, rtol: float, atol: float = 0.0) -> dict[str, float]:
    """sigma_min, sigma_max, rank and condition number ``sigma_max / sigma_min`` (inf when singular)."""
    lo, hi = float(singular_values.min()), float(singular_values.max())
    return {
        "sigma_min": lo,
        "sigma_max": hi,
        "rank": numerical_rank(singular_values, rtol, atol),
        "condition": hi / lo if lo > 0 else math.inf,
    }
