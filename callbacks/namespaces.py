"""Both Lightning import styles: ``import pytorch_lightning as pl`` and ``import lightning as L``.

The two packages ship the same classes under two names, and each one's Trainer and LightningCLI
recognise only their own (``trainer.callbacks: list[lightning.pytorch.Callback]`` in a LightningCLI
config refuses a ``pytorch_lightning.Callback``). Lightning's ``Callback`` is a plain class with
no-op hooks and no state, so a callback can be both: the diagnostic callbacks derive from
:class:`Callback` below, which has the unified package's ``Callback`` as a second base whenever
``lightning`` is installed. Their hooks use only what the two Trainers share.
"""

from __future__ import annotations

import pytorch_lightning as pl
from pytorch_lightning.loggers import WandbLogger

try:
    import lightning.pytorch as lightning_pytorch
    from lightning.pytorch.loggers import WandbLogger as _UnifiedWandbLogger
except ImportError:  # only pytorch_lightning is installed
    lightning_pytorch = None

CALLBACK_BASES: tuple[type, ...] = (pl.Callback,) if lightning_pytorch is None else (pl.Callback, lightning_pytorch.Callback)
WANDB_LOGGERS: tuple[type, ...] = (WandbLogger,) if lightning_pytorch is None else (WandbLogger, _UnifiedWandbLogger)


class Callback(*CALLBACK_BASES):  # type: ignore[misc]
    """A callback that a Trainer from either package runs (and a LightningCLI of either accepts)."""
