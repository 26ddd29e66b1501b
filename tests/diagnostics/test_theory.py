"""Theory certificates: sigma_min of [x_i (x) x_i] by the Gram identity against the explicit
Kronecker matrix (numpy), the width verdicts on both sides of every bound, and the callback."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from lit_memo.callbacks import TheoryCertificateCallback
from lit_memo.diagnostics import kron_sigma_min, kron_singular_values, rank_limit, width_conditions
from lit_memo.modules import QuadraticModule, ThreeLayerQuadraticModule


def explicit_singular_values(x: np.ndarray) -> np.ndarray:
    kron = np.stack([np.kron(xi, xi) for xi in x], axis=1)  # d^2 x n
    return np.linalg.svd(kron, compute_uv=False)


@pytest.mark.parametrize("n, d", [(12, 6), (21, 6), (30, 9)])
def test_gram_route_equals_the_explicit_kronecker_matrix(n, d):
    x = np.random.default_rng(n).normal(size=(n, d))
    expected = explicit_singular_values(x)
    got = kron_singular_values(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-10 * expected[0])
    assert kron_sigma_min(torch.from_numpy(x)) == pytest.approx(expected[-1], rel=1e-6)


def test_beyond_the_rank_limit_sigma_min_is_zero():
    d = 5
    x = np.random.default_rng(0).normal(size=(rank_limit(d) + 1, d))
    assert explicit_singular_values(x)[-1] < 1e-10  # the explicit matrix agrees: dependent columns
    assert kron_sigma_min(torch.from_numpy(x)) == 0.0


def verdicts(n, d, width):
    return {(c.paper, c.name): c.holds for c in width_conditions(n, d, width)}


def test_width_verdicts_on_both_sides_of_each_bound():
    # Zhang m >= 2n/d: n = 100, d = 10 -> 20
    assert verdicts(100, 10, 20)[("zhang", "width")] and not verdicts(100, 10, 19)[("zhang", "width")]
    # Ge k >= 2d: d = 10 -> 20 (and n <= d(d+1)/2 = 55)
    assert verdicts(30, 10, 20)[("ge", "width")] and not verdicts(30, 10, 19)[("ge", "width")]
    assert verdicts(55, 10, 20)[("ge", "rank_limit")] and not verdicts(56, 10, 20)[("ge", "rank_limit")]
    # Daniely about n/d: n = 100, d = 10 -> 10
    assert verdicts(100, 10, 10)[("daniely", "width")] and not verdicts(100, 10, 9)[("daniely", "width")]
    bounds = {(c.paper, c.name): c.bound for c in width_conditions(100, 10, 7)}
    assert bounds == {("zhang", "width"): 20.0, ("ge", "width"): 20, ("ge", "rank_limit"): 55,
                      ("daniely", "width"): 10.0}
    with pytest.raises(ValueError, match="n, d and width"):
        width_conditions(0, 10, 7)


def run_callback(module, x, make_trainer, tmp_path):
    from pytorch_lightning.loggers import CSVLogger

    data = torch.utils.data.TensorDataset(x, torch.randn(len(x)))
    callback = TheoryCertificateCallback()
    trainer = make_trainer(max_steps=1, callbacks=[callback], logger=CSVLogger(str(tmp_path), name="", version=""))
    trainer.fit(module, torch.utils.data.DataLoader(data, batch_size=len(x)))
    with open(tmp_path / "metrics.csv") as f:
        row = next(r for r in csv.DictReader(f) if r.get("theory/n"))
    return callback, row


def test_callback_logs_the_certificate_of_the_inputs(make_trainer, tmp_path):
    x = torch.nn.functional.normalize(torch.randn(40, 10), dim=1)
    callback, row = run_callback(QuadraticModule(input_shape=(10,), width=20), x, make_trainer, tmp_path)
    assert float(row["theory/kron_sigma_min"]) == pytest.approx(explicit_singular_values(x.double().numpy())[-1], rel=1e-5)
    assert (float(row["theory/n"]), float(row["theory/d"]), float(row["theory/width"])) == (40, 10, 20)
    assert float(row["theory/ge/width_holds"]) == 1 and float(row["theory/ge/width_bound"]) == 20
    assert float(row["theory/ge/rank_limit_holds"]) == 1 and float(row["theory/zhang/width_bound"]) == 8
    assert "sigma_min" in callback.message and "ge: width 20 >= 2d = 20 holds" in callback.message


def test_callback_uses_the_random_features_of_the_three_layer_net(make_trainer, tmp_path):
    x = torch.randn(30, 3)
    module = ThreeLayerQuadraticModule(input_shape=(3,), features=6, width=10)
    callback, row = run_callback(module, x, make_trainer, tmp_path)
    z = module.net.features(x).double().numpy()
    assert float(row["theory/d"]) == 6  # d is what the trained layer sees: z
    assert float(row["theory/kron_sigma_min"]) == pytest.approx(explicit_singular_values(z)[-1], rel=1e-5)
    assert float(row["theory/ge/width_holds"]) == 0  # 10 < 2 * 6
    assert "ge: width 10 >= 2d = 12 FAILS" in callback.message
