"""What the diagnostic callbacks share: when they run, where, and how they log."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Optional

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import WandbLogger

from lit_memo.diagnostics import eval_mode


class DiagnosticCallback(pl.Callback):
    """Measure something at train start, every ``every_n_steps`` optimizer steps, and at train end.

    The measurement runs on global rank 0 only, on the unwrapped LightningModule, in eval mode,
    with grad enabled and the RNG forked, so that training is bit-for-bit the same with or
    without the callback. Its metrics (plus ``<prefix>/seconds``, its cost) go straight to the
    trainer's loggers at ``step=trainer.global_step``: one row per logging step, no collective
    call (``self.log`` would need every rank to take part or be dropped at steps that are not
    multiples of ``log_every_n_steps``, and cannot log from ``on_train_end``).

    Args:
        every_n_steps: optimizer steps between measurements (None: ``trainer.log_every_n_steps``).
    """

    prefix = "diagnostics"

    def __init__(self, every_n_steps: Optional[int] = None) -> None:
        if every_n_steps is not None and every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1 (or null for the trainer's log_every_n_steps), got {every_n_steps}")
        self.every_n_steps = every_n_steps
        self._last_step: Optional[int] = None

    # -- what a diagnostic provides ----------------------------------------------------------
    def measure(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        """Metric name -> value, on rank 0; non-scalar values (W&B media) go to W&B only."""
        raise NotImplementedError

    def on_every_rank(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Runs on every rank just before ``measure``: keeps per-rank state in step."""

    # -- schedule ----------------------------------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._last_step = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.run(trainer, pl_module)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int) -> None:
        # global_step counts real optimizer steps, so accumulation micro-batches and skipped
        # AMP steps do not trigger a second measurement of the same weights
        if trainer.global_step % (self.every_n_steps or trainer.log_every_n_steps) == 0:
            self.run(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.run(trainer, pl_module)

    def run(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        step = trainer.global_step
        if step == self._last_step:
            return
        self._last_step = step
        self.on_every_rank(trainer, pl_module)
        if not trainer.is_global_zero:
            return
        start = time.perf_counter()
        with isolated(pl_module):
            metrics = self.measure(trainer, pl_module)
        metrics[f"{self.prefix}/seconds"] = time.perf_counter() - start
        log_to_loggers(trainer, metrics, step)


@contextmanager
def isolated(module: torch.nn.Module) -> Iterator[None]:
    """Eval mode, grad on, RNG forked: whatever runs inside leaves training as it was."""
    device = next(module.parameters(), torch.empty(0)).device
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.inference_mode(False), torch.enable_grad(), eval_mode(module):
        yield


def log_to_loggers(trainer: pl.Trainer, metrics: Mapping[str, Any], step: int) -> None:
    """Scalars to every logger, media (``wandb.Histogram``...) to the W&B loggers only."""
    scalars = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float, torch.Tensor))}
    media = {k: v for k, v in metrics.items() if k not in scalars}
    for logger in trainer.loggers:
        logger.log_metrics({**scalars, **media} if isinstance(logger, WandbLogger) else scalars, step=step)


def has_wandb(trainer: pl.Trainer) -> bool:
    return any(isinstance(logger, WandbLogger) for logger in trainer.loggers)
