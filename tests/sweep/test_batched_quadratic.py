"""Batched training of Ge et al.'s quadratic nets: gradients, optimizer arithmetic, members equal
their train.py runs (full-batch SGD; Adam + mini-batches + StepLR on the three-layer net),
divergence, resume, refusals, and a sweep through ``python -m lit_memo.sweep``."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from conftest import ROOT
from lit_memo.sweep.batched_quadratic import BatchedAdam, BatchedQuadraticTrainer, BatchedSGD, loss_and_grad
from lit_memo.sweep.group import batch_blocker, run_group
from lit_memo.sweep.worker import load_train, run_cell

LR = "--model.init_args.optimizer.init_args.lr"
# Ge et al.'s synthetic set-up (ge_synthetic_quadratic.yaml) with SGD + momentum instead of PerturbedGD
FULL_BATCH = ["--config", "ge_synthetic_quadratic.yaml", "--trainer.callbacks=[]", "--wandb_mode=disabled",
              "--trainer.max_steps=300", "--trainer.log_every_n_steps=10", "--data.init_args.batches_per_epoch=100",
              "--model.init_args.optimizer=torch.optim.SGD", "--model.init_args.optimizer.init_args.momentum=0.9"]
MINI_BATCH_CONFIG = {
    "seed_everything": 0,
    "trainer": {"max_epochs": 100, "log_every_n_steps": 3, "accelerator": "cpu", "devices": 1, "callbacks": [],
                "enable_model_summary": False, "num_sanity_val_steps": 0},
    "model": {"class_path": "lit_memo.modules.ThreeLayerQuadraticModule",
              "init_args": {"features": 12, "width": 24, "feature_scale": 1.0, "lam": 1.0e-3,
                            "optimizer": {"class_path": "torch.optim.Adam", "init_args": {"lr": 0.01}},
                            "lr_scheduler": {"class_path": "torch.optim.lr_scheduler.StepLR",
                                             "init_args": {"step_size": 30, "gamma": 0.3}}}},
    # 40 samples in batches of 16: three batches per epoch, the last one short
    "data": {"class_path": "lit_memo.data.SyntheticDataModule",
             "init_args": {"n": 40, "d": 6, "inputs": "cube", "labels": "uniform", "full_batch": False,
                           "batch_size": 16, "seed": 0}},
}


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    torch.set_num_threads(1)  # tiny nets: a second OpenMP thread only waits on a shared machine
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def curve(run_dir: Path) -> list[dict[str, float]]:
    with open(next(Path(run_dir).rglob("metrics.csv"))) as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def assert_same_run(batched_cell: Path, alone_cell: Path, weight_key: str, rtol: float = 1e-4) -> None:
    """The whole logged curve (every column, every row) and the final W agree."""
    got, want = curve(batched_cell), curve(alone_cell)
    assert [r["step"] for r in got] == [r["step"] for r in want] and len(got) > 5
    for g, w in zip(got, want):
        assert g.keys() == w.keys()
        for key in g:
            assert g[key] == pytest.approx(w[key], rel=rtol, nan_ok=True), (key, g["step"])
    final = torch.load(next(batched_cell.rglob("final_weights.pt")))["weight"]
    ckpt = torch.load(next(alone_cell.rglob("last.ckpt")), weights_only=False)
    torch.testing.assert_close(final, ckpt["state_dict"][weight_key], rtol=rtol, atol=1e-6)


# -- the step's arithmetic -------------------------------------------------------------------
@pytest.mark.parametrize("lam", [0.0, 0.01])
@pytest.mark.parametrize("shared", [True, False])
def test_gradient_equals_autograd(lam, shared):
    """Loss, data term and gradient of G stacked members against autograd through the module's
    formula f = (h * h) @ a, mse + lam/2 ||W||^2 (float64), shared or per-member inputs."""
    from lit_memo.models.quadratic import signed_halves

    gen = torch.Generator().manual_seed(0)
    G, n, d, k = 3, 11, 5, 8
    x = torch.randn(n, d, generator=gen, dtype=torch.float64) if shared else torch.randn(G, n, d, generator=gen, dtype=torch.float64)
    y = torch.randn(n, generator=gen, dtype=torch.float64) if shared else torch.randn(G, n, generator=gen, dtype=torch.float64)
    w = torch.randn(G, k, d, generator=gen, dtype=torch.float64).requires_grad_()
    a = signed_halves(k).double()
    total, losses, mses = 0, [], []
    for g in range(G):
        xg, yg = (x, y) if shared else (x[g], y[g])
        h = xg @ w[g].T
        mse = torch.nn.functional.mse_loss(((h * h) @ a[:, None]).reshape(yg.shape), yg)
        loss = mse + 0.5 * lam * w[g].pow(2).sum()
        losses.append(loss.detach()), mses.append(mse.detach())
        total = total + loss
    (ref,) = torch.autograd.grad(total, (w,))
    loss, mse, grad = loss_and_grad(x, y, w.detach(), lam)
    torch.testing.assert_close(loss, torch.stack(losses))
    torch.testing.assert_close(mse, torch.stack(mses))
    torch.testing.assert_close(grad, ref)


@pytest.mark.parametrize("kind", ["sgd", "sgd0", "adam"])
def test_optimizer_arithmetic_equals_torch(kind):
    """BatchedSGD / BatchedAdam with per-member lrs = one torch optimizer per member on the same
    gradients, over 50 steps."""
    gen = torch.Generator().manual_seed(1)
    lrs = [0.01, 0.003, 0.1]
    w0 = torch.randn(3, 4, 5, generator=gen)
    grads = [torch.randn(3, 4, 5, generator=gen) for _ in range(50)]
    if kind == "adam":
        ours, make = BatchedAdam((0.9, 0.99), 1e-6), lambda p, lr: torch.optim.Adam([p], lr=lr, betas=(0.9, 0.99), eps=1e-6)
    else:
        m = 0.9 if kind == "sgd" else 0.0
        ours, make = BatchedSGD(m), lambda p, lr: torch.optim.SGD([p], lr=lr, momentum=m)
    w = w0.clone()
    params = [torch.nn.Parameter(w0[g].clone()) for g in range(3)]
    opts = [make(p, lr) for p, lr in zip(params, lrs)]
    for grad in grads:
        ours.step(w, grad, torch.tensor(lrs, dtype=torch.float64))
        for g, (p, opt) in enumerate(zip(params, opts)):
            p.grad = grad[g].clone()
            opt.step()
    torch.testing.assert_close(w, torch.stack([p.detach() for p in params]), rtol=1e-6, atol=1e-7)


# -- members = their train.py runs -----------------------------------------------------------
def test_full_batch_sgd_members_equal_train_py_and_a_diverging_member_is_dropped(tmp_path):
    """Two seeds x two lrs (300 GD steps, momentum 0.9, lam > 0) plus one member whose lr blows
    up: each equals its own train.py run; the blown-up one is diverged at the step train.py's
    DivergenceStop stops, and the others' curves are unchanged by it."""
    cells = {"s0_lr05": ["--seed_everything=0", f"{LR}=0.05"], "s1_lr02": ["--seed_everything=1", f"{LR}=0.02"],
             "s1_lr05": ["--seed_everything=1", f"{LR}=0.05"], "s0_lr100": ["--seed_everything=0", f"{LR}=100.0"]}
    rows = {r["cell"]: r for r in run_group(list(cells), [FULL_BATCH + v for v in cells.values()], str(tmp_path / "g"))}
    assert {r["mode"] for r in rows.values()} == {"batched"}
    assert rows["s0_lr100"]["status"] == "diverged" and not math.isfinite(rows["s0_lr100"]["final/train/loss"])
    for cell, args in cells.items():
        alone = run_cell(cell, FULL_BATCH + args, str(tmp_path / "alone" / cell))
        assert alone["status"] == rows[cell]["status"]
        if alone["status"] == "diverged":
            assert curve(tmp_path / "g" / cell) == pytest.approx(curve(tmp_path / "alone" / cell), nan_ok=True)
            assert rows[cell]["steps"] == alone["steps"] < 300
            continue
        assert rows[cell]["steps"] == alone["steps"] == 299  # Lightning logs batch indices: the 300th step is 299
        assert_same_run(tmp_path / "g" / cell, tmp_path / "alone" / cell, "net.weight")


def write_mini_batch_config(path: Path) -> Path:
    path.write_text(yaml.safe_dump(MINI_BATCH_CONFIG))
    return path


def test_adam_mini_batches_step_lr_three_layer_members_equal_train_py(tmp_path):
    """Adam + StepLR every 30 epochs on shuffled mini-batches of 16 (300 steps), three-layer net
    (shared fixed features): members with two seeds (two data orders) and two lrs each equal
    their own train.py run, curve and final W."""
    config = write_mini_batch_config(tmp_path / "mini.yaml")
    base = ["--config", str(config), "--wandb_mode=disabled"]
    cells = {"s0_a": ["--seed_everything=0", f"{LR}=0.01"], "s3_a": ["--seed_everything=3", f"{LR}=0.01"],
             "s3_b": ["--seed_everything=3", f"{LR}=0.03"]}
    rows = {r["cell"]: r for r in run_group(list(cells), [base + v for v in cells.values()], str(tmp_path / "g"))}
    for cell, args in cells.items():
        alone = run_cell(cell, base + args, str(tmp_path / "alone" / cell))
        assert alone["status"] == rows[cell]["status"] == "done"
        assert_same_run(tmp_path / "g" / cell, tmp_path / "alone" / cell, "net.quadratic.weight")


def test_step_interval_scheduler_member_equals_train_py(tmp_path):
    """StepLR stepped after every batch (lr_scheduler_interval: step, every 40 steps) on mini-batches."""
    config = write_mini_batch_config(tmp_path / "mini.yaml")
    args = ["--config", str(config), "--wandb_mode=disabled", "--trainer.max_epochs=50",
            "--model.init_args.lr_scheduler_interval=step", "--model.init_args.lr_scheduler.init_args.step_size=40",
            "--seed_everything=2"]
    (row,) = run_group(["m"], [args], str(tmp_path / "g"))
    alone = run_cell("m", args, str(tmp_path / "alone"))
    assert row["status"] == alone["status"] == "done" and row["steps"] == alone["steps"] == 149
    assert_same_run(tmp_path / "g" / "m", tmp_path / "alone", "net.quadratic.weight")


def test_group_killed_mid_run_resumes_to_the_same_results(tmp_path, monkeypatch):
    """A group stopped after its second epoch checkpoint (as a kill would) and run again resumes
    from group_state.pt (W, Adam moments, schedulers, each order's RNG state) and ends equal to an
    uninterrupted group."""
    config = write_mini_batch_config(tmp_path / "mini.yaml")
    base = ["--config", str(config), "--wandb_mode=disabled", "--trainer.max_epochs=12"]
    cells = {"s0": ["--seed_everything=0"], "s1": ["--seed_everything=1", f"{LR}=0.02"]}
    args = [base + v for v in cells.values()]
    whole = {r["cell"]: r for r in run_group(list(cells), args, str(tmp_path / "whole"))}
    real_run = BatchedQuadraticTrainer.run

    def killed(self, max_steps, max_epochs, on_epoch_end=None):
        def save_then_die(t):
            on_epoch_end(t)
            if t.epoch == 2:
                raise KeyboardInterrupt("killed")
        return real_run(self, max_steps, max_epochs, save_then_die)

    monkeypatch.setattr(BatchedQuadraticTrainer, "run", killed)
    with pytest.raises(KeyboardInterrupt):
        run_group(list(cells), args, str(tmp_path / "killed"))
    assert (tmp_path / "killed" / "group_state.pt").is_file()
    monkeypatch.setattr(BatchedQuadraticTrainer, "run", real_run)
    resumed = {r["cell"]: r for r in run_group(list(cells), args, str(tmp_path / "killed"))}
    for cell in cells:
        assert resumed[cell]["final/train/loss"] == whole[cell]["final/train/loss"]
        assert curve(tmp_path / "killed" / cell) == curve(tmp_path / "whole" / cell)


# -- refusals --------------------------------------------------------------------------------
@pytest.mark.parametrize("flags, reason", [
    ([], "PerturbedGD is not batched"),
    (FULL_BATCH[4:] + ["--model.init_args.optimizer.init_args.nesterov=true"], "no dampening, Nesterov"),
    (FULL_BATCH[4:] + ["--model.init_args.steps_per_batch=10"], "steps_per_batch: 1"),
    (FULL_BATCH[4:] + ["--trainer.limit_train_batches=0.5"], "limit_train_batches: 1.0"),
    (FULL_BATCH[4:] + ["--model.init_args.optimizer=torch.optim.AdamW"], "not AdamW"),
    (["--trainer.callbacks=[{class_path: lit_memo.callbacks.TheoryCertificateCallback}]"] + FULL_BATCH[4:],
     "not ['TheoryCertificateCallback']"),
    (FULL_BATCH[4:] + ["--model.init_args.lr_scheduler=torch.optim.lr_scheduler.ExponentialLR",
                       "--model.init_args.lr_scheduler.init_args.gamma=0.9"], "not ExponentialLR"),
])
def test_unsupported_settings_are_refused_with_a_reason(tmp_path, flags, reason):
    train = load_train()
    args = ["--config", "ge_synthetic_quadratic.yaml", "--trainer.callbacks=[]", "--wandb_mode=disabled",
            f"--output_dir={tmp_path}", *flags]
    assert reason in batch_blocker(train.build_cli(args, check_data=False))


# -- the runner -------------------------------------------------------------------------------
def test_sweep_cli_plans_quadratic_groups_and_writes_the_table(tmp_path, data_root):
    """``python -m lit_memo.sweep`` on a Ge MNIST-PCA grid (2 lrs x 2 seeds, Adam, batches of 64):
    one batched group of four, every row done; one cell equals its train.py run."""
    sweep = {"name": "ge_tiny", "config": "ge_mnist_quadratic.yaml",
             "flags": {"trainer.callbacks": [], "wandb_mode": "disabled", "run_test": False,
                       "data.init_args.subset_size": 256, "data.init_args.pca_dim": 10, "data.init_args.batch_size": 64,
                       "model.init_args.width": 20, "trainer.max_epochs": 5, "trainer.log_every_n_steps": 2},
             "grid": {"model.init_args.optimizer.init_args.lr": [0.003, 0.01], "seed_everything": [0, 1]}}
    path = tmp_path / "ge_tiny.yaml"
    path.write_text(yaml.safe_dump(sweep))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "lit_memo.sweep", str(path), "--jobs", "1", "--output_dir",
                          str(tmp_path / "out"), "--no_progress"], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    with open(tmp_path / "out" / "ge_tiny" / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and {r["mode"] for r in rows} == {"batched"} and {r["group_size"] for r in rows} == {"4"}
    assert {r["status"] for r in rows} == {"done"} and all(math.isfinite(float(r["final/train/loss"])) for r in rows)
    from lit_memo.sweep import load_sweep

    spec = load_sweep(path, tmp_path / "out")
    lr_col, seed_col = spec.columns["model.init_args.optimizer.init_args.lr"], spec.columns["seed_everything"]
    row = next(r for r in rows if float(r[lr_col]) == 0.01 and int(r[seed_col]) == 1)
    cell = next(c for c in spec.cells() if c["seed_everything"] == 1 and c["model.init_args.optimizer.init_args.lr"] == 0.01)
    alone = run_cell("alone", spec.train_args(cell), str(tmp_path / "alone"))
    assert float(row["final/train/loss"]) == pytest.approx(alone["final/train/loss"], rel=1e-4)
    assert float(row["best/train/loss"]) == pytest.approx(alone["best/train/loss"], rel=1e-4)


def test_plan_groups_quadratic_cells_by_everything_but_lr_and_seed_and_by_size(tmp_path):
    """Cells of one width (any lr_hidden / optimizer lr / seed) share a group; the width splits
    them; at ge_mnist_quadratic's sizes (batches of 128 x width 1568, 1568 x 784 weights) each member
    trains alone (members_per_group)."""
    from lit_memo.sweep import load_sweep
    from lit_memo.sweep.runner import members_per_group, plan

    flags = {"trainer.callbacks": [], "wandb_mode": "disabled", "trainer.max_steps": 10,
             "model.init_args.optimizer": {"class_path": "torch.optim.SGD", "init_args": {"lr": 0.05, "momentum": 0.9}}}
    grid = {"model.init_args.width": [4, 40], "model.init_args.lr_hidden": [0.01, 0.1],
            "model.init_args.optimizer.init_args.lr": [0.05, 0.02], "seed_everything": [0, 1]}
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump({"config": "ge_synthetic_quadratic.yaml", "flags": flags, "grid": grid}))
    spec = load_sweep(path, tmp_path)
    groups, why = plan(spec, spec.cells(), "auto")
    assert why is None and sorted(len(g) for g in groups) == [8, 8]
    assert all(len({c["model.init_args.width"] for c in g}) == 1 for g in groups)
    path = tmp_path / "mnist.yaml"
    path.write_text(yaml.safe_dump({"config": "ge_mnist_quadratic.yaml", "grid": {"seed_everything": [0, 1, 2, 3, 4]},
                                    "flags": {"trainer.callbacks": [], "wandb_mode": "disabled", "run_test": False}}))
    spec = load_sweep(path, tmp_path)
    groups, why = plan(spec, spec.cells(), "auto")
    per = members_per_group(4 * 1568 * (128 + 784))
    assert per == 1  # 5.7 MB: over MEMBER_BYTES
    assert why is None and [len(g) for g in groups] == [min(per, 5 - i) for i in range(0, 5, per)]
