"""The theory's own conditions, checked for a run's n, d and width (pure functions).

- Ge, Wang, Zhao (2019) Lemma 1 / Theorem 4: the matrix ``X = [x_1 (x) x_1, ..., x_n (x) x_n]``
  (``d^2 x n``) has full column rank with smallest singular value sigma; the width is
  ``k >= 2d``; and since every ``x (x) x`` is symmetric, rank X <= d(d+1)/2, so n <= d(d+1)/2
  is necessary. For the three-layer net the same holds for the random features ``z_i``.
- Zhang et al. (2021) Theorem 1: width ``m >= 2n/d``.
- Daniely (2020): about ``n/d`` neurons (up to polylog factors, which the check drops).

sigma_min(X) comes from the Gram identity ``<x_i (x) x_i, x_j (x) x_j> = (x_i . x_j)^2``:
``X^T X = (x x^T)^2`` elementwise, an ``n x n`` matrix, so the ``d^2 x n`` matrix is never formed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def kron_gram(x: torch.Tensor) -> torch.Tensor:
    """``X^T X`` for ``X = [x_i (x) x_i]``: the elementwise square of ``x x^T``, in float64."""
    x = x.detach().flatten(1).to(torch.float64)
    gram = x @ x.t()
    return gram.mul_(gram)


def kron_singular_values(x: torch.Tensor) -> torch.Tensor:
    """All n singular values of ``[x_1 (x) x_1, ..., x_n (x) x_n]``, descending (float64).

    From the eigenvalues of :func:`kron_gram` (negative rounding residue clipped to 0).
    """
    eig = torch.linalg.eigvalsh(kron_gram(x))
    return eig.clamp_min(0).sqrt().flip(0)


def rank_limit(d: int) -> int:
    """d(d+1)/2: the dimension of the symmetric d x d matrices, which hold every ``x (x) x``."""
    return d * (d + 1) // 2


def kron_sigma_min(x: torch.Tensor) -> float:
    """sigma_n of ``[x_i (x) x_i]`` (its n-th largest singular value; 0 when the columns are dependent).

    For ``n > d(d+1)/2`` it is exactly 0 (rank limit) and nothing is computed.
    """
    n, d = x.shape[0], x[0].numel()
    if n > rank_limit(d):
        return 0.0
    return float(kron_singular_values(x)[-1])


@dataclass(frozen=True)
class Condition:
    """One condition of one paper: ``value`` against ``bound`` (``holds`` when on the right side)."""

    paper: str
    name: str
    value: float
    bound: float
    holds: bool
    text: str  # plain words, e.g. "width 40 >= 2d = 40"

    @property
    def key(self) -> str:
        return f"theory/{self.paper}/{self.name}"


def width_conditions(n: int, d: int, width: int) -> list[Condition]:
    """Every paper's width/size condition for n samples in dimension d and ``width`` hidden units.

    d is the dimension of what the trained hidden layer sees (the inputs, or Ge's random
    features z for the three-layer net).
    """
    if n < 1 or d < 1 or width < 1:
        raise ValueError(f"n, d and width must be >= 1, got {n}, {d}, {width}")
    limit = rank_limit(d)
    return [
        Condition("zhang", "width", width, 2 * n / d, width >= 2 * n / d, f"width {width} >= 2n/d = {2 * n / d:.4g}"),
        Condition("ge", "width", width, 2 * d, width >= 2 * d, f"width {width} >= 2d = {2 * d}"),
        Condition("ge", "rank_limit", n, limit, n <= limit, f"n {n} <= d(d+1)/2 = {limit}"),
        Condition("daniely", "width", width, n / d, width >= n / d, f"width {width} >= n/d = {n / d:.4g} (polylog dropped)"),
    ]


def condition_metrics(conditions: list[Condition]) -> dict[str, float]:
    """``theory/<paper>/<name>`` (the value), ``.../bound`` and ``.../holds`` (1 or 0) per condition."""
    out: dict[str, float] = {}
    for c in conditions:
        out[c.key] = float(c.value)
        out[f"{c.key}_bound"] = float(c.bound)
        out[f"{c.key}_holds"] = float(c.holds)
    return out
