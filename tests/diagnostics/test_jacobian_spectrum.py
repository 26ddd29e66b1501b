"""jacobian_spectrum against the SVD of the explicit Jacobian (issue 3; Zhang et al. Fig. 4 c-d)."""

from __future__ import annotations

import pytest
import torch
from models_for_diagnostics import MODELS, explicit_jacobian

from lit_memo.diagnostics import default_rtol, jacobian_gram, jacobian_spectrum, numerical_rank
from lit_memo.models import OneHiddenLayerNet


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("max_bytes", [2**28, 300], ids=["one_block", "sliced_and_chunked"])
def test_spectrum_equals_svdvals_of_explicit_jacobian(name, max_bytes):
    model, x = MODELS[name]()
    expected = torch.linalg.svdvals(explicit_jacobian(model, x))
    sv = jacobian_spectrum(model, x, max_bytes=max_bytes)
    assert sv.dtype == torch.float64
    assert sv.shape == expected.shape
    assert torch.all(sv[:-1] >= sv[1:]), "not descending"
    torch.testing.assert_close(sv, expected, rtol=1e-9, atol=1e-9 * float(expected[0]))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_gram_is_j_jt(name):
    model, x = MODELS[name]()
    jac = explicit_jacobian(model, x)
    torch.testing.assert_close(jacobian_gram(model, x, max_bytes=500), jac @ jac.T, rtol=1e-10, atol=1e-12)


def test_parameter_subset_by_name_prefix_and_tensor():
    model, x = MODELS["mlp"]()
    expected = torch.linalg.svdvals(explicit_jacobian(model, x, ["0", "4.bias"]))
    for spec in (["0", "4.bias"], ["0.weight", "0.bias", "4.bias"], [model[0].weight, model[0].bias, model[4].bias]):
        torch.testing.assert_close(jacobian_spectrum(model, x, spec), expected, rtol=1e-9, atol=1e-12)


def test_more_rows_than_parameters_gives_one_value_per_parameter():
    model, x = MODELS["mlp"]()
    expected = torch.linalg.svdvals(explicit_jacobian(model, x, ["2.bias", "4.bias"]))
    assert expected.numel() == 9  # 6 samples x 3 outputs = 18 rows > 6 + 3 columns
    for spec in (["2.bias", "4.bias"], [model[2].bias, model[4].bias]):
        torch.testing.assert_close(jacobian_spectrum(model, x, spec), expected, rtol=1e-9, atol=1e-12)


def test_frozen_parameters_are_left_out_by_default():
    model, x = MODELS["mlp"]()
    model[0].weight.requires_grad_(False)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    expected = torch.linalg.svdvals(explicit_jacobian(model, x, names))
    torch.testing.assert_close(jacobian_spectrum(model, x), expected, rtol=1e-9, atol=1e-12)


def test_model_state_buffers_and_grads_untouched():
    model, x = MODELS["bn_cnn"]()
    model[1].eval()  # a mixed train/eval state must come back exactly
    flags = [m.training for m in model.modules()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    jacobian_spectrum(model, x, max_bytes=300)
    assert [m.training for m in model.modules()] == flags
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(rng, torch.get_rng_state())


def test_float32_model_matches_float64_reference():
    model, x = MODELS["mlp"]()
    expected = torch.linalg.svdvals(explicit_jacobian(model, x))
    sv = jacobian_spectrum(model.float(), x.float())
    assert sv.dtype == torch.float64
    torch.testing.assert_close(sv, expected, rtol=1e-4, atol=1e-5 * float(expected[0]))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_duplicated_hidden_units_report_rank_deficiency(dtype):
    """A regular net whose hidden rows are identical: J w.r.t. W has rank <= d < n."""
    torch.manual_seed(4)
    d, width, n = 3, 10, 20
    net = OneHiddenLayerNet(d, width, 1).to(dtype)
    x = torch.randn(n, d, dtype=dtype)
    rtol = default_rtol(n, width * d, dtype)
    full = numerical_rank(jacobian_spectrum(net, x, ["hidden"]), rtol)
    assert full == n  # m d = 30 >= n: generic weights give a full-rank Jacobian
    with torch.no_grad():
        net.hidden.weight.copy_(net.hidden.weight[:1].expand_as(net.hidden.weight))
    sv = jacobian_spectrum(net, x, ["hidden"])
    rank = numerical_rank(sv, rtol)
    assert rank == d == int(torch.linalg.matrix_rank(explicit_jacobian(net.double(), x.double(), ["hidden"])))
    assert float(sv[-1]) <= rtol * float(sv[0])


def test_nan_weights_give_a_nan_spectrum_not_an_error():
    """A diverged run's weights: eigvalsh would fail to converge; the spectrum is NaN, and so is every summary value."""
    from lit_memo.diagnostics import spectrum_summary

    model, x = MODELS["mlp"]()
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    sv = jacobian_spectrum(model, x)
    assert sv.shape == torch.linalg.svdvals(explicit_jacobian(*MODELS["mlp"]())).shape and torch.isnan(sv).all()
    summary = spectrum_summary(sv, rtol=1e-6)
    assert all(v != v for v in summary.values()), summary
