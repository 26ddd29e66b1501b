"""Exact Euclidean projections onto the constraint sets of Zhang et al. (2021), problem (10).

* Frobenius ball ``{W : ||W - W0||_F <= r}`` around the initial hidden weights.
* Outer-weight set ``V = {v : |v_i| >= zeta, max_i |v_i| <= gamma * min_i |v_i|}``.

The pure functions return new tensors; the ``*_`` versions write in place and report whether
anything moved (the boundary callback logs how often that happens).
"""

from __future__ import annotations

import math
from typing import Sequence, Union

import torch

TensorOrList = Union[torch.Tensor, Sequence[torch.Tensor]]

# A point within this relative distance of a boundary counts as inside: float32 rounding of a
# projected point must not make the next step's check project it (and move it) again.
RTOL = 1e-6


def _as_list(x: TensorOrList) -> list[torch.Tensor]:
    return [x] if isinstance(x, torch.Tensor) else list(x)


def check_radius(radius: float, name: str = "radius") -> None:
    if not (radius >= 0):  # also rejects NaN
        raise ValueError(f"{name} must be >= 0 (use inf for no constraint), got {radius}")


def check_outer_set(zeta: float, gamma: float) -> None:
    if not (zeta >= 0) or math.isinf(zeta):
        raise ValueError(f"zeta must be a finite number >= 0 (the smallest allowed |v_i|), got {zeta}")
    if not (gamma >= 1):
        raise ValueError(f"gamma must be >= 1 (it bounds max|v| / min|v|; inf for no bound), got {gamma}")


def ball_distance(x: TensorOrList, center: TensorOrList) -> float:
    """``||x - center||_2`` with the tensors of a list treated as one vector."""
    xs, cs = _as_list(x), _as_list(center)
    if len(xs) != len(cs):
        raise ValueError(f"x has {len(xs)} tensors but center has {len(cs)}")
    # one fused op per tensor: this runs after every optimizer step
    if len(xs) == 1:
        return torch.dist(xs[0].detach(), cs[0]).item()
    norms = torch._foreach_norm(torch._foreach_sub([t.detach() for t in xs], cs))
    return torch.linalg.vector_norm(torch.stack(norms)).item()


def project_ball_(x: TensorOrList, center: TensorOrList, radius: float) -> bool:
    """Project ``x`` in place onto ``{y : ||y - center|| <= radius}``; True when it moved."""
    check_radius(radius)
    if math.isinf(radius):
        return False
    xs, cs = _as_list(x), _as_list(center)
    dist = ball_distance(xs, cs)
    if dist <= radius * (1 + RTOL):
        return False
    scale = radius / dist
    with torch.no_grad():
        for a, c in zip(xs, cs):
            a.copy_(c + (a - c) * scale)
    return True


def project_ball(x: TensorOrList, center: TensorOrList, radius: float) -> TensorOrList:
    """Exact projection onto the Frobenius ball; a list comes back as a list."""
    out = [t.detach().clone() for t in _as_list(x)]
    project_ball_(out, center, radius)
    return out[0] if isinstance(x, torch.Tensor) else out


def in_outer_set(v: torch.Tensor, zeta: float, gamma: float, rtol: float = RTOL) -> bool:
    lo, hi = torch.aminmax(v.detach().abs())
    lo, hi = lo.item(), hi.item()
    return lo >= zeta * (1 - rtol) and (math.isinf(gamma) or hi <= gamma * lo * (1 + rtol))


def _outer_level(a: torch.Tensor, zeta: float, gamma: float) -> float:
    """The level L minimising ``g(L) = sum_i dist(a_i, [L, gamma L])^2`` over ``L >= zeta``.

    For a fixed L the projection of |v| is ``clip(|v|, L, gamma L)``, so the projection reduces to
    this one-dimensional convex piecewise-quadratic problem. Its breakpoints are the a_i and
    a_i / gamma; on each piece the stationary point has a closed form from prefix sums, so all
    pieces are solved at once in O(n log n).
    """
    a = a.double().flatten().sort().values
    n = a.numel()
    csum = torch.cat([a.new_zeros(1), a.cumsum(0)])
    csq = torch.cat([a.new_zeros(1), (a * a).cumsum(0)])
    g = float(gamma)
    pts = torch.cat([a, a / g, a.new_tensor([zeta])]) if math.isfinite(g) else torch.cat([a, a.new_tensor([zeta])])
    pts = pts.clamp_min(zeta).unique()  # sorted; every piece lies in [zeta, inf)
    lo = pts
    hi = torch.cat([pts[1:], pts.new_tensor([math.inf])])
    mid = torch.where(torch.isinf(hi), lo + 1.0, (lo + hi) / 2)

    def cost(level: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # entries below L are raised to L; entries above gamma L are lowered to gamma L
        n_low = torch.searchsorted(a, level, right=False)
        if math.isfinite(g):
            start_high = torch.searchsorted(a, g * level, right=True)
        else:
            start_high = torch.full_like(n_low, n)
        n_high = n - start_high
        s_low, q_low = csum[n_low], csq[n_low]
        s_high, q_high = csum[n] - csum[start_high], csq[n] - csq[start_high]
        return n_low, s_low, q_low, n_high, s_high, q_high

    n_low, s_low, _, n_high, s_high, _ = cost(mid)
    gg = g if math.isfinite(g) else 0.0
    denom = n_low + gg * gg * n_high
    stationary = (s_low + gg * s_high) / denom.clamp_min(1)
    cand = torch.where(denom > 0, stationary, lo).clamp(min=lo, max=hi)
    n_low, s_low, q_low, n_high, s_high, q_high = cost(cand)
    total = (n_low * cand**2 - 2 * cand * s_low + q_low) + (q_high - 2 * gg * cand * s_high + gg * gg * cand**2 * n_high)
    return float(cand[torch.argmin(total)])


def project_outer_(v: torch.Tensor, zeta: float, gamma: float) -> bool:
    """Project ``v`` in place onto V (signs kept; a zero entry takes the + sign); True when it moved."""
    check_outer_set(zeta, gamma)
    if v.numel() == 0 or in_outer_set(v, zeta, gamma):
        return False
    with torch.no_grad():
        a = v.abs()
        level = _outer_level(a, zeta, gamma)
        upper = gamma * level if math.isfinite(gamma) else math.inf
        sign = torch.where(v < 0, -1.0, 1.0).to(v.dtype)
        v.copy_(sign * a.clamp(min=level, max=upper))
    return True


def project_outer(v: torch.Tensor, zeta: float, gamma: float) -> torch.Tensor:
    """Exact Euclidean projection of ``v`` onto V; all entries of v form one vector."""
    out = v.detach().clone()
    project_outer_(out, zeta, gamma)
    return out
