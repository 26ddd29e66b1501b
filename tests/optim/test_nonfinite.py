"""Non-finite weights: the host-checked and the sync-free projections agree on "moved" (False) and
on the weights (not projected: a NaN scale would spread NaN over the finite entries, r / inf = 0
would reset them to the centre). The divergence stays visible to the loss and the distance."""

from __future__ import annotations

import math

import pytest
import torch

from lit_memo.modules import ShallowNetModule
from lit_memo.optim import ball_distance, in_outer_set, project_ball_, project_outer_

BAD = [math.nan, math.inf, -math.inf]


def bits(t: torch.Tensor) -> torch.Tensor:
    """The stored bits (NaN == NaN), to compare two results bitwise."""
    return t.view(torch.int16 if t.element_size() == 2 else torch.int32)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("bad", BAD)
@pytest.mark.parametrize("far", [False, True])  # the finite entries inside or far outside the ball
def test_ball_with_a_non_finite_entry(bad, dtype, far):
    g = torch.Generator().manual_seed(0)
    centre = [torch.randn(5, 4, generator=g).to(dtype), torch.randn(3, generator=g).to(dtype)]
    x = [c + (10.0 if far else 0.01) * torch.randn(c.shape, generator=g).to(dtype) for c in centre]
    x[0][2, 1] = bad
    a, b = [t.clone() for t in x], [t.clone() for t in x]
    assert project_ball_(a, centre, 1.0, sync_free=False) is False
    assert not bool(project_ball_(b, centre, 1.0, sync_free=True))
    assert all(torch.equal(bits(p), bits(q)) for p, q in zip(a, b))
    finite = [torch.isfinite(t) for t in x]
    assert all(torch.equal(bits(p[m]), bits(t[m])) for p, t, m in zip(a, x, finite))  # not projected
    assert not torch.isfinite(a[0][2, 1]) and not math.isfinite(ball_distance(a, centre))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("bad", BAD)
def test_outer_with_a_non_finite_entry(bad, dtype):
    v = (torch.linspace(0.01, 2.0, 12) * torch.tensor([1.0, -1.0]).repeat(6)).to(dtype)  # far outside V
    v[3] = bad
    a, b = v.clone(), v.clone()
    assert project_outer_(a, 0.1, 2.0, sync_free=False) is False
    assert not bool(project_outer_(b, 0.1, 2.0, sync_free=True))
    assert torch.equal(bits(a), bits(v)) and torch.equal(bits(b), bits(v))
    assert not in_outer_set(a, 0.1, 2.0)


@pytest.mark.parametrize("sync_free", [False, True])
def test_active_count_of_a_diverged_module_is_the_same_on_both_paths(sync_free):
    torch.manual_seed(0)
    module = ShallowNetModule(input_shape=(6,), width=12, regime="ours", radius=0.5, zeta=0.1, gamma=2.0)
    module.projection_sync_free = sync_free
    module.capture_anchors_()
    with torch.no_grad():
        module.net.hidden.weight[0, 0] = math.nan
        (v,) = module.outer_parameters()
        v.view(-1)[0] = math.nan
    for _ in range(3):
        module.project_constraints_()
    assert module.projection_stats == {"hidden": (3, 0), "outer": (3, 0)}
