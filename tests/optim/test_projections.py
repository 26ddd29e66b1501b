"""The projections against brute force: a generic constrained solver (scipy SLSQP) on the
original problem, plus the defining property that no feasible point is closer."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from lit_memo.optim import in_outer_set, project_ball, project_ball_, project_outer, project_outer_


def brute_outer(v: np.ndarray, zeta: float, gamma: float) -> np.ndarray:
    """min ||b - v||^2 over b with sign(b) = sign(v), |b_i| >= zeta, |b_j| <= gamma |b_i| (all i, j),
    solved by SLSQP from several starts; no use of the one-dimensional reduction."""
    s = np.where(v < 0, -1.0, 1.0)
    a = np.abs(v)
    n = len(a)
    cons = [{"type": "ineq", "fun": lambda b, i=i: b[i] - zeta} for i in range(n)]
    if math.isfinite(gamma):
        cons += [{"type": "ineq", "fun": lambda b, i=i, j=j: gamma * b[i] - b[j]}
                 for i, j in itertools.product(range(n), range(n)) if i != j]
    best = None
    for start in (np.maximum(a, zeta), np.full(n, max(a.mean(), zeta)), np.full(n, max(zeta, 1e-3))):
        res = minimize(lambda b: np.sum((b - a) ** 2), start, constraints=cons, method="SLSQP",
                       options={"ftol": 1e-14, "maxiter": 500})
        if best is None or res.fun < best.fun:
            best = res
    return s * best.x


def brute_ball(x: np.ndarray, c: np.ndarray, r: float) -> np.ndarray:
    cons = [{"type": "ineq", "fun": lambda y: r**2 - np.sum((y - c) ** 2)}]
    res = minimize(lambda y: np.sum((y - x) ** 2), c.copy(), constraints=cons, method="SLSQP",
                   options={"ftol": 1e-14, "maxiter": 500})
    return res.x


OUTER_CASES = [(0.1, 3.0), (0.0, 2.0), (0.5, math.inf), (0.2, 1.0), (0.0, math.inf), (1e-3, 50.0)]


@pytest.mark.parametrize("zeta,gamma", OUTER_CASES)
@pytest.mark.parametrize("seed", range(4))
def test_project_outer_matches_brute_force(zeta, gamma, seed):
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(6, generator=g, dtype=torch.float64) * (0.05 + seed * 0.3)
    if seed == 3:
        v[0] = 0.0  # a zero entry
    got = project_outer(v, zeta, gamma).numpy()
    ref = brute_outer(v.numpy(), zeta, gamma)
    assert in_outer_set(torch.from_numpy(got), zeta, gamma)
    # same objective value (the optimum is unique away from zero entries)
    assert np.sum((got - v.numpy()) ** 2) <= np.sum((ref - v.numpy()) ** 2) + 1e-9
    np.testing.assert_allclose(np.abs(got), np.abs(ref), atol=1e-5)
    # signs kept
    assert np.all(np.sign(got[v.numpy() != 0]) == np.sign(v.numpy()[v.numpy() != 0]))


def test_project_outer_no_closer_feasible_point():
    g = torch.Generator().manual_seed(7)
    v = torch.randn(30, generator=g, dtype=torch.float64)
    zeta, gamma = 0.3, 4.0
    p = project_outer(v, zeta, gamma)
    d = torch.sum((p - v) ** 2)
    s = torch.where(v < 0, -1.0, 1.0).double()
    for _ in range(2000):  # random feasible points with the same signs
        lo = zeta + torch.rand(1, generator=g, dtype=torch.float64) * 2
        q = s * (lo + torch.rand(30, generator=g, dtype=torch.float64) * lo * (gamma - 1))
        assert torch.sum((q - v) ** 2) >= d - 1e-12


def test_project_outer_inside_is_identity_and_idempotent():
    v = torch.tensor([0.5, -0.7, 1.0, -0.9])
    assert not project_outer_(v.clone(), zeta=0.1, gamma=3.0)
    assert torch.equal(project_outer(v, 0.1, 3.0), v)
    w = torch.randn(200) * 3
    p = project_outer(w, 0.2, 5.0)
    q = p.clone()
    assert not project_outer_(q, 0.2, 5.0)
    assert torch.equal(p, q)


def test_project_outer_gamma_one_makes_all_magnitudes_equal():
    v = torch.tensor([0.2, -1.0, 3.0], dtype=torch.float64)
    p = project_outer(v, 0.0, 1.0)
    assert torch.allclose(p.abs(), torch.full((3,), v.abs().mean().item(), dtype=torch.float64))
    assert torch.equal(torch.sign(p), torch.sign(v))


@pytest.mark.parametrize("radius", [0.0, 0.5, 2.0, math.inf])
@pytest.mark.parametrize("seed", range(3))
def test_project_ball_matches_brute_force(radius, seed):
    g = torch.Generator().manual_seed(seed)
    xs = [torch.randn(3, 2, generator=g, dtype=torch.float64), torch.randn(4, generator=g, dtype=torch.float64)]
    cs = [torch.randn(3, 2, generator=g, dtype=torch.float64), torch.randn(4, generator=g, dtype=torch.float64)]
    got = torch.cat([t.flatten() for t in project_ball(xs, cs, radius)]).numpy()
    x, c = (torch.cat([t.flatten() for t in ts]).numpy() for ts in (xs, cs))
    ref = x if math.isinf(radius) else brute_ball(x, c, radius)
    np.testing.assert_allclose(got, ref, atol=1e-6)


def test_project_ball_inside_boundary_and_idempotence():
    c = torch.zeros(5)
    inside = torch.full((5,), 0.1)
    assert torch.equal(project_ball(inside, c, 1.0), inside)
    on = torch.tensor([3.0, 4.0, 0, 0, 0])
    assert torch.equal(project_ball(on, c, 5.0), on)
    far = torch.randn(1000) * 10
    p = project_ball(far, torch.zeros(1000), 1.0)
    assert math.isclose(p.norm().item(), 1.0, rel_tol=1e-6)
    q = p.clone()
    assert not project_ball_(q, torch.zeros(1000), 1.0)
    assert torch.equal(p, q)


@pytest.mark.parametrize("call", [
    lambda: project_ball(torch.zeros(2), torch.zeros(2), -1.0),
    lambda: project_outer(torch.ones(2), -0.1, 2.0),
    lambda: project_outer(torch.ones(2), 0.1, 0.5),
    lambda: project_ball([torch.zeros(2)], [torch.zeros(2), torch.zeros(1)], 1.0),
])
def test_bad_arguments_raise(call):
    with pytest.raises(ValueError):
        call()


def test_project_outer_floor_only_case_equals_the_general_solver(monkeypatch):
    """max|v| <= gamma zeta takes the clamp without the sort; the same point as the 1-D solver."""
    import lit_memo.optim.projections as projections

    g = torch.Generator().manual_seed(3)
    v = torch.randn(200, generator=g, dtype=torch.float64) * 0.05
    v[:5] = 1e-5  # below the floor
    zeta, gamma = 1e-3, 1e3  # gamma zeta = 1 > max|v|
    calls = []
    solver = projections._outer_level
    monkeypatch.setattr(projections, "_outer_level", lambda *a: calls.append(1) or solver(*a))
    fast = v.clone()
    assert project_outer_(fast, zeta, gamma, sync_free=False)
    assert not calls
    general = v.clone()
    assert project_outer_(general, zeta, gamma, sync_free=True)  # the sync-free path always solves
    assert calls
    torch.testing.assert_close(fast, general, rtol=0, atol=0)
    assert float(fast.abs().min()) == zeta
