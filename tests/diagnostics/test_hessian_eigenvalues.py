"""Lanczos extreme Hessian eigenvalues against the explicit Hessian (issue 3; Ge et al. 2019)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from models_for_diagnostics import MODELS
from torch.func import functional_call, hessian

from lit_memo.diagnostics import hessian_extreme_eigenvalues, lanczos_extreme_eigenvalues, resolve_params


def explicit_hessian_eigenvalues(model, loss_fn, x, y, params=None) -> torch.Tensor:
    chosen = {n: p.detach() for n, p in resolve_params(model, params).items()}
    rest = {n: p.detach() for n, p in model.named_parameters() if n not in chosen}
    was_training = model.training
    model.eval()
    try:
        h = hessian(lambda p: loss_fn(functional_call(model, (p, rest), (x,)), y))(chosen)
    finally:
        model.train(was_training)
    sizes = {n: t.numel() for n, t in chosen.items()}
    full = torch.cat([torch.cat([h[a][b].reshape(sizes[a], sizes[b]) for b in chosen], 1) for a in chosen], 0)
    return torch.linalg.eigvalsh(full)


def mse(out, y):
    return F.mse_loss(out.reshape(y.shape), y)


def targets(name, model, x):
    out = model(x)
    if name == "bn_cnn":
        return F.cross_entropy, torch.arange(len(x)) % out.shape[1]
    return mse, torch.randn_like(out) if name != "mirrored_module" else torch.randn(len(x), dtype=x.dtype)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_lanczos_with_full_krylov_space_is_exact(name):
    model, x = MODELS[name]()
    torch.manual_seed(5)
    loss_fn, y = targets(name, model, x)
    if name == "mirrored_module":
        loss_fn = model.loss
    ev = explicit_hessian_eigenvalues(model, loss_fn, x, y)
    lo, hi = hessian_extreme_eigenvalues(model, loss_fn, (x, y), num_iter=ev.numel())
    scale = float(ev.abs().max())
    assert lo == pytest.approx(float(ev[0]), abs=1e-9 * scale)
    assert hi == pytest.approx(float(ev[-1]), abs=1e-9 * scale)


def test_parameter_subset():
    model, x = MODELS["mlp"]()
    y = torch.randn(len(x), 3, dtype=x.dtype)
    ev = explicit_hessian_eigenvalues(model, mse, x, y, ["2"])
    lo, hi = hessian_extreme_eigenvalues(model, mse, (x, y), ["2"], num_iter=100)
    assert (lo, hi) == pytest.approx((float(ev[0]), float(ev[-1])), abs=1e-10)


def test_few_lanczos_steps_find_well_separated_extremes():
    """30 steps on a 200-dim operator: extremes converge long before the Krylov space is full."""
    gen = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(200, 200, dtype=torch.float64, generator=gen))
    eigs = torch.cat([torch.tensor([-3.0, 10.0], dtype=torch.float64), torch.rand(198, dtype=torch.float64, generator=gen)])
    matrix = q @ torch.diag(eigs) @ q.T
    lo, hi = lanczos_extreme_eigenvalues(lambda v: matrix @ v, 200, num_iter=30)
    assert lo == pytest.approx(-3.0, rel=1e-6)
    assert hi == pytest.approx(10.0, rel=1e-6)


def test_invariant_subspace_stops_early_and_exactly():
    """A rank-2 operator: Lanczos exhausts its Krylov space in 3 steps and must not divide by 0."""
    u = torch.randn(50, 2, dtype=torch.float64)
    matrix = u @ torch.diag(torch.tensor([2.0, -1.0], dtype=torch.float64)) @ torch.linalg.pinv(u)
    matrix = (matrix + matrix.T) / 2
    ev = torch.linalg.eigvalsh(matrix)
    lo, hi = lanczos_extreme_eigenvalues(lambda v: matrix @ v, 50, num_iter=40)
    assert (lo, hi) == pytest.approx((float(ev[0]), float(ev[-1])), abs=1e-10)


def test_state_and_global_rng_untouched():
    model, x = MODELS["bn_cnn"]()
    y = torch.arange(len(x)) % 3
    flags = [m.training for m in model.modules()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    hessian_extreme_eigenvalues(model, F.cross_entropy, (x, y), num_iter=5)
    assert torch.equal(rng, torch.get_rng_state())
    assert [m.training for m in model.modules()] == flags
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert all(p.grad is None for p in model.parameters())


def test_a_nan_operator_gives_nan_extremes_not_an_error():
    """A diverged run's Hessian-vector products are NaN: eigvalsh would fail to converge."""
    from lit_memo.diagnostics.lanczos import lanczos_extreme_eigenvalues

    lo, hi = lanczos_extreme_eigenvalues(lambda v: v * float("nan"), dim=6, num_iter=6)
    assert lo != lo and hi != hi
