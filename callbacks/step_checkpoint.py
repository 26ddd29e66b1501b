"""Step-based checkpoints when one batch takes several optimizer steps (the modules' ``steps_per_batch``)."""

from __future__ import annotations

import warnings
from typing import Any, Optional

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint


class StepCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` whose ``every_n_train_steps=N`` saves at the first batch end at or past each
    multiple of N, instead of only at batch ends that fall exactly on a multiple.

    With ``steps_per_batch: K`` (K gradient-descent steps per batch, manual optimization) batches
    end at steps K, 2K, ...; Lightning's ``ModelCheckpoint`` checks ``global_step % N == 0`` there and
    skips every multiple of N that is not also one of K. This one saves at step 12 for N = 10 and
    K = 4 (then at 20, 32, 40, ...: one save per multiple passed; the file name's ``step`` is the real
    step). Every other argument and behaviour is ``ModelCheckpoint``'s, which does the saving.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.every_n_train_steps: int = self._every_n_train_steps
        self._step_at_last_batch_end: Optional[int] = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._step_at_last_batch_end = trainer.global_step  # after a resume: the restored step

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        every = self._every_n_train_steps
        previous, self._step_at_last_batch_end = self._step_at_last_batch_end, trainer.global_step
        if every < 1:
            return super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        passed = trainer.global_step // every > previous // every
        # Lightning's check is global_step % N == 0: present it with N = 1 (save) or 0 (do not) for this
        # batch, so that its own monitor, top-k, last and time-interval logic does the rest
        self._every_n_train_steps = 1 if passed else 0
        try:
            with warnings.catch_warnings():
                # Lightning's hint to save the weights from before the step: a GD run's checkpoint is
                # meant to hold the state after it, as at every batch end
                warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization")
                super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        finally:
            self._every_n_train_steps = every

    @property
    def state_key(self) -> str:
        # ModelCheckpoint's key, from the configured N (on_train_batch_end presents Lightning another one)
        return self._generate_state_key(monitor=self.monitor, mode=self.mode, every_n_train_steps=self.every_n_train_steps,
                                        every_n_epochs=self._every_n_epochs, train_time_interval=self._train_time_interval)


def check_step_checkpoints(trainer: pl.Trainer, steps_per_batch: int) -> None:
    """Refuse a plain ``ModelCheckpoint(every_n_train_steps=N)`` that would skip multiples of N.

    Called when training starts (after a resume restored the step). Batches end at
    ``start + j * steps_per_batch``; Lightning saves only where that is a multiple of N.
    """
    if steps_per_batch <= 1:
        return
    for cb in trainer.checkpoint_callbacks:
        every = getattr(cb, "_every_n_train_steps", 0)
        if isinstance(cb, StepCheckpoint) or every < 1:
            continue
        if every % steps_per_batch or trainer.global_step % steps_per_batch:
            start = trainer.global_step
            raise ValueError(
                f"{type(cb).__name__}(every_n_train_steps={every}) saves only at batch ends that are multiples of "
                f"{every}, but with model steps_per_batch={steps_per_batch} batches end at steps "
                f"{start + steps_per_batch}, {start + 2 * steps_per_batch}, ...: some multiples would be skipped "
                f"without a word. Use lit_memo.callbacks.StepCheckpoint (the same arguments; it saves at the first "
                f"batch end at or past each multiple), or make every_n_train_steps a multiple of {steps_per_batch}"
                + (" and resume from a checkpoint taken at a batch end" if start % steps_per_batch else ""))
