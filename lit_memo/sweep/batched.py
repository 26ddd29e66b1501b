"""Many one-hidden-layer nets trained as one stacked model: the members of a Zhang et al. (2021)
Fig. 4 cell (same width, data and regime; own learning rates, seed and radius).

Full-batch GD with momentum and projections, exactly as ``train.py`` runs one member
(``ShallowNetModule`` + ``torch.optim.SGD`` + ``ProjectedOptimizerMixin``), but for G members at
once: the weights are stacked ``(G, m, d)`` / ``(G, out, m')`` and a step is a few batched
matmuls with the gradient written out (the net is two layers, so the backward is three
matmuls and one elementwise derivative). Per member: learning rates, momentum buffers, ball
radius and anchor (its own initial weights), projection onto V. A member whose loss becomes
NaN/inf is marked diverged at the next logging step and dropped from the stack; the others
go on, unchanged (no op mixes members).

Why hand-written and not ``vmap`` over autograd: at these sizes the step is bound by passes over
the (n, width) activations, so the step keeps them in one cache-resident buffer and works in
place (``loss_and_grads``). Measured on one CPU core at n = 1000, d = 5, width 400
(``benchmarks/bench_sweep.py --step_only``): 3.6-4.0x the autograd loop; compiled with
``torch.compile`` only 1.6-1.7x, so the runner's ``--compile auto`` keeps it eager.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch

from lit_memo.models.shallow import EXPLICIT_ACTIVATIONS, loss_and_grads
from lit_memo.optim.projections import RTOL, project_outer_

# what may differ between members of one batched group (train.py keys)
BATCHABLE_KEYS = ("model.init_args.lr_hidden", "model.init_args.lr_outer", "model.init_args.radius", "seed_everything")


def train_step_(x, y, w, v, buf_w, buf_v, lr_w, lr_v, anchor, radius, momentum: float, activation: str,
                pairwise: bool, ball: bool, outer_set: bool, zeta: float, gamma: float,
                scratch: Optional[torch.Tensor] = None):
    """One GD step of every member, in place on w, v and the momentum buffers: gradients,
    torch.optim.SGD's momentum update (dampening 0, no Nesterov, no weight decay) with
    per-member lrs (G, 1, 1), then each member's ball projection. Returns the loss before the
    step and, with ``outer_set``, which members' v left V (the exact projection onto V, a sort,
    runs outside for those only)."""
    loss, grad_w, grad_v, _ = loss_and_grads(x, y, w, v, activation, pairwise, scratch)
    buf_w.mul_(momentum).add_(grad_w)
    buf_v.mul_(momentum).add_(grad_v)
    w.addcmul_(lr_w, buf_w, value=-1)  # bitwise torch.optim.SGD's p.add_(buf, alpha=-lr) on a CPU
    v.addcmul_(lr_v, buf_v, value=-1)
    if ball:
        project_ball_rows_(w, anchor, radius)
    return loss, outside_outer_set(v, zeta, gamma) if outer_set else None


def project_ball_rows_(w: torch.Tensor, anchor: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """Each member's W onto its ball ``||W_g - W0_g||_F <= r_g`` (inf: none); mask of who moved."""
    delta = w - anchor
    dist = torch.linalg.vector_norm(delta.flatten(1), dim=1)
    moved = dist > radius * (1 + RTOL)
    if bool(moved.any()):
        scale = torch.where(moved, radius / dist, torch.ones_like(dist))
        w.copy_(torch.where(moved[:, None, None], anchor + delta * scale[:, None, None], w))
    return moved


def outside_outer_set(v: torch.Tensor, zeta: float, gamma: float) -> torch.Tensor:
    """Which members' v (G, ...) lie outside V = {zeta <= |v_i|, max|v| <= gamma min|v|} (float slack
    RTOL, as the library's own test; gamma = inf never binds: inf * lo is inf or NaN)."""
    lo, hi = torch.aminmax(v.abs().flatten(1), dim=1)
    return (lo < zeta * (1 - RTOL)) | (hi > gamma * lo * (1 + RTOL))


def project_outer_rows_(v: torch.Tensor, zeta: float, gamma: float, outside: Optional[torch.Tensor] = None) -> None:
    """Each member's v onto V with the library's exact projection (a member's v is one vector), for
    the members ``outside`` flags (default: ``outside_outer_set``); ``project_outer_`` itself
    leaves a v it finds inside V untouched, as train.py's projection does."""
    if outside is None:
        outside = outside_outer_set(v, zeta, gamma)
    for g in torch.nonzero(outside).flatten().tolist():
        project_outer_(v[g], zeta, gamma)


@dataclass
class Member:
    """One run of the group: its identity, settings and what it logged."""

    key: Any
    w0: torch.Tensor  # (m, d) initial hidden weights (the ball's anchor)
    v0: torch.Tensor  # (out, m') initial outer weights
    lr_hidden: float
    lr_outer: float
    radius: float
    log: list[tuple[int, float]] = field(default_factory=list)  # (GD step, train loss) as train.py logs
    status: str = "running"
    steps: int = 0
    w: Optional[torch.Tensor] = None
    v: Optional[torch.Tensor] = None


class BatchedShallowTrainer:
    """Full-batch projected GD with momentum for a group of :class:`Member` s.

    Args:
        x, y: the training set, (n, d) and (n, out).
        activation, pairwise: the net (``pairwise``: the ``ours`` regime's output layer).
        ball, outer_set: the regime's constraints; zeta, gamma: V's constants (shared).
        momentum: SGD momentum (shared). log_every: GD steps between logged losses (train.py
            logs one per ``steps_per_batch`` steps). compile: ``torch.compile`` the step.
    """

    def __init__(self, x, y, members: list[Member], *, activation: str, pairwise: bool, ball: bool, outer_set: bool,
                 zeta: float, gamma: float, momentum: float, log_every: int, compile: bool = False) -> None:
        if activation not in EXPLICIT_ACTIVATIONS:
            raise ValueError(f"batched training supports activations {sorted(EXPLICIT_ACTIVATIONS)}, got {activation!r}")
        self.x, self.y = x, y.reshape(len(x), -1).to(x.dtype)
        self.members = members
        self.activation, self.pairwise, self.ball, self.outer_set = activation, pairwise, ball, outer_set
        self.zeta, self.gamma, self.momentum, self.log_every = zeta, gamma, momentum, log_every
        self.step = 0
        self.compile_seconds = 0.0
        self._step, self.compiled = train_step_, compile
        if compile:
            self._step = torch.compile(train_step_, dynamic=False)
        self._stack(list(range(len(members))))
        self.anchor = self.w.clone()
        self._project()  # train.py projects once at fit start: training begins inside the sets

    def _stack(self, alive: list[int]) -> None:
        ms = [self.members[i] for i in alive]
        self.alive = alive
        if not alive:
            return
        device = self.x.device  # the members train where the data lies
        self.w = torch.stack([m.w if m.w is not None else m.w0 for m in ms]).to(device, copy=True)
        self.v = torch.stack([m.v if m.v is not None else m.v0 for m in ms]).to(device, copy=True)
        self.buf_w, self.buf_v = torch.zeros_like(self.w), torch.zeros_like(self.v)
        self.lr_w = torch.tensor([m.lr_hidden for m in ms], dtype=self.w.dtype, device=device)[:, None, None]
        self.lr_v = torch.tensor([m.lr_outer for m in ms], dtype=self.w.dtype, device=device)[:, None, None]
        self.radius = torch.tensor([m.radius for m in ms], dtype=self.w.dtype, device=device)
        self._new_scratch()

    def _new_scratch(self) -> None:
        """The activations' buffer, (members, n, width), reused by every step."""
        self.scratch = torch.empty(len(self.alive), len(self.x), self.w.shape[1], dtype=self.x.dtype, device=self.x.device)

    def _project(self) -> None:
        if self.ball:
            project_ball_rows_(self.w, self.anchor, self.radius)
        if self.outer_set:
            project_outer_rows_(self.v, self.zeta, self.gamma)

    def _drop(self, dead: list[int]) -> None:
        """Freeze diverged members (positions in the stack) and continue with the rest."""
        keep = [k for k in range(len(self.alive)) if k not in dead]
        idx = torch.tensor(keep, dtype=torch.long, device=self.w.device)
        for k in dead:
            member = self.members[self.alive[k]]
            member.status, member.steps = "diverged", self.step
            member.w, member.v = self.w[k].clone(), self.v[k].clone()
        self.alive = [self.alive[k] for k in keep]
        for name in ("w", "v", "buf_w", "buf_v", "lr_w", "lr_v", "radius", "anchor"):
            setattr(self, name, getattr(self, name).index_select(0, idx))
        self._new_scratch()

    @torch.no_grad()
    def run(self, max_steps: int, on_log: Optional[Callable[["BatchedShallowTrainer"], None]] = None) -> None:
        """Train up to ``max_steps`` GD steps (continuing from ``self.step``)."""
        while self.step < max_steps and self.alive:
            t0 = time.perf_counter()
            loss, outside = self._step(self.x, self.y, self.w, self.v, self.buf_w, self.buf_v, self.lr_w, self.lr_v,
                                       self.anchor, self.radius, self.momentum, self.activation, self.pairwise,
                                       self.ball, self.outer_set, self.zeta, self.gamma, self.scratch)
            if self.compiled and not self.compile_seconds:  # the first call compiles (and steps): reported apart
                self.compile_seconds = time.perf_counter() - t0
            if outside is not None and bool(outside.any()):  # one host sync, as the library's own check
                project_outer_rows_(self.v, self.zeta, self.gamma, outside)
            self.step += 1
            if self.step % self.log_every == 0 or self.step == max_steps:
                values = loss.tolist()
                for k, value in enumerate(values):
                    self.members[self.alive[k]].log.append((self.step, value))
                dead = [k for k, value in enumerate(values) if not math.isfinite(value)]
                if dead:
                    self._drop(dead)
                if on_log is not None:
                    on_log(self)
        for k, i in enumerate(self.alive):
            member = self.members[i]
            member.steps = self.step
            member.w, member.v = self.w[k].clone(), self.v[k].clone()
            if self.step >= max_steps:
                member.status = "done"

    # -- checkpointing (the runner saves a group every epoch, as train.py's last.ckpt) -----------
    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "alive": self.alive, "w": self.w, "v": self.v, "buf_w": self.buf_w,
                "buf_v": self.buf_v, "anchor": self.anchor,
                "members": [{"log": m.log, "status": m.status, "steps": m.steps, "w": m.w, "v": m.v} for m in self.members]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for member, saved in zip(self.members, state["members"]):
            member.log, member.status, member.steps, member.w, member.v = (
                [tuple(e) for e in saved["log"]], saved["status"], saved["steps"], saved["w"], saved["v"])
        self._stack(state["alive"])
        self.step = state["step"]
        for name in ("w", "v", "buf_w", "buf_v", "anchor"):
            setattr(self, name, state[name].to(self.x.device, copy=True))
