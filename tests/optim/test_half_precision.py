"""Half-precision weights (``16-true`` / ``bf16-true``): a projected point, stored in the dtype,
counts as inside at the next step, so the projection does not report "moved" on every step
(the tolerance is ``rtol_for(dtype)`` = 2 eps there, RTOL = 1e-6 in float32 and float64)."""

from __future__ import annotations

import math

import pytest
import torch

from lit_memo.optim import ball_distance, in_outer_set, project_ball_, project_outer_
from lit_memo.optim.projections import RTOL, rtol_for

HALF = [torch.bfloat16, torch.float16]


def test_rtol_per_dtype():
    assert rtol_for(torch.float32) == rtol_for(torch.float64) == RTOL
    assert rtol_for(torch.bfloat16) == 2 * 2.0**-7 and rtol_for(torch.float16) == 2 * 2.0**-10


def ball_case(seed: int, dtype, radius_fraction: float):
    """A ResNet-like group (weights ~ 0.05) pushed 1.5 r outside a ball of radius a fraction of ||W0||."""
    g = torch.Generator().manual_seed(seed)
    sizes = [(64, 32), (64,), (10, 64)]
    centre = [torch.randn(s, generator=g) * 0.05 for s in sizes]
    radius = radius_fraction * math.sqrt(sum(float((c.double() ** 2).sum()) for c in centre))
    steps = [torch.randn(s, generator=g) for s in sizes]
    norm = math.sqrt(sum(float((d.double() ** 2).sum()) for d in steps))
    x = [(c + d * (1.5 * radius / norm)).to(dtype) for c, d in zip(centre, steps)]
    return x, [c.to(dtype) for c in centre], radius


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("radius_fraction", [0.03, 0.1, 0.5])
def test_projected_half_point_is_a_fixed_point(dtype, seed, radius_fraction):
    x, c, r = ball_case(seed, dtype, radius_fraction)
    a, b = [t.clone() for t in x], [t.clone() for t in x]
    assert project_ball_(a, c, r, sync_free=False) and bool(project_ball_(b, c, r, sync_free=True))
    assert all(torch.equal(p, q) for p, q in zip(a, b))  # both paths, bitwise
    dist = math.sqrt(sum(float(((p.double() - q.double()) ** 2).sum()) for p, q in zip(a, c)))
    assert abs(dist / r - 1) <= rtol_for(dtype)  # on the sphere, up to the dtype's rounding
    for sync_free in (False, True):  # the next steps: inside, untouched
        again = [t.clone() for t in a]
        for _ in range(3):
            assert not bool(project_ball_(again, c, r, sync_free=sync_free))
        assert all(torch.equal(p, q) for p, q in zip(again, a))


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("zeta,gamma", [(0.1, 3.0), (0.0123, 7.7), (0.3, 1.0), (0.05, 1.01)])
def test_projected_half_outer_is_a_fixed_point(dtype, zeta, gamma):
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        v = (torch.randn(64, generator=g) * 0.2).to(dtype)
        a, b = v.clone(), v.clone()
        moved_a, moved_b = project_outer_(a, zeta, gamma, sync_free=False), project_outer_(b, zeta, gamma, sync_free=True)
        assert bool(moved_a) == bool(moved_b)
        assert torch.equal(a, b) and in_outer_set(a, zeta, gamma)
        for sync_free in (False, True):
            again = a.clone()
            assert not bool(project_outer_(again, zeta, gamma, sync_free=sync_free)) and torch.equal(again, a)


def test_float32_tolerance_is_unchanged():
    """A float32 point 2e-6 outside is still projected (the half-precision tolerance is not applied)."""
    x, c, r = ball_case(0, torch.float32, 0.1)
    x = [ci + (xi - ci) * (r * (1 + 2e-6) / ball_distance(x, c)) for xi, ci in zip(x, c)]
    assert project_ball_(x, c, r)
