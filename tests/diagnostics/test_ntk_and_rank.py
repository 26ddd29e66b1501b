"""Empirical NTK and its drift; rank helpers with explicit tolerances (issue 3, papers/003)."""

from __future__ import annotations

import math

import pytest
import torch
from models_for_diagnostics import MODELS, explicit_jacobian
from torch import nn

from lit_memo.diagnostics import (default_rtol, eval_mode, ntk_drift, ntk_gram, numerical_rank, resolve_params,
                                  spectrum_summary)


@pytest.mark.parametrize("name", ["pairwise", "bn_cnn"])
def test_ntk_gram_is_j_jt(name):
    model, x = MODELS[name]()
    jac = explicit_jacobian(model, x)
    torch.testing.assert_close(ntk_gram(model, x), jac @ jac.T, rtol=1e-10, atol=1e-12)


def test_ntk_drift_is_zero_without_training_and_grows_with_movement():
    model, x = MODELS["mlp"]()
    k0 = ntk_gram(model, x)
    assert ntk_drift(ntk_gram(model, x), k0) == 0.0
    with torch.no_grad():
        model[0].weight.add_(0.1 * torch.randn_like(model[0].weight))
    small = ntk_drift(ntk_gram(model, x), k0)
    with torch.no_grad():
        model[0].weight.add_(torch.randn_like(model[0].weight))
    assert 0 < small < ntk_drift(ntk_gram(model, x), k0)


def test_ntk_drift_rejects_other_probe_sets():
    with pytest.raises(ValueError, match="shape"):
        ntk_drift(torch.eye(3), torch.eye(4))


def test_numerical_rank_matches_matrix_rank():
    gen = torch.Generator().manual_seed(0)
    for rank in (1, 4, 7):
        a = torch.randn(9, rank, dtype=torch.float64, generator=gen) @ torch.randn(rank, 12, dtype=torch.float64, generator=gen)
        sv = torch.linalg.svdvals(a)
        for rtol in (1e-12, 1e-6):
            assert numerical_rank(sv, rtol) == int(torch.linalg.matrix_rank(a, rtol=rtol)) == rank
        assert numerical_rank(sv, 0.0, atol=float(sv[0]) * 2) == 0


def test_default_rtol_follows_matrix_rank_in_float32_and_the_gram_floor_in_float64():
    assert default_rtol(30, 500, torch.float32) == 500 * torch.finfo(torch.float32).eps
    assert default_rtol(30, 500, torch.float64) == pytest.approx(math.sqrt(500 * torch.finfo(torch.float64).eps))


def test_spectrum_summary():
    summary = spectrum_summary(torch.tensor([4.0, 2.0, 1e-9], dtype=torch.float64), rtol=1e-6)
    assert summary == {"sigma_min": 1e-9, "sigma_max": 4.0, "rank": 2, "condition": pytest.approx(4e9)}
    assert spectrum_summary(torch.tensor([1.0, 0.0]), rtol=1e-6)["condition"] == math.inf


def test_resolve_params_names_prefixes_tensors_and_errors():
    model, _ = MODELS["mlp"]()
    assert list(resolve_params(model, ["0"])) == ["0.weight", "0.bias"]
    assert list(resolve_params(model, [model[4].bias, "2.weight"])) == ["2.weight", "4.bias"]
    with pytest.raises(ValueError, match="names no parameter"):
        resolve_params(model, ["9"])
    with pytest.raises(ValueError, match="not a parameter"):
        resolve_params(model, [torch.zeros(2)])
    model.requires_grad_(False)
    with pytest.raises(ValueError, match="no parameters"):
        resolve_params(model)


def test_eval_mode_restores_each_submodule():
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(), nn.BatchNorm1d(2))
    model[2].eval()
    with eval_mode(model):
        assert not any(m.training for m in model.modules())
    assert [m.training for m in model.modules()] == [True, True, True, False]
