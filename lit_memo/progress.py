"""A progress bar that counts gradient-descent steps, not batches, and shows the certificate.

With ``steps_per_batch: K`` one batch is K GD steps, so Lightning's bar (batches per epoch)
would count in units of K and restart every epoch; this one runs from 0 to ``max_steps``
across epochs and shows ``jacobian/sigma_min`` next to the loss whenever it has been measured.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import TQDMProgressBar

from lit_memo.run_summary import MetricsTracker

SHOWN = ("jacobian/sigma_min",)  # logged by callbacks straight to the loggers, read from the tracker


class GDStepProgressBar(TQDMProgressBar):
    """TQDM bar over ``trainer.global_step`` (GD steps), total ``max_steps``."""

    def on_train_epoch_start(self, trainer: "pl.Trainer", *_: Any) -> None:
        bar = self.train_progress_bar
        if getattr(self, "_gd_started", False):
            bar.set_description(f"Epoch {trainer.current_epoch}")
            return
        self._gd_started = True
        bar.reset(total=trainer.max_steps if trainer.max_steps > 0 else None)
        bar.initial = 0
        bar.n = trainer.global_step  # a resumed run starts where the checkpoint stopped
        bar.unit = "step"
        bar.set_description(f"Epoch {trainer.current_epoch}")

    def on_train_start(self, *args: Any) -> None:
        super().on_train_start(*args)
        self._gd_started = False

    def on_train_batch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", outputs, batch,
                           batch_idx: int) -> None:
        bar = self.train_progress_bar
        if bar is not None and self._should_update(batch_idx + 1, None):
            bar.n = trainer.global_step
            bar.set_postfix(self.get_metrics(trainer, pl_module))  # refreshes the bar

    def on_train_epoch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if not self.train_progress_bar.disable:
            self.train_progress_bar.n = trainer.global_step
            self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module))

    def get_metrics(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> dict:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        for logger in trainer.loggers:
            if isinstance(logger, MetricsTracker):
                items.update({key.split("/")[-1]: f"{logger.last[key]:.3g}" for key in SHOWN if key in logger.last})
        return items
