"""PerturbedGD (Jin et al. 2017; Ge et al. 2019 App. B) at the strict saddle of
f(x, y) = x^2 - y^2 + y^4/4 (minima at y = +-sqrt(2), f = -1), its constants, and inside a fit."""

from __future__ import annotations

import math

import pytest
import torch

from lit_memo.optim import PerturbedGD, pgd_constants

# on |y| <= 2: Hessian diag(2, 3y^2 - 2) has norm <= 10, its derivative 6|y| <= 12
THEORY = dict(l=10.0, rho=12.0, eps=0.1, delta_f=1.0, c=0.5, delta=0.1)


def saddle(p: torch.Tensor) -> torch.Tensor:
    x, y = p
    return x**2 - y**2 + y**4 / 4


def run(opt, p, steps: int) -> int:
    def closure():
        opt.zero_grad()
        loss = saddle(p)
        loss.backward()
        return loss

    for t in range(steps):
        opt.step(closure)
        if getattr(opt, "stopped", False):
            return t
    return steps


def test_plain_gd_stays_at_the_saddle_perturbed_gd_reaches_a_minimum():
    p_gd = torch.nn.Parameter(torch.zeros(2))
    run(torch.optim.SGD([p_gd], lr=THEORY["c"] / THEORY["l"]), p_gd, 3000)
    assert torch.equal(p_gd.detach(), torch.zeros(2))  # the gradient is exactly 0 there

    p = torch.nn.Parameter(torch.zeros(2))
    opt = PerturbedGD([p], **THEORY)
    run(opt, p, 30000)
    assert opt.stopped and opt.perturbations >= 2  # one at the saddle, one at the minimum
    assert abs(abs(p[1].item()) - math.sqrt(2)) < 1e-4 and abs(p[0].item()) < 1e-4
    assert saddle(p).item() == pytest.approx(-1.0, abs=1e-7)


def test_stopping_rule_returns_the_remembered_point():
    p = torch.nn.Parameter(torch.tensor([0.0, 1.0]))
    opt = PerturbedGD([p], **THEORY)
    seen = []
    orig_sample = opt._ball_sample

    def recording_sample(params):  # record the point remembered at each perturbation
        seen.append([q.detach().clone() for q in params])
        return orig_sample(params)

    opt._ball_sample = recording_sample
    t = run(opt, p, 30000)
    assert opt.stopped and "remembered point" in opt.stop_reason
    assert torch.equal(p.detach(), seen[-1][0])  # bit for bit the point before the last perturbation
    assert t == opt.t_noise + opt.wait  # it stopped exactly t_thres steps after that perturbation
    before = p.detach().clone()
    with pytest.warns(UserWarning, match="stopped"):
        run(opt, p, 3)
    assert torch.equal(p.detach(), before)  # a stopped optimizer never moves


def test_derived_constants_equal_the_formulas():
    p = torch.nn.Parameter(torch.zeros(7))
    opt = PerturbedGD([p], **THEORY)
    l, rho, eps, df, c, delta = (THEORY[k] for k in ("l", "rho", "eps", "delta_f", "c", "delta"))
    chi = 3 * max(math.log(7 * l * df / (c * eps**2 * delta)), 4)
    k = opt.constants
    assert k.chi == pytest.approx(chi, rel=1e-12)
    assert k.lr == pytest.approx(c / l, rel=1e-12)
    assert k.radius == pytest.approx(math.sqrt(c) / chi**2 * eps / l, rel=1e-12)
    assert k.g_thres == pytest.approx(math.sqrt(c) / chi**2 * eps, rel=1e-12)
    assert k.f_thres == pytest.approx(c / chi**3 * math.sqrt(eps**3 / rho), rel=1e-12)
    assert k.t_thres == pytest.approx(chi / c**2 * l / math.sqrt(rho * eps), rel=1e-12)
    assert opt.wait == math.ceil(k.t_thres)
    # chi's floor of 4 (log < 4) applies
    assert pgd_constants(1, 1.0, 1.0, 1.0, 1.0, c=1.0, delta=0.5).chi == 12.0


def test_perturbation_is_uniform_in_one_ball_over_all_parameters():
    params = [torch.zeros(3), torch.zeros(2, 2)]
    opt = PerturbedGD([torch.nn.Parameter(q) for q in params], lr=0.1, radius=2.0, g_thres=1, f_thres=1, t_thres=1)
    norms = []
    for _ in range(4000):
        sample = opt._ball_sample(params)
        norms.append(torch.sqrt(sum(s.pow(2).sum() for s in sample)).item())
    norms = torch.tensor(norms)
    assert norms.max() <= 2.0
    # uniform in a 7-ball: P(||xi|| <= 2 s) = s^7
    for s in (0.8, 0.9, 0.95):
        assert (norms <= 2 * s).float().mean().item() == pytest.approx(s**7, abs=0.03)


def test_bad_arguments_are_refused():
    p = [torch.nn.Parameter(torch.zeros(2))]
    with pytest.raises(ValueError, match="missing"):
        PerturbedGD(p, l=1.0, rho=1.0)
    with pytest.raises(ValueError, match="missing"):
        PerturbedGD(p, lr=0.1)
    with pytest.raises(ValueError, match="delta"):
        PerturbedGD(p, **{**THEORY, "delta": 1.5})
    with pytest.raises(ValueError, match="lr_hidden"):
        PerturbedGD([{"params": p, "lr": 0.3}], **THEORY)
    with pytest.raises(RuntimeError, match="closure"):
        PerturbedGD(p, **THEORY).step()


def test_state_dict_round_trip_continues_identically():
    def make():
        p = torch.nn.Parameter(torch.tensor([0.0, 1e-3]))
        return p, PerturbedGD([p], **THEORY)

    p1, o1 = make()
    run(o1, p1, 400)
    p2, o2 = make()
    with torch.no_grad():
        p2.copy_(p1)
    o2.load_state_dict(o1.state_dict())
    assert (o2.t, o2.t_noise, o2.perturbations) == (o1.t, o1.t_noise, o1.perturbations)
    run(o1, p1, 300)
    run(o2, p2, 300)
    assert torch.equal(p1, p2)
