"""What every lit_memo DataModule tells the model, and the full-batch loader."""

from __future__ import annotations

import hashlib
import itertools
import sys
from typing import Any, Iterator

import pytorch_lightning as pl
import torch

_STATE_KEY = "training_set"  # the datamodule's entry in a checkpoint: what the run trained on


def tensor_digest(*tensors: torch.Tensor) -> str:
    """A short SHA-256 of tensors' dtypes, shapes and bytes (CPU, contiguous): equal iff bitwise equal."""
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()[:16]


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

    # Lightning attaches its trainer here first: a lightning.pytorch Trainer (the unified package)
    # would otherwise fail later with an obscure "Expected a parent"; say what to do instead
    @property
    def trainer(self) -> Any:
        return self.__dict__.get("_attached_trainer")

    @trainer.setter
    def trainer(self, trainer: Any) -> None:
        unified = sys.modules.get("lightning.pytorch")
        if unified is not None and isinstance(trainer, unified.Trainer):
            raise TypeError(
                f"{type(self).__name__} is a pytorch_lightning.LightningDataModule, which a lightning.pytorch Trainer "
                "does not run (the two packages' classes differ): use pytorch_lightning.Trainer for lit_memo's "
                "DataModules and modules (README: 'On the unified lightning package')")
        self.__dict__["_attached_trainer"] = trainer

    def world(self) -> tuple[int, int]:
        """(rank, world size) of the trainer this DataModule is attached to."""
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    # -- the training set is part of the run: a resume on other data is refused ----------------
    def training_set_fingerprint(self) -> dict[str, str]:
        """Digest of each part of the training set (``inputs``, ``targets``, ...), once set up.

        A subclass returns one entry per part it can tell apart, computed from the tensors the
        model trains on (or, where those are too large to hash, from what determines them);
        ``{}`` before ``setup``. The checkpoint stores it, and a resume compares it.
        """
        return {}

    def state_dict(self) -> dict[str, Any]:
        fingerprint = self.training_set_fingerprint()
        if not fingerprint:
            return {}
        options = {k: repr(v) for k, v in self.hparams.items()}
        return {_STATE_KEY: {"datamodule": type(self).__name__, "fingerprint": fingerprint, "options": options}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._expected_training_set = state_dict.get(_STATE_KEY)
        self.check_training_set()

    def check_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Check a loaded checkpoint's training-set record (under any DataModule's key) against this
        set-up DataModule, e.g. before a run folder exists; raises ``ValueError`` like a resume would."""
        for value in checkpoint.values():
            if isinstance(value, dict) and _STATE_KEY in value:
                self.check_training_set(value[_STATE_KEY])

    def check_training_set(self, expected: Any = None) -> None:
        """Raise ``ValueError`` if the training set differs from ``expected`` (a checkpoint's record).

        Names the parts that differ and the data options whose values changed. Checked when the
        checkpoint is loaded, or at ``setup`` when that comes later.
        """
        expected = expected if expected is not None else getattr(self, "_expected_training_set", None)
        if not expected:  # no checkpoint: nothing to compute
            return
        now = self.training_set_fingerprint()
        if not now:
            return
        name = type(self).__name__
        if expected["datamodule"] != name:
            raise ValueError(f"the checkpoint was trained on {expected['datamodule']}, not {name}: resume with the "
                             "checkpoint's data config, or start a new run without --ckpt_path")
        parts = [k for k in sorted(set(now) | set(expected["fingerprint"])) if now.get(k) != expected["fingerprint"].get(k)]
        if not parts:
            return
        ours = {k: repr(v) for k, v in self.hparams.items()}
        changed = [f"{k}: {expected['options'].get(k, '(unset)')} -> {v}" for k, v in ours.items()
                   if expected["options"].get(k) != v]
        raise ValueError(
            f"{name}: the training {' and '.join(parts)} differ from those the checkpoint was trained on"
            + (f" (data options changed: {'; '.join(changed)})" if changed else " (same options: the data on disk changed)")
            + "; resume with the checkpoint's data options, or start a new run without --ckpt_path")


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
