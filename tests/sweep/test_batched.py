"""Batched training of stacked one-hidden-layer nets: gradients, projections, divergence."""

from __future__ import annotations

import math

import pytest
import torch

from lit_memo.optim import ball_distance, in_outer_set, project_ball, project_outer
from lit_memo.models.shallow import loss_and_grads
from lit_memo.sweep.batched import BatchedShallowTrainer, Member


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)  # tiny ops: a second OpenMP thread only waits (conftest restores it)


def data(n=30, d=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen)
    return x / x.norm(dim=1, keepdim=True), torch.randn(n, generator=gen)


def members(count, m=6, d=4, pairwise=True, lrs=None, radii=None, seed=0):
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(count):
        w0 = torch.randn(m, d, generator=gen) / math.sqrt(d)
        v0 = torch.randn(1, m // 2 if pairwise else m, generator=gen) / math.sqrt(m)
        lr_h, lr_o = lrs[i] if lrs else (0.1, 0.1)
        out.append(Member(key=i, w0=w0, v0=v0, lr_hidden=lr_h, lr_outer=lr_o, radius=radii[i] if radii else math.inf))
    return out


@pytest.mark.parametrize("activation", ["tanh", "relu", "softplus", "square"])
@pytest.mark.parametrize("pairwise", [True, False])
@pytest.mark.parametrize("outputs", [1, 2])
def test_hand_written_gradients_equal_autograd(activation, pairwise, outputs):
    """The explicit backward (in place, one output folded into the last matmul; several: the
    general form) against autograd through the plain per-member formula (float64)."""
    x, _ = data()
    x = x.double()
    y = torch.randn(len(x), outputs, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ms = members(3, pairwise=pairwise)
    w = torch.stack([m.w0 for m in ms]).double().requires_grad_()
    v = torch.stack([m.v0.expand(outputs, -1) * torch.arange(1, outputs + 1)[:, None] for m in ms]).double().requires_grad_()
    loss, gw, gv, _ = loss_and_grads(x, y, w.detach(), v.detach(), activation, pairwise)
    act = {"tanh": torch.tanh, "relu": torch.relu, "softplus": torch.nn.functional.softplus, "square": torch.square}[activation]
    total, losses = 0, []
    for g in range(3):
        h = act(x @ w[g].T)
        phi = h[:, :3] - h[:, 3:] if pairwise else h
        losses.append(((phi @ v[g].T - y) ** 2).mean())
        total = total + losses[-1]
    ref_w, ref_v = torch.autograd.grad(total, (w, v))
    torch.testing.assert_close(loss, torch.stack(losses).detach())
    torch.testing.assert_close(gw, ref_w)
    torch.testing.assert_close(gv, ref_v)


def train(ms, steps=60, **kw):
    x, y = data()
    opts = dict(activation="tanh", pairwise=True, ball=True, outer_set=True, zeta=1e-3, gamma=1e3, momentum=0.9, log_every=10)
    opts.update(kw)
    trainer = BatchedShallowTrainer(x, y, ms, **opts)
    trainer.run(steps)
    return trainer


def test_per_member_projections_hold_and_bind():
    """Each member stays in its own ball around its own W0 and in V; radii that bind do bind."""
    radii = [0.02, 0.1, math.inf]
    ms = train(members(3, lrs=[(0.5, 0.5)] * 3, radii=radii), steps=30, zeta=0.05, gamma=3.0).members
    for m, r in zip(ms, radii):
        dist = ball_distance(m.w, m.w0)
        assert dist <= r * (1 + 1e-5)
        assert in_outer_set(m.v, 0.05, 3.0, rtol=1e-5)
        # a fixed point of the library's exact projections
        torch.testing.assert_close(project_ball(m.w, m.w0, r), m.w)
        torch.testing.assert_close(project_outer(m.v, 0.05, 3.0), m.v)
    assert ball_distance(ms[0].w, ms[0].w0) == pytest.approx(0.02, rel=1e-4)  # on the boundary
    assert ball_distance(ms[2].w, ms[2].w0) > 0.1  # r = inf: unconstrained


def test_members_equal_their_runs_alone():
    """Stacking changes no member's trajectory: each equals a group of one."""
    lrs = [(0.1, 0.1), (0.05, 0.2), (0.3, 0.01)]
    together = train(members(3, lrs=lrs, radii=[0.1, 1.0, math.inf]), steps=100).members
    for i in range(3):
        alone = train(members(3, lrs=lrs, radii=[0.1, 1.0, math.inf])[i:i + 1], steps=100).members[0]
        torch.testing.assert_close(together[i].w, alone.w, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(together[i].v, alone.v, rtol=1e-5, atol=1e-6)
        assert [s for s, _ in together[i].log] == list(range(10, 101, 10))


def test_diverging_member_is_marked_frozen_and_others_unchanged():
    lrs = [(0.1, 0.1), (1e4, 1e4), (0.05, 0.05)]
    ms = members(3, lrs=lrs, radii=[math.inf] * 3, pairwise=False)
    trainer = train(ms, steps=80, ball=False, outer_set=False, pairwise=False)
    bad = ms[1]
    assert bad.status == "diverged" and not math.isfinite(bad.log[-1][1]) and bad.steps < 80
    assert len(bad.log) == bad.steps // 10  # no loss logged after it was frozen
    assert trainer.alive == [0, 2]
    healthy = members(3, lrs=lrs, radii=[math.inf] * 3, pairwise=False)
    reference = train([healthy[0], healthy[2]], steps=80, ball=False, outer_set=False, pairwise=False).members
    for got, ref in zip([ms[0], ms[2]], reference):
        assert got.status == "done" and got.steps == 80
        torch.testing.assert_close(got.w, ref.w, rtol=1e-6, atol=1e-7)
        assert [v for _, v in got.log] == pytest.approx([v for _, v in ref.log], rel=1e-6)


def test_state_dict_resume_continues_the_same_trajectory():
    full = train(members(2, lrs=[(0.1, 0.1), (0.2, 0.05)], radii=[0.1, math.inf]), steps=60)
    first = train(members(2, lrs=[(0.1, 0.1), (0.2, 0.05)], radii=[0.1, math.inf]), steps=30)
    x, y = data()
    resumed = BatchedShallowTrainer(x, y, members(2, lrs=[(0.1, 0.1), (0.2, 0.05)], radii=[0.1, math.inf]),
                                    activation="tanh", pairwise=True, ball=True, outer_set=True, zeta=1e-3, gamma=1e3,
                                    momentum=0.9, log_every=10)
    resumed.load_state_dict(first.state_dict())
    resumed.run(60)
    for a, b in zip(full.members, resumed.members):
        assert torch.equal(a.w, b.w) and a.log == b.log


@pytest.mark.parametrize("activation", ["tanh", "relu", "softplus", "square"])
def test_gradients_run_on_the_data_device(activation):
    """No CPU tensor joins the step's ops: ``meta`` stands in for a GPU (none here)."""
    x, y = torch.empty(8, 3, device="meta"), torch.empty(8, 1, device="meta")
    w, v = torch.empty(2, 4, 3, device="meta"), torch.empty(2, 1, 2, device="meta")
    loss, gw, gv, f = loss_and_grads(x, y, w, v, activation, True)
    assert {t.device.type for t in (loss, gw, gv, f)} == {"meta"} and gw.shape == w.shape and gv.shape == v.shape


def test_a_config_on_a_gpu_is_not_batched():
    """Batched groups train on the CPU: a trainer on another device runs one train.py run per cell."""
    from types import SimpleNamespace

    from lit_memo.sweep.group import batch_blocker

    cli = SimpleNamespace(trainer=SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("cuda", 0))))
    assert "runs on cuda:0" in batch_blocker(cli) and "trainer.accelerator: cpu" in batch_blocker(cli)
