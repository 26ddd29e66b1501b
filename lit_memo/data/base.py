"""What every lit_memo DataModule tells the model, and the full-batch loader."""

from __future__ import annotations

import itertools
from typing import Any, Iterator

import pytorch_lightning as pl


class MemoDataModule(pl.LightningDataModule):
    """A LightningDataModule that states the shape of its inputs and targets.

    ``train.py`` links ``input_shape``, ``num_outputs`` and ``task`` into the model, so a config
    never repeats them. Subclasses set the three attributes in ``__init__``.
    """

    input_shape: tuple[int, ...]
    num_outputs: int  # classes for classification, target dimension for regression
    task: str  # "classification" (class-index targets) or "regression" (float targets)

    @property
    def has_test(self) -> bool:
        """Whether ``train.py`` should evaluate a test split after fit."""
        return True

    def world(self) -> tuple[int, int]:
        """(rank, world size) of the trainer this DataModule is attached to."""
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)


class RepeatedBatch:
    """The same batch ``length`` times: an epoch of full-batch gradient steps with no DataLoader.

    Full-batch GD (Zhang et al. run 200,000 steps) through a one-batch DataLoader pays an epoch's
    bookkeeping (iterator set-up, epoch hooks, progress bar reset) at every step; repeating the
    batch makes an epoch of ``length`` steps instead and skips collation entirely.
    """

    def __init__(self, batch: Any, length: int) -> None:
        if length < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        self.batch, self.length = batch, length

    def __iter__(self) -> Iterator[Any]:
        return itertools.repeat(self.batch, self.length)

    def __len__(self) -> int:
        return self.length
