"""The fixed probe set of the diagnostics: the first k samples of the training split."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader
from torch.utils.data._utils.collate import default_collate

from .base import DiagnosticCallback
from lit_memo.diagnostics import resolve_params


def train_dataset(trainer: pl.Trainer) -> Optional[Any]:
    """The map-style training dataset, unsharded, when it can be found."""
    dm = trainer.datamodule
    dataset = getattr(dm, "train_dataset", None)
    splits = getattr(dm, "splits", None)
    if dataset is None and isinstance(splits, Mapping):
        dataset = splits.get("train")
    if dataset is None and isinstance(trainer.train_dataloader, DataLoader):
        dataset = trainer.train_dataloader.dataset
    if dataset is not None and hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__"):
        return dataset
    return None


def first_samples(trainer: pl.Trainer, k: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """The first k training samples as a batch ``(x, y, ...)`` on ``device``.

    Taken in dataset order (independent of shuffling, sharding and the number of ranks) when
    the dataset is reachable, else from the first batches of the training loader. Call under a
    forked RNG: indexing a dataset may draw augmentations.
    """
    dataset = train_dataset(trainer)
    if dataset is not None:
        batch = default_collate([dataset[i] for i in range(min(k, len(dataset)))])
    else:
        loader = trainer.train_dataloader if trainer.train_dataloader is not None else trainer.datamodule.train_dataloader()
        parts, got = [], 0
        for part in loader:
            parts.append(part)
            got += len(part[0])
            if got >= k:
                break
        batch = [torch.cat(tensors)[:k] for tensors in zip(*parts)]
    if isinstance(batch, torch.Tensor):
        batch = (batch,)
    # the dtype Lightning gives training batches (float64 under 64-true, half under 16-true): the
    # probes bypass its batch transfer, and a float32 probe would not multiply with float64 weights
    plugin = getattr(trainer, "precision_plugin", None)
    convert = plugin.convert_input if plugin is not None else (lambda t: t)
    return tuple(convert(t.to(device)) if t.is_floating_point() else t.to(device) for t in batch)


def select_params(pl_module: pl.LightningModule, names: Optional[Sequence[str]], default_groups: bool) -> Optional[list]:
    """Parameters named by constraint-group names, parameter names or module prefixes.

    None means: the constrained groups when ``default_groups`` and the module declares some,
    else every trainable parameter (returned as None).
    """
    groups = pl_module.constraint_groups() if hasattr(pl_module, "constraint_groups") else {}
    if names is None:
        if not (default_groups and groups):
            return None
        names = list(groups)
    chosen: list = []
    for name in names:
        chosen.extend(groups[name].params if name in groups else [name])
    return list(resolve_params(pl_module, chosen).values())


class ProbeCallback(DiagnosticCallback):
    """A diagnostic measured on a fixed probe set: the first ``num_probes`` training samples."""

    def __init__(self, every_n_steps: Optional[int], num_probes: int) -> None:
        super().__init__(every_n_steps)
        if num_probes < 1:
            raise ValueError(f"num_probes must be >= 1, got {num_probes}")
        self.num_probes = num_probes
        self._probes: Optional[torch.Tensor] = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self._probes = None

    def probes(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> torch.Tensor:
        if self._probes is None:
            self._probes = first_samples(trainer, self.num_probes, pl_module.device)[0]
        return self._probes
