"""Projected gradient descent as a Lightning hook: Zhang et al. (2021), Algorithm 2."""

from __future__ import annotations

import re
from typing import Any

import torch

from lit_memo.optim.constraints import Constraint

_CKPT_KEY = "constraint_anchors"


class ProjectedOptimizerMixin:
    """Project every constraint group onto its set after every real optimizer step.

    The LightningModule declares its groups in ``constraint_groups()`` (name -> constraint).
    The projection is a ``register_step_post_hook`` on each optimizer the trainer holds, so it
    runs exactly when ``optimizer.step()`` really ran: not on accumulation micro-batches, not
    when AMP's GradScaler skips a step, and also under manual optimization, for an optimizer
    given in the YAML, and on every DDP rank (whose parameters are identical after the step).
    The point is also projected once when fit starts, so training begins inside the sets.

    Anchors (the ball centres = the initial weights) are captured once, at the first fit start,
    after DDP has broadcast rank 0's parameters, so they are identical on every rank. They are
    kept out of the module's state_dict (DDP would re-broadcast buffers at every step) and saved
    in the checkpoint under ``"constraint_anchors"``; resuming restores them, never re-captures.

    Subclasses that override ``on_fit_start``, ``on_fit_end``, ``on_save_checkpoint`` or
    ``on_load_checkpoint`` must call ``super()``.
    """

    def constraint_groups(self) -> dict[str, Constraint]:
        return {}

    # -- anchors ---------------------------------------------------------------------------
    @property
    def constraint_anchors(self) -> dict[str, list[torch.Tensor]]:
        if not hasattr(self, "_constraint_anchors"):
            self._constraint_anchors: dict[str, list[torch.Tensor]] = {}
        return self._constraint_anchors

    def capture_anchors_(self) -> None:
        """Record the current weights of each anchored group; groups already recorded are kept."""
        for name, group in self._groups().items():
            if group.needs_anchor and name not in self.constraint_anchors:
                self.constraint_anchors[name] = [p.detach().clone() for p in group.params]

    def anchors_for(self, name: str) -> list[torch.Tensor]:
        group = self._groups()[name]
        anchors = self.constraint_anchors.get(name, [])
        if len(anchors) != len(group.params):
            raise RuntimeError(f"constraint group {name!r} has no anchors yet: call capture_anchors_() or start fit")
        for i, (a, p) in enumerate(zip(anchors, group.params)):
            if a.device != p.device or a.dtype != p.dtype:
                anchors[i] = a.to(device=p.device, dtype=p.dtype)
        return anchors

    # -- projection ------------------------------------------------------------------------
    def _groups(self) -> dict[str, Constraint]:
        if not hasattr(self, "_constraint_groups_cache"):
            groups = self.constraint_groups()
            for name in groups:
                if not re.fullmatch(r"[A-Za-z0-9_]+", name):
                    raise ValueError(f"constraint group name {name!r} must be letters, digits or _ (it becomes a metric key)")
            self._constraint_groups_cache = groups
        return self._constraint_groups_cache

    def project_constraints_(self) -> dict[str, bool]:
        """Project every group in place; returns which groups moved (and counts it for logging).

        Runs after every optimizer step, so it is kept lean: inside the sets it costs one norm
        and one min/max, each with a single host sync.
        """
        moved = {}
        stats = self.projection_stats
        for name, group in self._groups().items():
            if group.active:
                moved[name] = hit = group.project_(self.anchors_for(name) if group.needs_anchor else ())
                steps, active = stats.get(name, (0, 0))
                stats[name] = (steps + 1, active + hit)
        return moved

    @property
    def projection_stats(self) -> dict[str, tuple[int, int]]:
        """Per group (projected steps, steps where the projection moved the weights)."""
        if not hasattr(self, "_projection_stats"):
            self._projection_stats: dict[str, tuple[int, int]] = {}
        return self._projection_stats

    def _register_projection_hooks(self) -> None:
        self._remove_projection_hooks()
        hook = lambda optimizer, args, kwargs: self.project_constraints_()  # noqa: E731
        self._projection_handles = [opt.register_step_post_hook(hook) for opt in self.trainer.optimizers]

    def _remove_projection_hooks(self) -> None:
        for handle in getattr(self, "_projection_handles", []):
            handle.remove()
        self._projection_handles = []

    # -- Lightning hooks -------------------------------------------------------------------
    def on_fit_start(self) -> None:
        super().on_fit_start()
        if self._groups():
            self.capture_anchors_()
            self.project_constraints_()
            self._projection_stats = {}  # the start-up projection is not a training step
            self._register_projection_hooks()

    def on_fit_end(self) -> None:
        self._remove_projection_hooks()
        super().on_fit_end()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        if self.constraint_anchors:
            checkpoint[_CKPT_KEY] = {k: [a.detach().cpu() for a in v] for k, v in self.constraint_anchors.items()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        if _CKPT_KEY in checkpoint:
            self._constraint_anchors = {k: list(v) for k, v in checkpoint[_CKPT_KEY].items()}
