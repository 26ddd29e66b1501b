"""Evaluation shards that count every sample exactly once, on any number of processes."""

from __future__ import annotations

from typing import Any, Optional

from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import Sampler


def eval_sampler(dataset: Any, trainer: Any, split: str) -> Optional[Sampler]:
    """The sampler of an evaluation DataLoader: None on one process, else Lightning's unpadded shard.

    Lightning's own injection, a ``DistributedSampler``, pads the split to a multiple of the world
    size by repeating samples (the 297 digits test images on 2 ranks count one twice). Rank r gets
    samples ``r, r + world, ...`` instead: shards differ in size by at most one, and the module's
    metrics, summed over ranks, count each sample once. A ``DistributedSampler`` subclass, so
    Lightning keeps it rather than injecting its own.
    """
    kwargs = getattr(trainer, "distributed_sampler_kwargs", None) if trainer is not None else None
    if not kwargs or kwargs.get("num_replicas", 1) <= 1:
        return None
    world = kwargs["num_replicas"]
    if len(dataset) < world:
        # a rank with no sample runs no batch: the others would wait for it forever in the metric sync
        raise ValueError(f"the {split} split has {len(dataset)} sample(s) but the run has {world} processes: "
                         f"each needs at least one; evaluate on fewer devices or a larger {split} split")
    return UnrepeatedDistributedSampler(dataset, shuffle=False, **kwargs)


def check_eval_splits(splits: dict, trainer: Any) -> None:
    """At ``setup``, before any training: every rank must be able to take a share of val and test."""
    for name in ("val", "test"):
        if name in splits:
            eval_sampler(splits[name], trainer, name)
