"""Daniely (2020): the zero-output init and one SGD step with the 1/B^2-scaled step, against the formula."""

from __future__ import annotations

import pytest
import torch

from lit_memo.models import ZeroOutputNet
from lit_memo.modules import DanielyModule


def test_zero_output_init_is_exactly_zero_in_train_and_eval():
    torch.manual_seed(0)
    module = DanielyModule(input_shape=(20,), width=300, scale=7.0, activation="softplus")
    w, u = module.net.hidden.weight, module.net.u
    assert torch.equal(w[:150], w[150:]) and torch.equal(u, torch.cat([torch.full((150,), 7.0), torch.full((150,), -7.0)]))
    x = torch.randn(257, 20)
    for mode in (True, False):
        module.train(mode)
        assert torch.equal(module(x), torch.zeros(257, 1))
    assert [n for n, _ in module.named_parameters()] == ["net.hidden.weight"]


def test_one_sgd_step_with_the_scaled_step_equals_the_formula():
    torch.manual_seed(0)
    eta, B, n, d, q = 0.7, 5.0, 12, 6, 4
    module = DanielyModule(input_shape=(d,), width=2 * q, scale=B, eta=eta, weight_std=0.8,
                           optimizer=lambda groups: torch.optim.SGD(groups, lr=123.0))  # the group's lr wins
    module.double()
    x = torch.nn.functional.normalize(torch.randn(n, d, dtype=torch.float64), dim=1)
    y = (torch.randint(0, 2, (n,)) * 2 - 1).double()
    w0 = module.net.hidden.weight.detach().clone()
    opt = module.configure_optimizers()
    assert opt.param_groups[0]["lr"] == pytest.approx(eta / B**2)
    loss = module.loss(module(x), y)
    assert loss.item() == pytest.approx(torch.log(torch.tensor(2.0)).item())  # h = 0: log(1 + e^0)
    loss.backward()
    opt.step()
    # logistic loss at h = 0: d/dh_j mean softplus(-y h) = -y_j / (2n); dh_j/dw_k = u_k tanh'(w_k.x_j) x_j
    u = module.net.u
    grad = torch.zeros_like(w0)
    for k in range(2 * q):
        for j in range(n):
            pre = torch.dot(w0[k], x[j])
            grad[k] += (-y[j] / (2 * n)) * u[k] * (1 - torch.tanh(pre) ** 2) * x[j]
    torch.testing.assert_close(module.net.hidden.weight.detach(), w0 - eta / B**2 * grad, rtol=1e-12, atol=1e-14)


def test_hinge_loss_and_sign_labels_check():
    module = DanielyModule(input_shape=(3,), width=4, loss="hinge")
    out = torch.tensor([[0.5], [-2.0]])
    assert module.loss(out, torch.tensor([1.0, -1.0])).item() == pytest.approx((0.5 + 0.0) / 2)
    fresh = DanielyModule(input_shape=(3,), width=4)
    with pytest.raises(ValueError, match="labels in"):
        fresh.loss(out, torch.tensor([0.3, 1.0]))


@pytest.mark.parametrize("bad, match", [
    (dict(regime="ours"), "regime 'ours' does not apply"),
    (dict(lr_hidden=0.1), "eta"),
    (dict(width=7), "odd"),
    (dict(scale=0.0), "scale"),
    (dict(loss="square"), "loss"),
])
def test_bad_options_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        DanielyModule(**{"input_shape": (3,), "width": 4, **bad})


def test_net_alone():
    net = ZeroOutputNet(3, 4, scale=2.0)
    assert net(torch.randn(5, 3)).abs().max() == 0
