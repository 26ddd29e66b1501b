"""``train/loss_best``: the running minimum of ``train/loss`` on both training paths, NaN-safe, kept on resume."""

from __future__ import annotations

import csv
import math

import pytest
import pytorch_lightning as pl
import torch
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
    # DivergenceStop (attached by the module) ends the fit at the first non-finite loss: the last row
    assert len(rows) >= 5 and not math.isfinite(rows[-1][0]) and all(math.isfinite(v) for v, _ in rows[:-1])
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


def fit_rows(make_trainer, path, every: int, stop_at: int = 0) -> dict[int, tuple[float, float]]:
    class Stop(pl.Callback):  # stops the fit at a step Lightning would not log otherwise
        def on_train_batch_end(self, trainer, *args):
            trainer.should_stop = trainer.global_step == stop_at

    torch.manual_seed(0)
    module = make_module(1, lr=1.5)
    trainer = make_trainer(max_steps=40, logger=CSVLogger(path, name="", version=""), log_every_n_steps=every,
                           callbacks=[Stop()])
    trainer.fit(module, datamodule=SyntheticDataModule(n=40, d=5, batches_per_epoch=10))
    with open(path / "metrics.csv") as f:
        return {int(r["step"]): (float(r["train/loss"]), float(r["train/loss_best"]))
                for r in csv.DictReader(f) if r["train/loss"]}


def test_rows_on_logging_steps_only_with_a_best_over_every_step(make_trainer, tmp_path):
    """log_every_n_steps 4 (the loss is reduced only where a row is written): the rows of a run that
    logs every step, at Lightning's logging steps; the best also covers the steps in between; a fit a
    callback stops at another step still gets that step's row."""
    each = fit_rows(make_trainer, tmp_path / "each", every=1)
    every4 = fit_rows(make_trainer, tmp_path / "every4", every=4)
    assert sorted(each) == list(range(40)) and sorted(every4) == list(range(3, 40, 4))
    assert all(every4[s] == each[s] for s in every4)
    logged_min = [min(every4[t][0] for t in every4 if t <= s) for s in sorted(every4)]
    assert any(every4[s][1] < m for s, m in zip(sorted(every4), logged_min)), "a best between rows, or this shows nothing"
    stopped = fit_rows(make_trainer, tmp_path / "stopped", every=4, stop_at=10)
    assert stopped == {3: each[3], 7: each[7], 9: each[9]}  # global_step 10 after the 10th batch (index 9)
