"""Where the iterates sit relative to the constraint sets of Zhang et al. (2021), problem (10):
distance to the ball's centre, how often the projection acts, the outer weights' spread."""

from __future__ import annotations

import math
from typing import Any, Optional

import pytorch_lightning as pl

from .base import DiagnosticCallback
from lit_memo.optim import BallConstraint, OuterConstraint, ball_distance


class ConstraintBoundaryCallback(DiagnosticCallback):
    """Per constraint group of a ``ProjectedOptimizerMixin`` module, logs

    * ball groups: ``constraint/<group>/distance`` (``||W - W0||_F``) and ``ratio`` (distance / r,
      for a finite r > 0);
    * outer-set groups: ``constraint/<group>/min_abs`` (min|v|) and ``spread`` (max|v| / min|v|);
    * every group: ``constraint/<group>/active``, the fraction of optimizer steps since the last
      measurement where the projection moved the weights (absent when no step was taken);

    and ``constraint/seconds``. Cheap: by default it runs every ``trainer.log_every_n_steps``.
    """

    prefix = "constraint"

    def __init__(self, every_n_steps: Optional[int] = None) -> None:
        super().__init__(every_n_steps)
        self._seen: dict[str, tuple[int, int]] = {}

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self._seen = {}

    def _active_since_last(self, pl_module: pl.LightningModule) -> dict[str, tuple[int, int]]:
        """(steps, moved steps) per group since the last measurement.

        Reads the mixin's cumulative ``projection_stats`` without resetting them: an observer
        must not change the module's state, and others may read the totals too.
        """
        stats = dict(getattr(pl_module, "projection_stats", {}))
        delta = {}
        for name, (steps, moved) in stats.items():
            seen_steps, seen_moved = self._seen.get(name, (0, 0))
            if steps < seen_steps:  # the counters were reset (a new fit) in between
                seen_steps, seen_moved = 0, 0
            delta[name] = (steps - seen_steps, moved - seen_moved)
        self._seen = stats
        return delta

    def measure(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        groups = pl_module.constraint_groups() if hasattr(pl_module, "constraint_groups") else {}
        active = self._active_since_last(pl_module)
        metrics: dict[str, Any] = {}
        for name, group in groups.items():
            key = f"constraint/{name}"
            if isinstance(group, BallConstraint):
                distance = float(ball_distance(group.params, pl_module.anchors_for(name)))
                metrics[f"{key}/distance"] = distance
                if group.radius > 0 and not math.isinf(group.radius):
                    metrics[f"{key}/ratio"] = distance / group.radius
            elif isinstance(group, OuterConstraint):
                a = group.param.detach().abs()
                lo, hi = float(a.min()), float(a.max())
                metrics[f"{key}/min_abs"] = lo
                metrics[f"{key}/spread"] = hi / lo if lo > 0 else math.inf
            steps, moved = active.get(name, (0, 0))
            if steps:
                metrics[f"{key}/active"] = moved / steps
        return metrics
