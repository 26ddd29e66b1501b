"""Projected gradient descent as a Lightning hook: Zhang et al. (2021), Algorithm 2."""

from __future__ import annotations

import functools
import re
import warnings
from typing import Any, Callable, Iterable, Optional, Union

import torch

from lit_memo.optim.constraints import Constraint
from lit_memo.optim.projections import Moved

_CKPT_KEY = "constraint_anchors"


def unanchored_groups(groups: dict[str, Constraint], checkpoint: dict[str, Any]) -> list[str]:
    """Names of the groups that need an anchor (a ball) but have none saved in ``checkpoint``:
    resuming would centre them on the resume point. Read by the mixin and by train.py's pre-flight."""
    saved = checkpoint.get(_CKPT_KEY) or {}
    return [name for name, group in groups.items() if group.needs_anchor and name not in saved]


class ProjectedOptimizerMixin:
    """Project every constraint group onto its set after every real optimizer step.

    The LightningModule declares its groups in ``constraint_groups()`` (name -> constraint).
    The projection is a ``register_step_post_hook`` on each optimizer the trainer holds, so it
    runs exactly when ``optimizer.step()`` really ran: not on accumulation micro-batches, not
    when AMP's GradScaler skips a step, and also under manual optimization, for an optimizer
    given in the YAML, and on every DDP rank (whose parameters are identical after the step).
    A group is projected after the steps of the optimizers that hold its parameters only. The
    point is also projected once when fit starts, so training begins inside the sets.

    Anchors (the ball centres = the initial weights) are captured once, at the first fit start,
    after DDP has broadcast rank 0's parameters, so they are identical on every rank. They are
    kept out of the module's state_dict (DDP would re-broadcast buffers at every step) and saved
    in the checkpoint under ``"constraint_anchors"``; resuming restores them, never re-captures.
    A fit resumed from a checkpoint that lacks a ball's anchor raises ``RuntimeError`` (the ball
    would be centred on the resume point); set ``allow_anchor_recapture = True`` to accept that,
    with a warning. Loading such a checkpoint for anything but a fit is fine.
    At fit start every constrained tensor must be a trainable parameter of the module, in one
    group only; anything else raises ``ValueError`` before the first step.

    The fit-start, fit-end and checkpoint work cannot be switched off by the subclass: every
    subclass's ``on_fit_start``, ``on_fit_end``, ``on_save_checkpoint`` and ``on_load_checkpoint``
    are wrapped (``__init_subclass__``) so that it runs after them, whether or not they call
    ``super()``, and whichever side of ``pl.LightningModule`` the mixin sits in the bases.

    The projection never reads a value back to the host on an accelerator (``sync_free``, see
    :mod:`lit_memo.optim.projections`): how often it moved the weights is accumulated in device
    tensors and read only when ``projection_stats`` is (by a logging callback). Set
    ``projection_sync_free`` to True/False to force either path (None: sync-free off the CPU).
    """

    projection_sync_free: Optional[bool] = None
    allow_anchor_recapture: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for hook, part in _HOOK_PARTS.items():
            current = getattr(cls, hook, None)
            if current is not None and not getattr(current, "_runs_projection_part", False):
                setattr(cls, hook, _followed_by(current, part, hook))

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

    # -- groups ----------------------------------------------------------------------------
    def _groups(self) -> dict[str, Constraint]:
        if not hasattr(self, "_constraint_groups_cache"):
            groups = self.constraint_groups()
            for name in groups:
                if not re.fullmatch(r"[A-Za-z0-9_]+", name):
                    raise ValueError(f"constraint group name {name!r} must be letters, digits or _ (it becomes a metric key)")
            self._constraint_groups_cache = groups
        return self._constraint_groups_cache

    def validate_constraint_groups(self) -> None:
        """Every constrained tensor is a trainable parameter of this module, in one group only.

        A tensor that is not one of the module's parameters (e.g. a copy) would be projected while
        the real layer trains unconstrained; a frozen parameter (``requires_grad=False``) is
        refused rather than left alone, since the projection would change weights the user froze.
        """
        names = {id(p): n for n, p in self.named_parameters(remove_duplicate=False)}
        owner: dict[int, str] = {}
        cls = type(self).__name__
        for group_name, group in self._groups().items():
            for i, p in enumerate(group.params):
                what = f"constraint group {group_name!r}, tensor {i} (shape {tuple(p.shape)})"
                if id(p) not in names:
                    raise ValueError(
                        f"{what} is not a parameter of {cls}: a copy or another module's tensor would be projected "
                        f"while the real weights train unconstrained. Build the group from the module's own "
                        f"parameters, e.g. BallConstraint(self.layer, r) or BallConstraint(self.layer.weight, r)")
                if not p.requires_grad:
                    raise ValueError(
                        f"{what} is the frozen parameter {names[id(p)]!r} (requires_grad=False): projecting it would "
                        f"change weights you froze. Remove it from constraint_groups() or unfreeze it")
                if id(p) in owner:
                    raise ValueError(
                        f"{what}: parameter {names[id(p)]!r} is already in group {owner[id(p)]!r}; projecting it onto "
                        f"two sets in turn is not the projection onto their intersection. Put it in one group")
                owner[id(p)] = group_name

    # -- projection ------------------------------------------------------------------------
    def project_constraints_(self) -> dict[str, Moved]:
        """Project every group in place; returns, per group, whether it moved (a bool, or a 0-dim
        bool tensor on the device when sync-free)."""
        return self._project_groups_(self._groups())

    def _project_groups_(self, names: Iterable[str]) -> dict[str, Moved]:
        groups = self._groups()
        steps, active = self._projection_counts()
        moved = {}
        for name in names:
            group = groups[name]
            if group.active:
                anchors = self.anchors_for(name) if group.needs_anchor else ()
                moved[name] = hit = group.project_(anchors, sync_free=self.projection_sync_free)
                steps[name] = steps.get(name, 0) + 1
                active[name] = active.get(name, 0) + hit  # a device tensor when hit is one: no read
        return moved

    def _projection_counts(self) -> tuple[dict[str, int], dict[str, Union[int, torch.Tensor]]]:
        if not hasattr(self, "_projection_steps"):
            self._projection_steps: dict[str, int] = {}
            self._projection_active: dict[str, Union[int, torch.Tensor]] = {}
        return self._projection_steps, self._projection_active

    @property
    def projection_stats(self) -> dict[str, tuple[int, int]]:
        """Per group (projected steps, steps where the projection moved the weights).

        Reading it copies the device counters to the host: do it when logging, not every step.
        """
        steps, active = self._projection_counts()
        return {name: (n, int(active[name])) for name, n in steps.items()}

    def _register_projection_hooks(self, optimizers: Optional[Iterable[torch.optim.Optimizer]] = None) -> None:
        """A post-step hook per optimizer, projecting the groups that optimizer holds parameters of."""
        self._remove_projection_hooks()
        groups = self._groups()
        for optimizer in self.trainer.optimizers if optimizers is None else optimizers:
            held = {id(p) for g in optimizer.param_groups for p in g["params"]}
            names = [n for n, group in groups.items() if any(id(p) in held for p in group.params)]
            if names:
                hook = functools.partial(_project_after_step, self, names)
                self._projection_handles.append(optimizer.register_step_post_hook(hook))

    def _remove_projection_hooks(self) -> None:
        for handle in getattr(self, "_projection_handles", []):
            handle.remove()
        self._projection_handles = []

    # -- what the Lightning hooks do (always, see __init_subclass__) -----------------------
    def _arm_projection(self) -> None:
        self._remove_projection_hooks()
        if self._groups():
            self.validate_constraint_groups()
            self.capture_anchors_()
            self.project_constraints_()
            self._projection_steps, self._projection_active = {}, {}  # the start-up projection is not a step
            self._register_projection_hooks()

    def _disarm_projection(self) -> None:
        self._remove_projection_hooks()

    def _save_anchors(self, checkpoint: dict[str, Any]) -> None:
        if self.constraint_anchors:
            checkpoint[_CKPT_KEY] = {k: [a.detach().cpu() for a in v] for k, v in self.constraint_anchors.items()}

    def _load_anchors(self, checkpoint: dict[str, Any]) -> None:
        if _CKPT_KEY in checkpoint:
            self._constraint_anchors = {k: list(v) for k, v in checkpoint[_CKPT_KEY].items()}
        trainer = getattr(self, "_trainer", None)
        if trainer is not None and trainer.state.fn == "fit":  # a resumed fit (not load_from_checkpoint, test, ...)
            self._check_resumed_anchors(checkpoint, trainer.ckpt_path)

    def _check_resumed_anchors(self, checkpoint: dict[str, Any], path: Any) -> None:
        missing = unanchored_groups(self._groups(), checkpoint)
        if not missing:
            return
        what = (f"resuming fit from {path}: the checkpoint holds no anchor (the initial weights the ball is centred "
                f"on) for constraint group(s) {', '.join(missing)}, so the ball would be centred on the resume point")
        if not self.allow_anchor_recapture:
            raise RuntimeError(f"{what}. Resume from a checkpoint this module wrote with these groups (it saves their "
                               "anchors under 'constraint_anchors'), or set allow_anchor_recapture = True on the "
                               "module to accept balls centred on the resume point")
        warnings.warn(f"{what} (accepted: allow_anchor_recapture is True)", stacklevel=2)
        for name in missing:  # captured again at fit start: the resume point
            self.constraint_anchors.pop(name, None)

    # -- Lightning hooks -------------------------------------------------------------------
    # Inside a wrapped subclass hook (which called super()) the wrapper does the part once, after
    # the whole hook: anchors must be the weights the subclass's on_fit_start leaves, not earlier ones.
    def _outside_wrapped(self, hook: str) -> bool:
        return not self.__dict__.get("_projection_hook_depth", {}).get(hook)

    def on_fit_start(self) -> None:
        super().on_fit_start()
        if self._outside_wrapped("on_fit_start"):
            self._arm_projection()

    def on_fit_end(self) -> None:
        if self._outside_wrapped("on_fit_end"):
            self._disarm_projection()
        super().on_fit_end()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        if self._outside_wrapped("on_save_checkpoint"):
            self._save_anchors(checkpoint)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        if self._outside_wrapped("on_load_checkpoint"):
            self._load_anchors(checkpoint)

    for _hook in (on_fit_start, on_fit_end, on_save_checkpoint, on_load_checkpoint):
        _hook._runs_projection_part = True
    del _hook


_HOOK_PARTS: dict[str, Callable[..., None]] = {
    "on_fit_start": ProjectedOptimizerMixin._arm_projection,
    "on_fit_end": ProjectedOptimizerMixin._disarm_projection,
    "on_save_checkpoint": ProjectedOptimizerMixin._save_anchors,
    "on_load_checkpoint": ProjectedOptimizerMixin._load_anchors,
}


def _followed_by(hook: Callable[..., Any], part: Callable[..., None], name: str) -> Callable[..., Any]:
    """``hook`` then the mixin's ``part``, once: only the outermost wrapped call (of a chain of
    subclass hooks calling super()) runs the part, after everything the subclasses did."""

    @functools.wraps(hook)
    def wrapped(self, *args: Any, **kwargs: Any) -> Any:
        depth = self.__dict__.setdefault("_projection_hook_depth", {})
        depth[name] = depth.get(name, 0) + 1
        try:
            out = hook(self, *args, **kwargs)
        finally:
            depth[name] -= 1
        if depth[name] == 0:
            part(self, *args, **kwargs)
        return out

    wrapped._runs_projection_part = True
    return wrapped


def _project_after_step(module: ProjectedOptimizerMixin, names: list[str], optimizer, args, kwargs) -> None:
    module._project_groups_(names)
