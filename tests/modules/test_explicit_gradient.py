"""ShallowNetModule(explicit_gradient=True): the hand-written full-batch gradient in train.py's loop."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch

from lit_memo.data import SyntheticDataModule
from lit_memo.modules import ShallowNetModule


class CountSteps(pl.Callback):  # overrides a per-step hook: the module must fall back to autograd
    def __init__(self) -> None:
        self.calls = 0

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.calls += 1


def fit(make_trainer, explicit, regime="ours", activation="tanh", callbacks=(), steps=60):
    torch.manual_seed(0)
    data = SyntheticDataModule(n=40, d=5, batches_per_epoch=3, seed=2)
    module = ShallowNetModule(input_shape=data.input_shape, width=8, regime=regime, radius=0.5, activation=activation,
                              steps_per_batch=4, explicit_gradient=explicit, lr_hidden=0.2, lr_outer=0.2)
    trainer = make_trainer(max_steps=steps, callbacks=list(callbacks), deterministic=True)
    trainer.fit(module, datamodule=data)
    return module, trainer


@pytest.mark.parametrize("regime,activation", [("ours", "tanh"), ("regular", "relu"), ("constrained_regular", "softplus")])
def test_equals_autograd_training(make_trainer, regime, activation):
    """Same steps, projections and logged losses as autograd, weights equal to float rounding."""
    auto, auto_trainer = fit(make_trainer, False, regime, activation)
    fast, fast_trainer = fit(make_trainer, True, regime, activation)
    assert fast._explicit_on and not auto._explicit_on
    assert fast_trainer.global_step == auto_trainer.global_step == 60
    for a, b in zip(auto.parameters(), fast.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
    assert fast.projection_stats.keys() == auto.projection_stats.keys()
    torch.testing.assert_close(fast._last_loss, auto._last_loss, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(fast._loss_best, auto._loss_best, rtol=1e-4, atol=1e-7)


def test_gradient_equals_autograd_in_float64():
    torch.manual_seed(1)
    module = ShallowNetModule(input_shape=(5,), width=6, regime="ours", steps_per_batch=2, explicit_gradient=True).double()
    x, y = torch.randn(30, 5, dtype=torch.float64), torch.randn(30, dtype=torch.float64)
    out, loss = module.explicit_forward_backward_(x, y)
    grads = [p.grad.clone() for p in (module.net.hidden.weight, module.net.output.weight)]
    module.zero_grad()
    ref = module.loss(module(x), y)
    ref.backward()
    torch.testing.assert_close(loss, ref.detach())
    torch.testing.assert_close(out.reshape(-1), module(x).detach().reshape(-1))
    for g, p in zip(grads, (module.net.hidden.weight, module.net.output.weight)):
        torch.testing.assert_close(g, p.grad)


def test_observed_hook_falls_back_to_autograd_with_a_warning(make_trainer):
    counter = CountSteps()
    with pytest.warns(UserWarning, match="explicit_gradient is off for this fit"):
        module, trainer = fit(make_trainer, True, callbacks=[counter], steps=8)
    assert not module._explicit_on and counter.calls == trainer.global_step == 8
    assert math.isfinite(float(module._last_loss))


@pytest.mark.parametrize("kwargs,match", [
    (dict(steps_per_batch=1), "steps_per_batch > 1"),
    (dict(bias=True), "bias"),
    (dict(compile=True), "choose one of compile and explicit_gradient"),
    (dict(num_outputs=3, task="classification"), "task regression"),
])
def test_refused_where_it_cannot_apply(kwargs, match):
    args = dict(input_shape=(5,), width=6, steps_per_batch=4, explicit_gradient=True)
    with pytest.raises(ValueError, match=f"explicit_gradient: .*{match}.*explicit_gradient=false"):
        ShallowNetModule(**{**args, **kwargs})
