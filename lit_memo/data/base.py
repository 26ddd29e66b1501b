"""What every lit_memo DataModule tells the model, and the full-batch loader."""

from __future__ import annotations

import hashlib
import itertools
import sys
import warnings
from typing import Any, Iterator, Sequence

import pytorch_lightning as pl
import torch

_STATE_KEY = "training_set"  # the datamodule's entry in a checkpoint: what the run trained on
# 2: parts computed in floating point are compared with FLOAT_RTOL (format 1 hashed them bitwise,
# so a resume on a machine whose BLAS or SIMD rounds differently was refused)
FINGERPRINT_FORMAT = 2
# our choice: ~1000x what rounding does (synthetic data normalised in float64 instead of float32, or
# every value moved one ulp, moves a float_sketch by about 1e-7 of its scale), while a different seed,
# n, d or label kind moves it by about 1, and one input changed by 0.01 among 1000 x 5 by 1.6e-4
FLOAT_RTOL = 1e-4


def tensor_digest(*tensors: torch.Tensor) -> str:
    """A short SHA-256 of tensors' dtypes, shapes and bytes (CPU, contiguous): equal iff bitwise equal."""
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.numpy() if t.dtype != torch.bfloat16 else t.float().numpy())  # its buffer: no copy
    return h.hexdigest()[:16]


def float_sketch(t: torch.Tensor, k: int = 4) -> list[float]:
    """``k x k`` float64 sums ``R1^T X R2`` of ``t`` as a matrix ``X`` (one row per sample) with
    fixed random signs ``R1``, ``R2``: a record of a float tensor that rounding moves by about
    its relative size (so :func:`floats_close` accepts it) and any real change of the values,
    the shape or the row count moves by O(1) of its scale."""
    x = t.detach().cpu().reshape(len(t), -1).double()
    gen = torch.Generator().manual_seed(0)
    signs = [torch.randint(0, 2, (m, k), generator=gen).double().mul_(2).sub_(1) for m in x.shape]
    return (signs[0].T @ x @ signs[1]).flatten().tolist()


def floats_close(a: Sequence[float], b: Sequence[float], rtol: float = FLOAT_RTOL) -> bool:
    """Same length and ``max|a - b| <= rtol * max(|a|, |b|)``: equal up to rounding, relative to the
    record's scale (an element that is ~0 by cancellation is not held to its own tiny size)."""
    if len(a) != len(b):
        return False
    if not a:
        return True
    x, y = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    if not (x.isfinite().all() and y.isfinite().all()):  # NaN/inf: only where the other has the same
        return bool(((x == y) | (x.isnan() & y.isnan())).all())
    return bool((x - y).abs().max() <= rtol * torch.maximum(x.abs().max(), y.abs().max()))


def _same_part(now: Any, saved: Any) -> bool:
    """Digests (strings) must be equal; float records (lists) close."""
    if isinstance(now, list) and isinstance(saved, list):
        return floats_close(now, saved)
    return now == saved


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
    # parts whose record is the same as in format 1: still compared in a checkpoint written then
    format1_parts: tuple[str, ...] = ()

    def training_set_fingerprint(self) -> dict[str, Any]:
        """A record of each part of the training set (``inputs``, ``targets``, ...), once set up.

        A subclass returns one entry per part it can tell apart: a digest string where the part
        is exact (indices, class labels, pixels as read from the files, the options that make
        it), a short list of floats (:func:`float_sketch`, fitted statistics) where it is
        computed in floating point, whose last bits depend on the machine; ``{}`` before
        ``setup``. The checkpoint stores it, and a resume compares it (the lists up to rounding).
        """
        return {}

    def state_dict(self) -> dict[str, Any]:
        fingerprint = self.training_set_fingerprint()
        if not fingerprint:
            return {}
        options = {k: repr(v) for k, v in self.hparams.items()}
        return {_STATE_KEY: {"datamodule": type(self).__name__, "format": FINGERPRINT_FORMAT,
                             "fingerprint": fingerprint, "options": options}}

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
        saved = expected["fingerprint"]
        keys = sorted(set(now) | set(saved))
        if expected.get("format", 1) < FINGERPRINT_FORMAT:  # written by an older lit_memo
            keys = [k for k in self.format1_parts if k in saved]
            unchecked = sorted(set(saved) - set(keys))
            if unchecked:
                warnings.warn(f"{name}: the checkpoint's training-set record is of an older format (it hashed floats "
                              f"bitwise); its {', '.join(unchecked)} cannot be compared and are not checked"
                              + (f" (checked: {', '.join(keys)})" if keys else ""), stacklevel=2)
        parts = [k for k in keys if not _same_part(now.get(k), saved.get(k))]
        if not parts:
            return
        ours = {k: repr(v) for k, v in self.hparams.items()}
        changed = [f"{k}: {expected['options'].get(k, '(unset)')} -> {v}" for k, v in ours.items()
                   if expected["options"].get(k) != v]
        raise ValueError(
            f"{name}: the training {', '.join(parts[:-1]) + ' and ' if len(parts) > 1 else ''}{parts[-1]} differ from "
            "those the checkpoint was trained on"
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
