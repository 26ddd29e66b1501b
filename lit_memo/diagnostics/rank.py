"""Numerical rank and conditioning of a spectrum, with explicit tolerances (Zhang et al. 2021
Sec. 3: a full-rank Jacobian makes every stationary point a global minimum)."""

from __future__ import annotations

import math

import torch


def default_rtol(num_rows: int, num_cols: int, dtype: torch.dtype) -> float:
    """Relative tolerance for the rank of a ``rows x cols`` Jacobian computed in ``dtype``.

    ``max(rows, cols) * eps(dtype)``, the convention of ``torch.linalg.matrix_rank`` (use the
    dtype J was computed in: float32 gives eps 1.2e-7), but never below
    ``sqrt(max(rows, cols) * eps(float64))``: a spectrum taken from the float64 Gram matrix
    ``J J^T`` squares J's condition number, so it cannot resolve singular values below that
    fraction of sigma_max (it matters for float64 models only).
    """
    size = max(num_rows, num_cols)
    return max(size * torch.finfo(dtype).eps, math.sqrt(size * torch.finfo(torch.float64).eps))


def numerical_rank(singular_values: torch.Tensor, rtol: float, atol: float = 0.0) -> int:
    """Number of singular values above ``max(atol, rtol * sigma_max)``."""
    if singular_values.numel() == 0:
        return 0
    tol = max(atol, rtol * float(singular_values.max()))
    return int((singular_values > tol).sum())


def spectrum_summary(singular_values: torch.Tensor, rtol: float, atol: float = 0.0) -> dict[str, float]:
    """sigma_min, sigma_max, rank and condition number ``sigma_max / sigma_min`` (inf when singular);
    all NaN for a NaN spectrum (a diverged run's), rather than a rank of 0."""
    if bool(torch.isnan(singular_values).any()):
        return dict.fromkeys(("sigma_min", "sigma_max", "rank", "condition"), math.nan)
    lo, hi = float(singular_values.min()), float(singular_values.max())
    return {
        "sigma_min": lo,
        "sigma_max": hi,
        "rank": numerical_rank(singular_values, rtol, atol),
        "condition": hi / lo if lo > 0 else math.inf,
    }
