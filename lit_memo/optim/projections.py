"""Exact Euclidean projections onto the constraint sets of Zhang et al. (2021), problem (10).

* Frobenius ball ``{W : ||W - W0||_F <= r}`` around the initial hidden weights.
* Outer-weight set ``V = {v : |v_i| >= zeta, max_i |v_i| <= gamma * min_i |v_i|}``.

The pure functions return new tensors. The ``*_`` versions write in place and return whether
they moved the weights (the boundary callback logs how often). With ``sync_free=True`` they never
read a value back to the host: the inside-test and the scaling stay on the device, so a GPU's
queue is never drained after an optimizer step, and "moved" is a 0-dim bool tensor on the device.
On the CPU a host read costs nothing, so by default (``sync_free=None``) they read the
inside-test there, skip the work when nothing moves and return a bool; both paths give bitwise
the same weights and the same "moved".

Non-finite weights (a NaN or inf distance, a NaN or inf entry of v) are not projected and do not
count as moved, in both paths: projecting would scatter NaN over the finite entries (a NaN
scale) or reset them to the centre (r / inf = 0), and the divergence would look like a
constraint at work. Left alone, it reaches the loss, where ``lit_memo.callbacks.DivergenceStop``
ends the fit (the run is reported *diverged*), and ``constraint/<group>/distance`` reads NaN/inf.
(The ball's update at scale 1 turns an inf entry into NaN.)
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch

TensorOrList = Union[torch.Tensor, Sequence[torch.Tensor]]
Moved = Union[bool, torch.Tensor]  # a bool when read on the host, a 0-dim bool tensor when sync-free

# A point within a relative distance rtol of a boundary counts as inside: rounding of a projected
# point to the weights' dtype must not make the next step's check project it (and move it) again.
# float32/float64: RTOL. Half precision (float16, bfloat16): one rounding step is eps/2 relative,
# far above 1e-6; the stored projected point, the differences x - c the ball check reads and the
# two magnitudes V's spread check divides are all rounded, so rtol is 2 eps (bfloat16 1.6%,
# float16 0.2%): see ``rtol_for``. (Entries rounded to nearest put a ball's point about
# (eps ||W|| / r)^2 / 24 outside, relative: a radius below ~1.5% of ||W|| in bfloat16, ~0.5% in
# float16, is finer than the dtype can hold, and such a ball is re-projected at every step.)
RTOL = 1e-6


def rtol_for(dtype: torch.dtype) -> float:
    """The inside-tolerance for weights of ``dtype``: max(RTOL, 2 eps)."""
    return max(RTOL, 2 * torch.finfo(dtype).eps)


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    """Half-precision weights are projected in float32, then rounded back to the nearest value."""
    return torch.float32 if torch.finfo(dtype).bits < 32 else dtype


def _as_list(x: TensorOrList) -> list[torch.Tensor]:
    return [x] if isinstance(x, torch.Tensor) else list(x)


def _sync_free(sync_free: Optional[bool], t: torch.Tensor) -> bool:
    return t.device.type != "cpu" if sync_free is None else sync_free


def check_radius(radius: float, name: str = "radius") -> None:
    if not (radius >= 0):  # also rejects NaN
        raise ValueError(f"{name} must be >= 0 (use inf for no constraint), got {radius}")


def check_outer_set(zeta: float, gamma: float) -> None:
    if not (zeta >= 0) or math.isinf(zeta):
        raise ValueError(f"zeta must be a finite number >= 0 (the smallest allowed |v_i|), got {zeta}")
    if not (gamma >= 1):
        raise ValueError(f"gamma must be >= 1 (it bounds max|v| / min|v|; inf for no bound), got {gamma}")


def _differences(xs: list[torch.Tensor], cs: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor]:
    """``x - center`` per tensor (in the weights' dtype) and ``||x - center||`` as a float64 device scalar.

    The sum of squares is taken in float64: in float32 it drifts by ~sqrt(n) ulps, 3e-6 relative
    on an 8.4M-parameter group, enough to leave the ball by more than RTOL.
    """
    if len(xs) != len(cs):
        raise ValueError(f"x has {len(xs)} tensors but center has {len(cs)}")
    ds = torch._foreach_sub([t.detach() for t in xs], list(cs))  # one fused op: this runs every step
    norms = torch._foreach_norm(ds, 2, dtype=torch.float64)
    dist = norms[0] if len(norms) == 1 else torch.linalg.vector_norm(torch.stack(norms))
    return ds, dist


def ball_distance(x: TensorOrList, center: TensorOrList) -> float:
    """``||x - center||_2`` (float64) with the tensors of a list treated as one vector."""
    return _differences(_as_list(x), _as_list(center))[1].item()


def _scale_down_to(s: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The float64 scale ``s`` in ``dtype`` (float32 or float64), rounded towards 0 so the projected
    point never overshoots r."""
    out = s.to(dtype)
    if dtype == torch.float32:
        out = torch.where(out.double() > s, torch.nextafter(out, torch.zeros_like(out)), out)
    return out


def project_ball_(x: TensorOrList, center: TensorOrList, radius: float, *, sync_free: Optional[bool] = None) -> Moved:
    """Project ``x`` in place onto ``{y : ||y - center|| <= radius}``; returns whether it moved.

    ``y = lerp(c, x, s) = c + s (x - c)`` with ``s = r / ||x - c||`` outside the ball and exactly
    1 inside. ``lerp`` at weight 1 returns x bitwise, and it is accurate for any s (no
    cancellation when x is far outside); s is rounded down to the weights' dtype, so the result
    lies in the ball up to the rounding of each stored entry. Half-precision weights are projected
    in float32 (a bfloat16 scale near 1 would be off by up to 2^-9) and rounded to nearest.
    A point within ``rtol_for(dtype)`` of the ball counts as inside.
    """
    check_radius(radius)
    xs, cs = _as_list(x), _as_list(center)
    sync_free = _sync_free(sync_free, xs[0])
    if math.isinf(radius):
        return torch.zeros((), dtype=torch.bool, device=xs[0].device) if sync_free else False
    _, dist = _differences(xs, cs)
    rtol = max(rtol_for(t.dtype) for t in xs)
    if sync_free:  # decided on the device: s is 1 inside, so the update below keeps x bitwise
        moved = (dist > radius * (1 + rtol)) & torch.isfinite(dist)
        scale = torch.where(moved, radius / dist, 1.0)
    else:
        d = dist.item()
        if d <= radius * (1 + rtol):
            return False
        moved = math.isfinite(d)  # NaN/inf: not projected, but the sync-free path's update at scale 1
        scale = torch.full((), radius / d if moved else 1.0, dtype=torch.float64, device=dist.device)
    work = _work_dtype(xs[0].dtype)
    scale = _scale_down_to(scale, work)
    with torch.no_grad():
        for a, c in zip(xs, cs):  # per tensor: _foreach_lerp would read a tensor weight back to the host
            if a.dtype == work:
                torch.lerp(c, a, scale, out=a)
            else:  # half precision: in float32, rounded to nearest when stored (at scale 1: a, bitwise)
                a.copy_(torch.lerp(c.float(), a.float(), scale))
    return moved


def project_ball(x: TensorOrList, center: TensorOrList, radius: float) -> TensorOrList:
    """Exact projection onto the Frobenius ball; a list comes back as a list."""
    out = [t.detach().clone() for t in _as_list(x)]
    project_ball_(out, center, radius)
    return out[0] if isinstance(x, torch.Tensor) else out


def _outer_moved(v: torch.Tensor, zeta: float, gamma: float, rtol: float,
                 sync_free: bool) -> tuple[Moved, Union[float, torch.Tensor]]:
    """Whether the projection onto V moves v: outside V and every entry finite (see the module's
    docstring); a device tensor when sync-free, else a bool (the same float64 arithmetic). Also
    max|v|, which the projection reads too."""
    lo, hi = torch.aminmax(v.detach().abs())  # NaN if any entry is NaN
    lo, hi = (lo.double(), hi.double()) if sync_free else (lo.item(), hi.item())
    outside = lo < zeta * (1 - rtol)
    if not math.isinf(gamma):
        outside = outside | (hi > gamma * lo * (1 + rtol))
    return outside & (torch.isfinite(hi) if sync_free else math.isfinite(hi)), hi


def in_outer_set(v: torch.Tensor, zeta: float, gamma: float, rtol: Optional[float] = None) -> bool:
    """Whether v lies in V, up to ``rtol`` (default ``rtol_for(v.dtype)``)."""
    rtol = rtol_for(v.dtype) if rtol is None else rtol
    lo, hi = (t.item() for t in torch.aminmax(v.detach().abs()))
    return lo >= zeta * (1 - rtol) and (math.isinf(gamma) or hi <= gamma * lo * (1 + rtol))  # NaN: False


def _outer_level(a: torch.Tensor, zeta: float, gamma: float) -> torch.Tensor:
    """The level L minimising ``g(L) = sum_i dist(a_i, [L, gamma L])^2`` over ``L >= zeta``.

    For a fixed L the projection of |v| is ``clip(|v|, L, gamma L)``, so the projection reduces to
    this one-dimensional convex piecewise-quadratic problem. Its breakpoints are the a_i and
    a_i / gamma; on each piece the stationary point has a closed form from prefix sums, so all
    pieces are solved at once in O(n log n). Returns a float64 device scalar; nothing is read
    back to the host (repeated breakpoints are harmless: empty pieces, not deduplicated).
    """
    a = a.double().flatten().sort().values
    n = a.numel()
    csum = torch.cat([a.new_zeros(1), a.cumsum(0)])
    csq = torch.cat([a.new_zeros(1), (a * a).cumsum(0)])
    g = float(gamma)
    z = torch.full((1,), float(zeta), dtype=a.dtype, device=a.device)
    pts = torch.cat([a, a / g, z]) if math.isfinite(g) else torch.cat([a, z])
    pts = pts.clamp_min(zeta).sort().values  # every piece lies in [zeta, inf)
    lo = pts
    hi = torch.cat([pts[1:], torch.full_like(z, math.inf)])
    mid = torch.where(torch.isinf(hi), lo + 1.0, (lo + hi) / 2)

    def sums(level: torch.Tensor) -> tuple[torch.Tensor, ...]:
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

    n_low, s_low, q_low, n_high, s_high, q_high = sums(mid)
    gg = g if math.isfinite(g) else 0.0
    denom = n_low + gg * gg * n_high
    stationary = (s_low + gg * s_high) / denom.clamp_min(1)
    cand = torch.where(denom > 0, stationary, lo).clamp(min=lo, max=hi)
    # g at cand from its piece's sums: g is continuous, so the piece's quadratic holds on its closure
    total = (n_low * cand**2 - 2 * cand * s_low + q_low) + (q_high - 2 * gg * cand * s_high + gg * gg * cand**2 * n_high)
    return cand.gather(0, torch.argmin(total).view(1)).squeeze(0)  # cand[tensor] would read the index


def project_outer_(v: torch.Tensor, zeta: float, gamma: float, *, sync_free: Optional[bool] = None) -> Moved:
    """Project ``v`` in place onto V (signs kept; a zero entry takes the + sign); returns whether it moved.

    Sync-free, the exact projection is computed at every call (a sort of v's n entries and about
    85 small tensor ops) and selected on the device where v is outside V; otherwise only when the
    inside-test, read back to the host, fails.
    """
    check_outer_set(zeta, gamma)
    sync_free = _sync_free(sync_free, v)
    if v.numel() == 0:
        return torch.zeros((), dtype=torch.bool, device=v.device) if sync_free else False
    rtol = rtol_for(v.dtype)
    moved, hi = _outer_moved(v, zeta, gamma, rtol, sync_free)
    if not sync_free and not moved:
        return False
    with torch.no_grad():
        a = v.abs()
        # max|v| <= gamma zeta: the level's objective rises from L = zeta on (only entries below L
        # pay), so L = zeta, a clamp. The usual case in training (a few v_i near 0); no sort
        floor_only = not sync_free and hi <= gamma * zeta
        level = zeta if floor_only else _outer_level(a, zeta, gamma)
        upper = gamma * level if math.isfinite(gamma) else None
        sign = torch.where(v < 0, -1.0, 1.0).to(v.dtype)
        projected = sign * a.clamp(min=level, max=upper)
        v.copy_(torch.where(moved, projected, v) if sync_free else projected)
    return moved


def project_outer(v: torch.Tensor, zeta: float, gamma: float) -> torch.Tensor:
    """Exact Euclidean projection of ``v`` onto V; all entries of v form one vector."""
    out = v.detach().clone()
    project_outer_(out, zeta, gamma)
    return out
