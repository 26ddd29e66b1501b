"""What the diagnostic callbacks share: when they run, where, and how they log."""

from __future__ import annotations

import random
import time
from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Optional

import numpy as np
import pytorch_lightning as pl
import torch

from .namespaces import WANDB_LOGGERS, Callback
from lit_memo.diagnostics import eval_mode


class DiagnosticCallback(Callback):
    """Measure something at train start, every ``every_n_steps`` optimizer steps, and at train end.

    The measurement runs on global rank 0 only, on the unwrapped LightningModule, in eval mode,
    with grad enabled and the RNGs forked, so that training is bit-for-bit the same with or
    without the callback. Its metrics (plus ``<prefix>/seconds``, its cost) go straight to the
    trainer's loggers from rank 0 at ``step=trainer.global_step``: one row per measurement and
    no collective call, so the other ranks never wait on it. (``self.log`` is not used: with
    ``sync_dist`` every rank would have to compute; with ``rank_zero_only`` the value waits for
    Lightning's next ``log_every_n_steps`` flush, under another step; and it is refused in
    ``on_train_start``/``on_train_end``.)

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

    # -- schedule ----------------------------------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._last_step = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.run(trainer, pl_module)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int) -> None:
        # global_step counts real optimizer steps: accumulation micro-batches and skipped AMP steps
        # do not trigger a second measurement, and a batch that takes several steps (the modules'
        # steps_per_batch) triggers one as soon as a multiple of the interval has been passed
        every = self.every_n_steps or trainer.log_every_n_steps
        if self._last_step is None or trainer.global_step // every > self._last_step // every:
            self.run(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.run(trainer, pl_module)

    def run(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        step = trainer.global_step
        if step == self._last_step:
            return
        self._last_step = step
        if not trainer.is_global_zero:
            return
        start = time.perf_counter()
        with isolated(pl_module):
            metrics = self.measure(trainer, pl_module)
        metrics[f"{self.prefix}/seconds"] = time.perf_counter() - start
        log_to_loggers(trainer, metrics, step)


@contextmanager
def isolated(module: torch.nn.Module) -> Iterator[None]:
    """Eval mode, grad on, RNGs forked: whatever runs inside leaves training as it was.

    Python's and NumPy's generators are restored too: dataset augmentations (taking the probe
    set) may draw from them.
    """
    device = next(module.parameters(), torch.empty(0)).device
    devices = [device.index or 0] if device.type == "cuda" else []
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=devices), torch.inference_mode(False), torch.enable_grad(), eval_mode(module):
            yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


def log_to_loggers(trainer: pl.Trainer, metrics: Mapping[str, Any], step: int) -> None:
    """Scalars to every logger, media (``wandb.Histogram``...) to the W&B loggers only."""
    scalars = {k: v if isinstance(v, int) else float(v) for k, v in metrics.items()
               if isinstance(v, (int, float, torch.Tensor))}
    media = {k: v for k, v in metrics.items() if k not in scalars}
    for logger in trainer.loggers:
        logger.log_metrics({**scalars, **media} if isinstance(logger, WANDB_LOGGERS) else scalars, step=step)


def has_wandb(trainer: pl.Trainer) -> bool:
    return any(isinstance(logger, WANDB_LOGGERS) for logger in trainer.loggers)
