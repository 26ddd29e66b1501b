"""Many quadratic nets of Ge, Wang, Zhao (2019) trained as one stacked model: the members of a
sweep cell that differ only in learning rate and seed (same width, data, optimizer settings).

``f(x) = sum_i a_i (w_i^T x)^2`` with ``a = (+1 x k/2, -1 x k/2)`` fixed, loss
``mean_j (f(x_j) - y_j)^2 + lam/2 ||W||_F^2`` (``QuadraticModule.loss``), W of G members stacked
``(G, k, d)``. A step is two batched matmuls with the gradient written out, then the optimizer's
update with per-member learning rates, in the arithmetic of torch's single-tensor SGD
(momentum, no dampening/Nesterov/weight decay) and Adam (no amsgrad/weight decay), so a member
equals its ``train.py`` run to float tolerance. The three-layer net's fixed random features
``z = (V x)^p`` are computed once per batch and shared by all members (V is the same in every
run with one ``feature_seed``).

Mini-batches: each member sees the batches its own run would. ``DataLoader(shuffle=True)`` draws
its order from the global torch RNG when an epoch's iterator starts (two int64 draws per epoch:
the loader's base seed, then the sampler's seed); Lightning on one device iterates that loader
as is, starting from the RNG state left by ``seed_everything`` and the model's init. So every
member keeps the RNG state its run would have, the real loader is iterated under it
(``torch.random.fork_rng``), and members whose states are equal (same seed) share one order.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

import torch

# what may differ between members of one batched quadratic group (train.py keys)
BATCHABLE_KEYS = ("model.init_args.lr_hidden", "model.init_args.optimizer.init_args.lr", "seed_everything")


def loss_and_grad(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, lam: float):
    """Each member's objective, data term and gradient w.r.t. W.

    x: (n, d) shared or (G, n, d) per member; y: (n,) or (G, n); w: (G, k, d) with ``a`` the
    signed halves (+1 on the first k/2 rows of W, -1 on the rest). Returns (loss (G,), mse (G,),
    grad (G, k, d)). ``h = x W^T`` is the only (G, n, k) tensor: the output reads its halves
    and the backward scales it in place (dL/dh_ji = 4 r_j a_i h_ji / n)."""
    h = torch.matmul(x, w.transpose(1, 2))  # (G, n, k)
    half = h.shape[-1] // 2
    pos, neg = h[..., :half], h[..., half:]
    f = torch.linalg.vecdot(pos, pos) - torch.linalg.vecdot(neg, neg)  # (G, n)
    r = f - y
    mse = r.square().mean(dim=-1)
    h.mul_((r * (4.0 / r.shape[-1])).unsqueeze(-1))
    neg.neg_()
    grad = torch.matmul(h.transpose(1, 2), x)  # (G, k, d)
    if lam == 0:
        return mse, mse, grad
    loss = mse + 0.5 * lam * w.square().sum(dim=(1, 2))
    return loss, mse, grad.add_(w, alpha=lam)


class BatchedSGD:
    """``torch.optim.SGD`` (momentum, dampening 0, no Nesterov, no weight decay) for stacked W."""

    def __init__(self, momentum: float) -> None:
        self.momentum, self.buf = momentum, None

    def step(self, w: torch.Tensor, grad: torch.Tensor, lr: torch.Tensor) -> None:
        direction = grad
        if self.momentum:
            if self.buf is None:  # torch: the first buffer is the gradient itself
                self.buf = grad.clone()
            else:
                self.buf.mul_(self.momentum).add_(grad)
            direction = self.buf
        w.addcmul_(direction, lr.to(w.dtype)[:, None, None], value=-1)

    def select(self, idx: torch.Tensor) -> None:
        if self.buf is not None:
            self.buf = self.buf.index_select(0, idx)

    def state_dict(self) -> dict[str, Any]:
        return {"buf": self.buf}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.buf = state["buf"]


class BatchedAdam:
    """``torch.optim.Adam`` (no amsgrad, no weight decay) for stacked W: torch's single-tensor
    arithmetic op by op, the step size ``lr / (1 - beta1^t)`` per member."""

    def __init__(self, betas: tuple[float, float], eps: float) -> None:
        self.beta1, self.beta2 = betas
        self.eps, self.t = eps, 0
        self.exp_avg = self.exp_avg_sq = None

    def step(self, w: torch.Tensor, grad: torch.Tensor, lr: torch.Tensor) -> None:
        if self.exp_avg is None:
            self.exp_avg, self.exp_avg_sq = torch.zeros_like(w), torch.zeros_like(w)
        self.t += 1
        step = float(self.t)  # torch keeps the count in a float tensor and reads it back
        self.exp_avg.lerp_(grad, 1 - self.beta1)
        self.exp_avg_sq.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
        bias_correction1 = 1 - self.beta1 ** step
        bias_correction2_sqrt = (1 - self.beta2 ** step) ** 0.5
        step_size = (lr.double() / bias_correction1).to(w.dtype)  # a double scalar cast to float, as addcdiv's value
        denom = (self.exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(self.eps)
        # addcdiv_(exp_avg, denom, value=-s) computes w + (-s * exp_avg) / denom
        w.add_(self.exp_avg.mul(-step_size[:, None, None]).div_(denom))

    def select(self, idx: torch.Tensor) -> None:
        if self.exp_avg is not None:
            self.exp_avg, self.exp_avg_sq = self.exp_avg.index_select(0, idx), self.exp_avg_sq.index_select(0, idx)

    def state_dict(self) -> dict[str, Any]:
        return {"t": self.t, "exp_avg": self.exp_avg, "exp_avg_sq": self.exp_avg_sq}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.t, self.exp_avg, self.exp_avg_sq = state["t"], state["exp_avg"], state["exp_avg_sq"]


class LoaderOrder:
    """The batches one run draws from ``loader``, epoch after epoch, starting from ``rng_state``
    (the global CPU RNG state of that run when its first epoch starts)."""

    def __init__(self, loader, rng_state: torch.Tensor) -> None:
        self.loader, self.rng_state = loader, rng_state

    def epoch(self) -> Iterator[Any]:
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(self.rng_state)
            batches = iter(self.loader)  # the loader's base seed
            first = next(batches, None)  # the sampler's seed and the whole epoch's permutation
            self.rng_state = torch.get_rng_state()
        if first is not None:  # the rest draws nothing from the global RNG (plain tensors, no augmentation)
            yield first
            yield from batches


@dataclass
class QuadraticMember:
    """One run of the group: its identity, learning rate, data order and what it logged."""

    key: Any
    w0: torch.Tensor  # (k, d) initial W
    lr: float  # the optimizer's lr for W, updated by the scheduler
    order: int  # index of its LoaderOrder (members with equal RNG states share one)
    scheduler: Any = None  # its own torch scheduler, stepped on its own optimizer (lr bookkeeping only)
    log: list[dict[str, float]] = field(default_factory=list)  # rows as train.py's CSV logger writes them
    status: str = "running"
    steps: int = 0
    w: Optional[torch.Tensor] = None


class BatchedQuadraticTrainer:
    """Trains a group of :class:`QuadraticMember` s as train.py trains each (automatic optimization:
    one step per batch).

    Args:
        orders: one :class:`LoaderOrder` per distinct data order.
        members: the runs (same width, data, optimizer settings; own lr, seed, order).
        optimizer: a :class:`BatchedSGD` or :class:`BatchedAdam`.
        lam: the regularization weight. features: the three-layer net's fixed feature map (None:
            two-layer). log_every: ``trainer.log_every_n_steps``. scheduler_interval: ``epoch`` or
            ``step`` (when members have schedulers).
    """

    def __init__(self, orders: list[LoaderOrder], members: list[QuadraticMember], optimizer, *, lam: float,
                 features: Optional[Callable[[torch.Tensor], torch.Tensor]] = None, log_every: int = 50,
                 scheduler_interval: str = "epoch") -> None:
        self.orders, self.members, self.optimizer = orders, members, optimizer
        self.lam, self.features, self.log_every, self.scheduler_interval = lam, features, log_every, scheduler_interval
        self.batch = 0  # Lightning's batches that stepped (= GD steps)
        self.epoch = 0
        self.alive = list(range(len(members)))
        self.w = torch.stack([m.w0 for m in members]).clone()
        self.lr = torch.tensor([m.lr for m in members], dtype=torch.float64)
        self.best = torch.full((len(members),), math.nan, dtype=self.w.dtype)
        self._feature_cache: tuple[Any, Any] = (None, None)

    # -- one step ---------------------------------------------------------------------------
    def _inputs(self, batches: list[Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y) of the alive members: shared when they share one order, else stacked."""
        xs, ys = [], []
        for x, y in batches:
            if self.features is not None:  # a full batch repeats the same tensor: its features once
                cached_x, z = self._feature_cache
                if cached_x is not x:  # the batch as loaded (a flattened view would be new every step)
                    z = self.features(x)
                    self._feature_cache = (x, z)
                x = z
            else:
                x = x.flatten(1)
            xs.append(x)
            ys.append(y.reshape(len(y)).to(x.dtype))
        orders = [self.members[i].order for i in self.alive]
        if len(set(orders)) == 1:
            return xs[orders[0]], ys[orders[0]]
        return torch.stack([xs[o] for o in orders]), torch.stack([ys[o] for o in orders])

    def _row(self, k: int, loss: list[float], mse: list[float], best: list[float]) -> dict[str, float]:
        row = {"epoch": float(self.epoch), "step": float(self.batch), "train/loss": loss[k], "train/loss_best": best[k]}
        if self.lam > 0:
            row["train/mse"] = mse[k]
        return row

    def _drop(self, dead: list[int]) -> None:
        keep = [k for k in range(len(self.alive)) if k not in dead]
        for k in dead:
            member = self.members[self.alive[k]]
            member.status, member.steps, member.w = "diverged", self.batch + 1, self.w[k].clone()
        idx = torch.tensor(keep, dtype=torch.long)
        self.alive = [self.alive[k] for k in keep]
        self.w, self.lr, self.best = self.w.index_select(0, idx), self.lr.index_select(0, idx), self.best.index_select(0, idx)
        self.optimizer.select(idx)

    def _step_schedulers(self) -> None:
        lrs = []
        with warnings.catch_warnings():  # their optimizers never step (the stack does): torch would warn
            warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step")
            for i in self.alive:
                member = self.members[i]
                if member.scheduler is not None:
                    member.scheduler.step()
                    member.lr = member.scheduler.optimizer.param_groups[0]["lr"]
                lrs.append(member.lr)
        self.lr = torch.tensor(lrs, dtype=torch.float64)

    @torch.no_grad()
    def run(self, max_steps: int, max_epochs: int, on_epoch_end: Optional[Callable[["BatchedQuadraticTrainer"], None]] = None) -> None:
        """Train until ``max_steps`` GD steps or ``max_epochs`` epochs (-1: no limit), continuing
        from ``self.batch`` / ``self.epoch`` (a resume starts at an epoch boundary)."""
        schedulers = any(m.scheduler is not None for m in self.members)

        def more() -> bool:
            return bool(self.alive) and (max_steps < 0 or self.batch < max_steps) and (max_epochs < 0 or self.epoch < max_epochs)

        while more():
            for batches in zip(*(order.epoch() for order in self.orders)):
                x, y = self._inputs(list(batches))
                loss, mse, grad = loss_and_grad(x, y, self.w, self.lam)
                self.best = torch.fmin(self.best, loss)  # NaN-safe running minimum, as the module's
                self.optimizer.step(self.w, grad, self.lr)
                finite = torch.isfinite(loss)
                logs = (self.batch + 1) % self.log_every == 0
                if logs or not bool(finite.all()):  # DivergenceStop checks every CPU step; its stop logs the step
                    values, mses, best = loss.tolist(), mse.tolist(), self.best.tolist()
                    dead = [k for k, ok in enumerate(finite.tolist()) if not ok]
                    for k, i in enumerate(self.alive):
                        if logs or k in dead:
                            row = self._row(k, values, mses, best)
                            if k in dead:
                                row["train/diverged"] = 1.0
                            self.members[i].log.append(row)
                    if dead:
                        self._drop(dead)
                self.batch += 1
                if schedulers and self.scheduler_interval == "step":
                    self._step_schedulers()
                if not self.alive or (max_steps >= 0 and self.batch >= max_steps):
                    break
            else:  # the epoch ran to its end
                self.epoch += 1
                if schedulers and self.scheduler_interval == "epoch":
                    self._step_schedulers()
                if on_epoch_end is not None and more():
                    on_epoch_end(self)
                continue
            break
        for k, i in enumerate(self.alive):
            member = self.members[i]
            member.steps, member.w, member.status = self.batch, self.w[k].clone(), "done"

    # -- checkpointing (at epoch ends, as train.py's last.ckpt) ---------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"batch": self.batch, "epoch": self.epoch, "alive": self.alive, "w": self.w, "lr": self.lr,
                "best": self.best, "optimizer": self.optimizer.state_dict(),
                "rng_states": [o.rng_state for o in self.orders],
                "members": [{"log": m.log, "status": m.status, "steps": m.steps, "w": m.w, "lr": m.lr,
                             "scheduler": m.scheduler.state_dict() if m.scheduler is not None else None}
                            for m in self.members]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for member, saved in zip(self.members, state["members"]):
            member.log, member.status, member.steps, member.w, member.lr = (
                saved["log"], saved["status"], saved["steps"], saved["w"], saved["lr"])
            if member.scheduler is not None:
                member.scheduler.load_state_dict(saved["scheduler"])
                for group in member.scheduler.optimizer.param_groups:
                    group["lr"] = member.lr
        for order, rng in zip(self.orders, state["rng_states"]):
            order.rng_state = rng
        self.batch, self.epoch, self.alive = state["batch"], state["epoch"], list(state["alive"])
        self.w, self.lr, self.best = state["w"].clone(), state["lr"].clone(), state["best"].clone()
        self.optimizer.load_state_dict(state["optimizer"])
