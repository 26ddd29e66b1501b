"""Extreme eigenvalues of a symmetric operator known only through matrix-vector products."""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch

MatVec = Callable[[torch.Tensor], torch.Tensor]


def lanczos_extreme_eigenvalues(matvec: MatVec, dim: int, num_iter: int = 30, *, seed: int = 0,
                                device: Optional[torch.device] = None) -> tuple[float, float]:
    """(lambda_min, lambda_max) of the symmetric ``dim x dim`` operator ``matvec``, from the Ritz
    values of ``min(num_iter, dim)`` Lanczos steps in float64.

    Full re-orthogonalisation keeps the Krylov basis orthogonal (plain Lanczos loses it and
    produces ghost copies of the extreme eigenvalues), at the price of storing the basis:
    ``num_iter * dim`` float64 numbers. With ``num_iter >= dim`` the result is exact up to rounding.
    The start vector is drawn from its own generator (``seed``), never from the global RNG.
    """
    steps = min(num_iter, dim)
    gen = torch.Generator(device=device or "cpu").manual_seed(seed)
    basis = torch.zeros(steps, dim, dtype=torch.float64, device=device)
    q = torch.randn(dim, dtype=torch.float64, device=device, generator=gen)
    basis[0] = q / q.norm()
    alphas, betas = [], []
    for j in range(steps):
        w = matvec(basis[j]).to(torch.float64)
        alphas.append(torch.dot(w, basis[j]))
        scale = w.norm()
        for _ in range(2):  # twice is enough (Kahan-Parlett)
            w = w - basis[: j + 1].T @ (basis[: j + 1] @ w)
        beta = w.norm()
        # an invariant subspace is exhausted: its Ritz values are exact eigenvalues
        if j + 1 == steps or beta <= 1e-12 * max(float(scale), 1e-300):
            break
        betas.append(beta)
        basis[j + 1] = w / beta
    n = len(alphas)
    t = torch.diag(torch.stack(alphas))
    if n > 1:
        off = torch.stack(betas[: n - 1])
        t = t + torch.diag(off, 1) + torch.diag(off, -1)
    if not bool(torch.isfinite(t).all()):  # NaN/inf weights (a diverged run): eigvalsh would fail to converge
        return math.nan, math.nan
    ritz = torch.linalg.eigvalsh(t)
    return float(ritz[0]), float(ritz[-1])
