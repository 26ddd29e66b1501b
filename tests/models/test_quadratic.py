"""Ge et al. (2019) quadratic nets: output and gradient against the direct formula; a and V fixed
buffers that never train and come back from a checkpoint; the module's regime and loss."""

from __future__ import annotations

import pytest
import torch

from lit_memo.models import QuadraticNet, RandomFeatures, ThreeLayerQuadraticNet
from lit_memo.modules import QuadraticModule, ThreeLayerQuadraticModule


def direct_output(w: torch.Tensor, a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """sum_i a_i (w_i . x)^2, one sample and one unit at a time, in float64."""
    w, a, x = w.double(), a.double(), x.double()
    return torch.stack([sum(a[i] * torch.dot(w[i], xj) ** 2 for i in range(len(w))) for xj in x])


def test_output_and_gradient_equal_the_direct_formula():
    torch.manual_seed(0)
    net = QuadraticNet(input_dim=5, width=6).double()
    assert net.a.tolist() == [1, 1, 1, -1, -1, -1]
    x, c = torch.randn(9, 5, dtype=torch.float64), torch.randn(9, dtype=torch.float64)
    out = net(x)
    assert out.shape == (9, 1)
    torch.testing.assert_close(out.squeeze(1), direct_output(net.weight.detach(), net.a, x), rtol=1e-12, atol=1e-12)
    (out.squeeze(1) * c).sum().backward()
    # d/dw_i sum_j c_j f(x_j) = 2 a_i sum_j c_j (w_i . x_j) x_j
    w = net.weight.detach()
    expected = torch.stack([2 * net.a[i] * sum(c[j] * torch.dot(w[i], x[j]) * x[j] for j in range(9)) for i in range(6)])
    torch.testing.assert_close(net.weight.grad, expected, rtol=1e-12, atol=1e-12)


def test_three_layer_is_the_quadratic_net_on_seeded_random_features():
    torch.manual_seed(1)
    net = ThreeLayerQuadraticNet(input_dim=4, features=7, width=8, power=2, feature_scale=0.5, feature_seed=3)
    torch.manual_seed(2)  # V does not depend on the global RNG, only on its seed
    assert torch.equal(RandomFeatures(4, 7, 2, 0.5, seed=3).V, net.features.V)
    x = torch.randn(5, 4)
    z = (x @ net.features.V.t()) ** 2
    torch.testing.assert_close(net(x), net.quadratic(z))
    assert [name for name, _ in net.named_parameters()] == ["quadratic.weight"]


def fit_a_few_steps(module, make_trainer, tmp_path, steps=5):
    x = torch.randn(32, *module.input_shape)
    y = torch.randn(32)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    trainer = make_trainer(max_steps=steps, enable_checkpointing=False)
    trainer.fit(module, loader)
    path = tmp_path / "last.ckpt"
    trainer.save_checkpoint(path)
    return path


@pytest.mark.parametrize("cls", [QuadraticModule, ThreeLayerQuadraticModule])
def test_fixed_weights_get_no_gradient_never_change_and_are_restored(cls, make_trainer, tmp_path):
    torch.manual_seed(0)
    kwargs = dict(input_shape=(6,), width=8, optimizer=lambda g: torch.optim.Adam(g, lr=0.05))
    if cls is ThreeLayerQuadraticModule:
        kwargs.update(features=5, feature_seed=4)
    module = cls(**kwargs)
    fixed = {name: b.clone() for name, b in module.named_buffers()}
    assert set(fixed) >= {"net.a"} or set(fixed) >= {"net.quadratic.a", "net.features.V"}
    assert all(not b.requires_grad for _, b in module.named_buffers())
    w0 = module.quadratic.weight.detach().clone()
    path = fit_a_few_steps(module, make_trainer, tmp_path)
    assert not torch.equal(module.quadratic.weight.detach(), w0)  # W trained
    for name, b in module.named_buffers():
        assert torch.equal(b, fixed[name]), name  # a and V did not
    # a fresh module whose buffers differ gets them back from the checkpoint
    other = cls(**{**kwargs, **({"feature_seed": 9} if cls is ThreeLayerQuadraticModule else {})})
    with torch.no_grad():
        for b in other.buffers():
            b.mul_(-3)
    other.load_state_dict(torch.load(path, weights_only=False)["state_dict"])
    for name, b in other.named_buffers():
        assert torch.equal(b, fixed[name]), name
    restored = cls.load_from_checkpoint(path, **({"optimizer": None}))
    for name, b in restored.named_buffers():
        assert torch.equal(b, fixed[name]), name


def test_loss_adds_the_regularizer_and_logs_the_data_term():
    torch.manual_seed(0)
    module = QuadraticModule(input_shape=(3,), width=4, lam=0.2)
    x, y = torch.randn(10, 3), torch.randn(10)
    out = module(x)
    mse = ((out.squeeze(1) - y) ** 2).mean()
    expected = mse + 0.1 * module.net.weight.pow(2).sum()
    torch.testing.assert_close(module.loss(out, y), expected)


@pytest.mark.parametrize("bad, match", [
    (dict(regime="ours"), "regime 'ours' does not apply"),
    (dict(regime="constrained_regular"), "regime 'constrained_regular'"),
    (dict(radius=3.0), "radius"),
    (dict(lr_outer=0.1), "lr_outer"),
    (dict(width=5), "odd"),
    (dict(lam=-1.0), "lam"),
    (dict(num_outputs=10, task="classification"), "targets: float"),
])
def test_bad_options_are_refused_with_the_field_named(bad, match):
    with pytest.raises(ValueError, match=match):
        QuadraticModule(**{"input_shape": (3,), "width": 4, **bad})
