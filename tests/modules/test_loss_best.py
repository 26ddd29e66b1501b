"""``train/loss_best``: the running minimum of ``train/loss`` on both training paths, NaN-safe, kept on resume."""

from __future__ import annotations

import csv
import math

import pytest
from pytorch_lightning.loggers import CSVLogger

from lit_memo.data import SyntheticDataModule
from lit_memo.modules import ShallowNetModule


def make_module(steps_per_batch: int, lr: float) -> ShallowNetModule:
    return ShallowNetModule(input_shape=(5,), width=8, regime="regular", lr_hidden=lr, lr_outer=lr,
                            steps_per_batch=steps_per_batch)


@pytest.mark.parametrize("steps_per_batch", [1, 3])  # Lightning's automatic path and the multi-step path
def test_loss_best_is_the_running_minimum(steps_per_batch, make_trainer, tmp_path):
    # lr 3 with momentum 0.9 blows the loss up to inf and NaN: the best stays the best finite loss
    module = make_module(steps_per_batch, lr=3.0)
    trainer = make_trainer(max_steps=60, logger=CSVLogger(tmp_path, name="", version=""), log_every_n_steps=1)
    trainer.fit(module, datamodule=SyntheticDataModule(n=40, d=5, batches_per_epoch=10))
    with open(tmp_path / "metrics.csv") as f:
        rows = [(float(r["train/loss"]), float(r["train/loss_best"])) for r in csv.DictReader(f) if r["train/loss"]]
    assert len(rows) == 60 // steps_per_batch
    losses = [loss for loss, _ in rows]
    assert any(b > a for a, b in zip(losses, losses[1:])), "the run must not be monotone, or the test shows nothing"
    expected = [min((v for v in losses[:i + 1] if not math.isnan(v)), default=math.nan) for i in range(len(losses))]
    assert [best for _, best in rows] == pytest.approx(expected, nan_ok=True)


def test_loss_best_survives_a_checkpoint(make_trainer):
    module = make_module(1, lr=0.1)
    make_trainer(max_steps=5).fit(module, datamodule=SyntheticDataModule(n=40, d=5, batches_per_epoch=10))
    checkpoint: dict = {}
    module.on_save_checkpoint(checkpoint)
    assert checkpoint["loss_best"] == module._loss_best.item()
    fresh = make_module(1, lr=0.1)
    fresh.on_load_checkpoint(checkpoint)
    assert fresh._loss_best.item() == checkpoint["loss_best"]
