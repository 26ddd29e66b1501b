"""Ends a fit whose training loss has become NaN or infinite, and says so (no silent NaN run)."""

from __future__ import annotations

from typing import Optional

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_warn

from lit_memo.logging_steps import logs_train_step

from .namespaces import Callback


class DivergenceStop(Callback):
    """Stops training at the first non-finite training loss and logs ``train/diverged`` = 1.

    A NaN loss makes every later step NaN: running on wastes the budget, and the diagnostics at
    the end would fail on NaN weights. ``diverged_at`` holds the GD step (``train.py`` reports
    the run as *diverged*; the sweep table too). The check reads the loss the training step
    returns: in one CPU process every batch (free); on an accelerator or under several processes
    only on the batches Lightning logs (reading a loss waits for the device, and the ranks agree
    through an all-reduce), every batch under ``fast_dev_run``, or once every ``check_every`` GD
    steps when that is given. Lightning ignores the stop until ``min_steps`` / ``min_epochs`` are reached.

    lit_memo's modules attach it themselves (``configure_callbacks``); in another Lightning
    project pass it to the Trainer.
    """

    def __init__(self, check_every: Optional[int] = None) -> None:
        self.check_every = check_every
        self.diverged_at: Optional[int] = None
        self._last_check = -1

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.diverged_at, self._last_check = None, -1

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor) or self.diverged_at is not None:
            return
        free = loss.device.type == "cpu" and trainer.world_size == 1  # no device sync, no collective
        if self.check_every:
            if trainer.global_step // self.check_every == self._last_check // self.check_every:
                return
        elif not free and not logs_train_step(trainer):
            return  # logging batches only (the module reduces its loss on these too)
        self._last_check = trainer.global_step
        bad = not bool(torch.isfinite(loss.detach()).all())
        if trainer.world_size > 1:
            bad = trainer.strategy.reduce_boolean_decision(bad, all=False)
        if bad:
            self.diverged_at = trainer.global_step
            pl_module.log("train/diverged", 1.0, on_step=True, on_epoch=False)
            trainer.should_stop = True
            rank_zero_warn(f"the training loss is not finite at GD step {trainer.global_step}: training stops here "
                           "(diverged). Lower the learning rates (model.init_args.lr_hidden / lr_outer or the "
                           "optimizer's lr), or check the inputs for NaN/inf.")


def diverged_at(trainer: pl.Trainer) -> Optional[int]:
    """The GD step at which a :class:`DivergenceStop` of this trainer stopped the fit (None: it did not)."""
    for cb in trainer.callbacks:
        if isinstance(cb, DivergenceStop) and cb.diverged_at is not None:
            return cb.diverged_at
    return None
