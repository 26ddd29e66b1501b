"""A NaN/inf training loss ends the fit (DivergenceStop), and train.py reports the run as diverged."""

from __future__ import annotations

import json
import math
import warnings
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch

import train
from lit_memo.callbacks import DivergenceStop
from lit_memo.callbacks.divergence import diverged_at
from lit_memo.data import SyntheticDataModule
from lit_memo.logging_steps import logs_train_step
from lit_memo.modules import ShallowNetModule

QUIET = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)


@pytest.mark.parametrize("steps_per_batch", [1, 10])
def test_a_diverging_module_stops_at_the_first_nan_loss(steps_per_batch):
    torch.manual_seed(0)
    model = ShallowNetModule(input_shape=(5,), width=20, regime="regular", lr_hidden=1e4, lr_outer=1e4,
                             steps_per_batch=steps_per_batch)
    data = SyntheticDataModule(n=50, d=5, seed=0)
    trainer = pl.Trainer(max_steps=500, accelerator="cpu", **QUIET)
    trainer.fit(model, datamodule=data)
    step = diverged_at(trainer)
    assert step is not None and step < 100, step  # lr 1e4 overflows within a few steps; 500 were allowed
    assert trainer.global_step == step
    assert trainer.callback_metrics["train/diverged"] == 1.0
    assert not math.isfinite(float(trainer.callback_metrics["train/loss"]))


def test_a_stable_run_is_not_stopped():
    torch.manual_seed(0)
    model = ShallowNetModule(input_shape=(5,), width=20, regime="regular", lr_hidden=0.05, lr_outer=0.05)
    trainer = pl.Trainer(max_steps=30, accelerator="cpu", **QUIET)
    trainer.fit(model, datamodule=SyntheticDataModule(n=50, d=5, seed=0))
    assert diverged_at(trainer) is None and trainer.global_step == 30


class PlainRegression(pl.LightningModule):
    """A third-party module: DivergenceStop passed to the Trainer by hand."""

    def __init__(self, lr):
        super().__init__()
        self.net, self.lr = torch.nn.Linear(3, 1), lr
        self.x, self.y = torch.randn(32, 3), torch.randn(32, 1)

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(self.x, self.y), batch_size=32)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def test_reusable_in_another_lightning_project():
    torch.manual_seed(0)
    stop = DivergenceStop()
    trainer = pl.Trainer(max_steps=300, accelerator="cpu", callbacks=[stop], **QUIET)
    trainer.fit(PlainRegression(lr=50.0))
    assert stop.diverged_at is not None and trainer.global_step == stop.diverged_at < 300


@pytest.mark.parametrize("fast_dev_run,logged,checked", [(0, False, False), (0, True, True), (2, False, True)])
def test_under_ddp_it_checks_the_batches_lightning_logs(fast_dev_run, logged, checked):
    """Two ranks (a stub trainer: the decision only): no check, and no collective, off the logging
    batches; under fast_dev_run Lightning logs every batch, so every batch is checked (was: none)."""
    trainer = SimpleNamespace(world_size=2, global_step=3, fast_dev_run=fast_dev_run, should_stop=False,
                              _logger_connector=SimpleNamespace(should_update_logs=logged),
                              strategy=SimpleNamespace(reduce_boolean_decision=lambda bad, all: bad))
    assert logs_train_step(trainer) is checked  # the same test the module reduces its loss on
    stop = DivergenceStop()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the "not finite" warning
        stop.on_train_batch_end(trainer, SimpleNamespace(log=lambda *a, **k: None), torch.tensor(math.nan), None, 0)
    assert (stop.diverged_at == 3) is checked and trainer.should_stop is checked


def test_train_py_reports_a_diverged_run(tmp_path, capsys):
    """Before: the NaN run went on to max_steps and the final Jacobian (eigvalsh on NaN) failed the run."""
    out = tmp_path / "runs"
    train.main(["--config", "synthetic_narrow.yaml", "--trainer.max_steps=2000", f"--output_dir={out}",
                "--model.init_args.lr_hidden=1e4", "--model.init_args.lr_outer=1e4", "--run_test=false",
                "--trainer.enable_progress_bar=false", "--wandb_mode=disabled"])
    (summary_file,) = out.rglob("summary.json")
    summary = json.loads(summary_file.read_text())
    assert summary["status"] == "diverged" and summary["steps"] < 2000, summary
    assert not (summary_file.parent / "FAILED").exists()
    assert "diverged" in capsys.readouterr().out


def test_check_every_n_steps_stops_on_the_first_check_past_the_nan():
    torch.manual_seed(0)
    stop = DivergenceStop(check_every=25)
    model = ShallowNetModule(input_shape=(5,), width=20, regime="regular", lr_hidden=1e4, lr_outer=1e4)
    trainer = pl.Trainer(max_steps=500, accelerator="cpu", callbacks=[stop], **QUIET)
    trainer.fit(model, datamodule=SyntheticDataModule(n=50, d=5, seed=0))
    assert stop.diverged_at == 25 == trainer.global_step  # the NaN came within the first 25 steps


def test_train_py_reports_a_diverged_run_with_wandb_offline(tmp_path, monkeypatch):
    """W&B on (offline): the Jacobian callback's spectrum histogram of NaN weights used to fail the run."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    out = tmp_path / "runs"
    train.main(["--config", "synthetic_narrow.yaml", "--trainer.max_steps=500", f"--output_dir={out}",
                "--model.init_args.lr_hidden=1e4", "--model.init_args.lr_outer=1e4", "--run_test=false",
                "--trainer.enable_progress_bar=false", "--wandb_mode=offline"])
    (summary_file,) = out.rglob("summary.json")
    assert json.loads(summary_file.read_text())["status"] == "diverged"
