"""reproduction/pl_rate.py: the PL linear-rate bound (papers/003) against an explicit computation."""

from __future__ import annotations

import csv
import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from lit_memo.models.shallow import OneHiddenLayerNet

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("pl_rate", ROOT / "reproduction" / "pl_rate.py")
pl_rate = importlib.util.module_from_spec(_spec)
sys.modules["pl_rate"] = pl_rate  # its dataclass looks its module up there
_spec.loader.exec_module(pl_rate)

N, D, WIDTH, STEPS = 6, 8, 6, 30


def explicit_gd():
    """Plain GD on L = mean squared error of a tiny tanh net, in float64, with J (n x p) from
    torch.autograd.functional.jacobian and the full Hessian at every iterate."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(N, D, generator=gen, dtype=torch.float64)
    x = x / x.norm(dim=1, keepdim=True)
    y = torch.randn(N, generator=gen, dtype=torch.float64)
    torch.manual_seed(0)
    net = OneHiddenLayerNet(D, WIDTH).double()
    shapes = [p.shape for p in net.parameters()]
    w = torch.cat([p.detach().reshape(-1) for p in net.parameters()])

    def f(flat: torch.Tensor) -> torch.Tensor:
        params, i = {}, 0
        for (name, _), shape in zip(net.named_parameters(), shapes):
            k = math.prod(shape)
            params[name], i = flat[i:i + k].reshape(shape), i + k
        return torch.func.functional_call(net, params, (x,)).reshape(-1)

    def loss(flat: torch.Tensor) -> torch.Tensor:
        return ((f(flat) - y) ** 2).mean()

    beta0 = torch.linalg.eigvalsh(torch.autograd.functional.hessian(loss, w))[-1].item()
    lr = 0.2 / beta0  # eta <= 1/beta with room: beta triples along this run
    losses, lams, grads2, betas = [], [], [], []
    for _ in range(STEPS + 1):
        jac = torch.autograd.functional.jacobian(f, w)  # n x p
        lam = torch.linalg.eigvalsh(jac @ jac.T)[0].item()
        w_req = w.clone().requires_grad_(True)
        value = loss(w_req)
        (grad,) = torch.autograd.grad(value, w_req)
        losses.append(value.item()), lams.append(lam), grads2.append(grad.pow(2).sum().item())
        betas.append(torch.linalg.eigvalsh(torch.autograd.functional.hessian(loss, w))[-1].item())
        w = w - lr * grad
    return np.array(losses), np.array(lams), np.array(grads2), np.array(betas), lr, (f, y, w)


@pytest.fixture(scope="module")
def gd():
    return explicit_gd()


def test_pl_inequality_and_its_constant_are_exact(gd):
    losses, lams, grads2, betas, lr, (f, y, w) = gd
    assert lams.min() > 0  # a full-rank Jacobian along the run
    # ||grad L||^2 >= (4/n) lambda_min(J J^T) L at every iterate, for the mean squared error
    assert np.all(grads2 >= 4 / N * lams * losses * (1 - 1e-10))
    # ... with equality when the residual is the bottom eigenvector of J J^T: the constant is 4/n, not less
    jac = torch.autograd.functional.jacobian(f, w)
    evals, evecs = torch.linalg.eigh(jac @ jac.T)
    r = 0.3 * evecs[:, 0]
    grad = 2 / N * jac.T @ r
    assert grad.pow(2).sum().item() == pytest.approx(4 / N * evals[0].item() * r.pow(2).mean().item(), rel=1e-9)


def test_bound_equals_the_explicit_product_and_holds_for_small_eta(gd):
    losses, lams, grads2, betas, lr, _ = gd
    assert lr * betas.max() <= 1  # the smoothness assumption, checked along the run
    steps = np.arange(STEPS + 1)
    bound = pl_rate.pl_bound(steps, losses[0], steps, np.sqrt(lams), lr, N)
    explicit = [losses[0] * math.prod(1 - 2 * lr * lams[j] / N for j in range(t)) for t in steps]
    np.testing.assert_allclose(bound, explicit, rtol=1e-12)
    assert np.all(losses <= bound)  # cumulative
    assert np.all(losses[1:] <= (1 - 2 * lr * lams[:-1] / N) * losses[:-1])  # and step by step
    # a sparser logging grid (loss every 5 steps, lambda every 5) still gives a valid, weaker bound
    sparse = steps[::5]
    weaker = pl_rate.pl_bound(sparse, losses[0], sparse, np.sqrt(lams[sparse]), lr, N)
    assert np.all(losses[sparse] <= weaker)


def test_held_lambda_takes_the_smaller_bracketing_measurement():
    measured, lam = np.array([0, 10, 20]), np.array([3.0, 1.0, 2.0])
    got = pl_rate.held_lambda(measured, lam, 0, 25)
    brute = []
    for j in range(25):
        below = [v for m, v in zip(measured, lam) if m <= j]
        above = [v for m, v in zip(measured, lam) if m >= j] or [lam[-1]]
        brute.append(min(below[-1], above[0]))
    np.testing.assert_array_equal(got, brute)


def write_run(folder: Path, losses, lams, lr, momentum=0.0) -> Path:
    """A run folder as train.py leaves it: train/loss at row step s is the loss at iterate s - 1,
    jacobian/sigma_min at row step s is measured at iterate s (every 5 steps here)."""
    folder.mkdir(parents=True)
    cfg = {"model": {"init_args": {"regime": "regular", "radius": math.inf, "zeta": 0.0, "lr_hidden": None,
                                   "lr_outer": None, "optimizer": {"class_path": "torch.optim.SGD",
                                                                   "init_args": {"lr": lr, "momentum": momentum}}}},
           "data": {"init_args": {"n": N, "d": D, "full_batch": True}}}
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg))
    with (folder / "metrics.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["step", "train/loss", "jacobian/sigma_min", "hessian/lambda_max"])
        for s in range(0, STEPS + 1, 5):
            w.writerow([s, "", math.sqrt(lams[s]), 0.1])
            if s > 0:
                w.writerow([s, losses[s - 1], "", ""])
    return folder


def test_the_comparison_reads_a_run_folder_and_catches_a_violation(gd, tmp_path):
    losses, lams, _, _, lr, _ = gd
    res = pl_rate.compare(pl_rate.load_run(write_run(tmp_path / "ok" / "t", losses, lams, lr)))
    assert res["holds"] and res["interval_holds"] == res["intervals"]
    assert res["rate_measured"] >= res["rate_bound"] > 0
    bad = losses.copy()
    bad[19] = 10 * losses[4]  # logged at row step 20, i.e. GD step 19
    res = pl_rate.compare(pl_rate.load_run(write_run(tmp_path / "bad" / "t", bad, lams, lr)))
    assert not res["holds"] and res["first_violation"] == 19
    with pytest.raises(SystemExit, match="momentum 0"):
        pl_rate.load_run(write_run(tmp_path / "mom" / "t", losses, lams, lr, momentum=0.9))


@pytest.mark.slow
def test_script_on_a_short_train_py_run(tmp_path, capsys):
    import train

    overlay = yaml.safe_load((ROOT / "reproduction" / "pl_rate" / "pl_gd_n50_d100.yaml").read_text())
    overlay["trainer"]["max_steps"] = 40
    overlay["trainer"]["callbacks"][0]["init_args"].update(every_n_steps=5, num_probes=20)
    overlay["trainer"]["callbacks"][1]["init_args"].update(every_n_steps=20, batch_size=20)
    overlay["model"]["init_args"].update(steps_per_batch=5, width=10)
    overlay["data"]["init_args"].update(n=20, d=40)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(overlay))
    cli = train.main(["--config", "synthetic_narrow.yaml", "--config", str(tmp_path / "tiny.yaml"),
                      "--wandb_mode=disabled", "--trainer.enable_progress_bar=false", "--run_test=false",
                      f"--output_dir={tmp_path / 'runs'}"])
    assert pl_rate.main(["--runs", str(cli.run_dir), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "loss <= bound at every logged step: True" in out
    assert (tmp_path / "out" / "pl_rate.png").read_bytes()[:4] == b"\x89PNG"
    rows = list(csv.DictReader((tmp_path / "out" / "pl_rate.csv").open()))
    assert [int(r["gd_step"]) for r in rows] == list(range(4, 40, 5))
