"""The Ge et al. / Daniely configs through train.py: each trains a few steps; PerturbedGD ends the fit
by itself; the synthetic config's PGD constants are Theorem 4's recipe for its own data and init."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
import yaml

import train
from conftest import ROOT
from lit_memo.optim import ge_smoothness

QUIET = ["--trainer.enable_progress_bar=false", "--wandb_mode=disabled", "--run_test=false",
         "--trainer.log_every_n_steps=1"]
MNIST = ["ge_mnist_quadratic.yaml", "ge_mnist_quadratic_noise.yaml", "ge_mnist_quadratic_random_labels.yaml",
         "ge_mnist_pca_three_layer.yaml", "ge_mnist_pca_three_layer_random_labels.yaml"]
SYNTHETIC = ["ge_synthetic_quadratic.yaml", "daniely_random_labels.yaml"]


def metrics(out: Path) -> list[dict]:
    (path,) = out.glob("*/*/metrics.csv")
    with open(path) as f:
        return list(csv.DictReader(f))


def test_the_list_covers_every_new_config():
    shipped = {p.name for p in (ROOT / "configs").glob("*.yaml") if p.name.startswith(("ge_", "daniely_"))}
    assert shipped == set(MNIST + SYNTHETIC)


@pytest.mark.parametrize("name", SYNTHETIC)
def test_synthetic_configs_train_a_few_steps(name, tmp_path):
    train.main(["--config", name, "--trainer.max_steps=4", "--trainer.max_epochs=-1", *QUIET,
                f"--output_dir={tmp_path}"])
    rows = metrics(tmp_path)
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert len(losses) == 4 and all(torch.isfinite(torch.tensor(losses)))
    assert any(r.get("theory/ge/width") for r in rows)  # the theory callback logged at train start


@pytest.mark.slow
@pytest.mark.parametrize("name", MNIST)
def test_mnist_configs_train_a_few_steps(name, tmp_path, data_root):
    train.main(["--config", name, "--data.init_args.subset_size=600", "--data.init_args.batch_size=200",
                "--trainer.max_steps=3", *QUIET, f"--data.init_args.data_dir={data_root}", f"--output_dir={tmp_path}"])
    rows = metrics(tmp_path)
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
    assert any(r.get("theory/kron_sigma_min") for r in rows)


def test_perturbed_gd_ends_the_fit_by_itself_at_the_remembered_point(tmp_path):
    # W = 0 is a strict saddle of Ge's objective (zero gradient): PGD perturbs at once, and the
    # stopping rule fires t_thres steps later, long before max_steps
    cli = train.main(["--config", "ge_synthetic_quadratic.yaml", "--model.init_args.init_std=0",
                      "--trainer.max_steps=5000", *QUIET, f"--output_dir={tmp_path}"])
    opt = cli.trainer.optimizers[0]
    assert opt.stopped and opt.perturbations == 1
    assert cli.trainer.global_step == opt.wait + 1 < 5000
    assert torch.equal(cli.model.net.weight, torch.zeros_like(cli.model.net.weight))  # the remembered point
    rows = metrics(tmp_path)
    assert [float(r["pgd/stopped"]) for r in rows if r.get("pgd/stopped")] == [1.0]
    assert max(float(r["pgd/perturbations"]) for r in rows if r.get("pgd/perturbations")) == 1.0


def test_synthetic_pgd_constants_are_theorem_4s_recipe_for_the_config(tmp_path):
    cfg = yaml.safe_load((ROOT / "configs" / "ge_synthetic_quadratic.yaml").read_text())["model"]["init_args"]
    cli = train.build_cli(["--config", "ge_synthetic_quadratic.yaml", *QUIET, f"--output_dir={tmp_path}"])
    module, data = cli.model, cli.datamodule
    data.setup("fit")
    x, y = data.splits["train"].tensors
    with torch.no_grad():
        f0 = module.loss(module(x), y).item()
    recipe = ge_smoothness(cfg["lam"], f0, label_bound=y.abs().max().item(), input_norm=x.norm(dim=1).max().item())
    given = cfg["optimizer"]["init_args"]
    for key in ("l", "rho", "delta_f"):  # rounded up: still valid bounds, within 0.1%
        assert recipe[key] <= given[key] <= recipe[key] * 1.001, key
