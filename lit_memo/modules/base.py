"""The LightningModule all architecture families share: task, regime, optimizer groups, logging."""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Sized
from typing import Optional, Sequence

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from pytorch_lightning.plugins.precision import Precision
from pytorch_lightning.profilers import PassThroughProfiler
from pytorch_lightning.strategies import SingleDeviceStrategy
from pytorch_lightning.utilities import rank_zero_warn
from pytorch_lightning.utilities.model_helpers import is_overridden
from torch import nn
from torch.utils.data import BatchSampler
from torchmetrics import MeanMetric, Metric
from torchmetrics.classification import MulticlassAccuracy

from lit_memo.data.base import RepeatedBatch
from lit_memo.logging_steps import logs_train_step
from lit_memo.modules.mirrored import MirroredInitMixin
from lit_memo.modules.projected import ProjectedOptimizerMixin
from lit_memo.optim.constraints import BallConstraint, Constraint, OuterConstraint
from lit_memo.optim.projections import check_outer_set, check_radius
from lit_memo.regimes import get_regime

TASKS = ("regression", "classification")
SPLITS = ("train", "val", "test")


_PER_STEP_HOOKS = ("on_before_backward", "on_after_backward", "on_before_optimizer_step")
_PENDING_LIMIT = 1024  # unlogged training losses kept before they are folded into train/loss_best anyway


def train_batch_sizes(loader) -> Optional[tuple[int, int, int]]:
    """(batches per epoch, size of the first, size of the last) of one rank's training loader,
    read from its sampler without iterating it; None where the loader does not tell."""
    if isinstance(loader, RepeatedBatch):
        n = len(loader.batch[1])  # (x, y), the same batch every time
        return len(loader), n, n
    batches = getattr(loader, "batch_sampler", None)
    if type(batches) is not BatchSampler or not isinstance(batches.sampler, Sized):
        return None
    m, b = len(batches.sampler), batches.batch_size
    k = m // b if batches.drop_last else -(-m // b)
    if k < 1:
        return None
    return k, min(b, m), b if batches.drop_last or m % b == 0 else m % b


def per_step_hooks_observed(trainer: pl.Trainer, module: pl.LightningModule) -> bool:
    """Whether a GD step must go through Lightning's backward/step machinery.

    It must when the precision plugin scales losses (AMP), when the strategy hooks the backward
    (DDP prepares its reducer there), when a profiler is on, or when the module or a callback
    overrides a per-step hook. Otherwise that machinery only dispatches no-op hooks: ~80 us per
    step on a CPU, a fifth of a small full-batch GD step, so ``_multi_step`` skips it.
    """
    if type(trainer.precision_plugin) is not Precision or not isinstance(trainer.strategy, SingleDeviceStrategy):
        return True
    if not isinstance(trainer.profiler, PassThroughProfiler):
        return True
    return any(is_overridden(h, module, pl.LightningModule) for h in _PER_STEP_HOOKS) or any(
        is_overridden(h, cb, pl.Callback) for cb in trainer.callbacks for h in _PER_STEP_HOOKS)


class MemorizationModule(MirroredInitMixin, ProjectedOptimizerMixin, pl.LightningModule):
    """Trains ``self.net`` for regression (squared loss) or classification (cross-entropy).

    A family subclass builds ``self.net`` (pairwise output layer when ``self.regime.mirrored``),
    calls ``self.init_network_()`` and says which parameters are the constrained hidden weights
    (``hidden_parameters``) and the outer weights (``outer_parameters``). The regime then decides
    the init and the constraint groups; the two groups get their own learning rates, since
    Zhang et al. grid-search them separately.

    Args:
        input_shape, num_outputs, task: the data's; ``train.py`` links them from the DataModule.
        regime: ``ours``, ``regular`` or ``constrained_regular`` (see ``lit_memo.regimes``).
        radius: r of the ball ``||W - W0||_F <= r`` on the hidden weights (inf: unconstrained).
        zeta, gamma: the outer set ``V = {|v_i| >= zeta, max|v| <= gamma min|v|}``.
        optimizer: a callable taking parameter groups (default SGD lr 0.01 momentum 0.9, our choice).
        lr_hidden, lr_outer: learning rates of the two groups (None: the optimizer's lr).
        lr_scheduler: a callable taking the optimizer; stepped every ``lr_scheduler_interval``.
        compile: ``torch.compile`` the training forward + loss (so the backward is fused too);
            what compiling costs, the first compiled forward + backward (both are compiled then;
            the step's own compute is included), is logged apart as ``compile/seconds``.
    """

    def __init__(
        self,
        input_shape: Sequence[int] = (1,),
        num_outputs: int = 1,
        task: str = "regression",
        regime: str = "ours",
        radius: float = math.inf,
        zeta: float = 0.0,
        gamma: float = math.inf,
        optimizer: Optional[OptimizerCallable] = None,
        lr_hidden: Optional[float] = None,
        lr_outer: Optional[float] = None,
        lr_scheduler: Optional[LRSchedulerCallable] = None,
        lr_scheduler_interval: str = "epoch",
        steps_per_batch: int = 1,
        compile: bool = False,
    ) -> None:
        super().__init__()
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        self.regime = get_regime(regime)
        check_radius(radius, "radius")
        check_outer_set(zeta, gamma)
        for name, lr in (("lr_hidden", lr_hidden), ("lr_outer", lr_outer)):
            if lr is not None and not lr > 0:
                raise ValueError(f"{name} must be > 0 (or null for the optimizer's lr), got {lr}")
        if lr_scheduler_interval not in ("epoch", "step"):
            raise ValueError(f"lr_scheduler_interval must be 'epoch' or 'step', got {lr_scheduler_interval!r}")
        if steps_per_batch < 1:
            raise ValueError(f"steps_per_batch must be >= 1, got {steps_per_batch}")
        # several GD steps per batch: the loop runs here (manual optimization), not in Lightning
        self.steps_per_batch = steps_per_batch
        self.compile_loss, self.compile_seconds = compile, None  # (nn.Module.compile is a method)
        self.automatic_optimization = steps_per_batch == 1
        self._per_step_hooks_observed = True  # decided at train start
        self.input_shape, self.num_outputs, self.task = tuple(input_shape), num_outputs, task
        self.radius, self.zeta, self.gamma = radius, zeta, gamma
        self.optimizer_factory, self.lr_scheduler_factory = optimizer, lr_scheduler
        self.lr_hidden, self.lr_outer, self.lr_scheduler_interval = lr_hidden, lr_outer, lr_scheduler_interval
        if task == "classification":
            for split in SPLITS:
                setattr(self, f"{split}_acc", MulticlassAccuracy(num_classes=num_outputs, average="micro"))
        # val/test loss: sample-weighted sums over all ranks (a mean of rank means is off on uneven shards);
        # nan_strategy nan: a diverged model's NaN loss is reported, not dropped with a warning (and not
        # "disable": torchmetrics 1.9 then ignores the weights)
        self.val_loss_mean, self.test_loss_mean = (MeanMetric(nan_strategy=float("nan")) for _ in range(2))
        # training loss bookkeeping (see _train_share and _record_train_step)
        self._shards: Optional[tuple] = None  # (train loader's weakref, weight, this rank's batch sizes) under DDP
        self._pending_losses: list[torch.Tensor] = []  # this rank's (weighted) losses since the last fold
        self._unlogged: Optional[tuple[torch.Tensor, torch.Tensor]] = None  # (out, y) of a step not yet logged
        self._loss_best: Optional[torch.Tensor] = None
        self._last_loss: Optional[torch.Tensor] = None

    # -- what a family subclass provides ---------------------------------------------------
    net: nn.Module

    def hidden_parameters(self) -> list[nn.Parameter]:
        raise NotImplementedError

    def outer_parameters(self) -> list[nn.Parameter]:
        raise NotImplementedError

    def init_network_(self) -> None:
        """Apply the regime's init once ``self.net`` exists."""
        if self.regime.mirrored:
            self.mirror_init_()

    # -- regime -> constraints -------------------------------------------------------------
    def constraint_groups(self) -> dict[str, Constraint]:
        groups: dict[str, Constraint] = {}
        if self.regime.ball and not math.isinf(self.radius):
            groups["hidden"] = BallConstraint(self.hidden_parameters(), self.radius)
        if self.regime.outer_set:
            (v,) = self.outer_parameters()
            groups["outer"] = OuterConstraint(v, self.zeta, self.gamma)
        return groups

    # -- training --------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.task == "classification":
            return F.cross_entropy(out, y)
        return F.mse_loss(out.reshape(y.shape), y)

    explicit_gradient = False  # a subclass with a hand-written gradient may turn it on (ShallowNetModule)

    def explicit_forward_backward_(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The training loss and ``.grad`` of the trained parameters without autograd; returns
        (out, loss). ``_multi_step`` calls it instead of forward + backward when ``explicit_gradient``."""
        raise NotImplementedError(f"{type(self).__name__} has no hand-written gradient")

    def _forward_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self(x)
        return out, self.loss(out, y)

    def _train_forward_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward + loss of a training step, compiled once when ``compile`` is on."""
        if not self.compile_loss:
            return self._forward_loss(x, y)
        if getattr(self, "_compiled_forward_loss", None) is None:
            start, step = time.perf_counter(), self.global_step  # the first call compiles the forward
            self._compiled_forward_loss = torch.compile(self._forward_loss)

            def backward_done(grads) -> None:  # ... and the first backward, lazily, the backward graph
                handle.remove()
                self.compile_seconds = time.perf_counter() - start
                for logger in self.loggers:  # once, straight to the loggers (self.log would repeat it per batch)
                    logger.log_metrics({"compile/seconds": self.compile_seconds}, step=step)

            trained = [p for p in self.parameters() if p.requires_grad]
            handle = torch.autograd.graph.register_multi_grad_hook(trained, backward_done, mode="all")
        return self._compiled_forward_loss(x, y)

    def _step(self, batch, split: str) -> torch.Tensor:
        x, y = batch
        if split == "train":  # weighted so that DDP's gradient average is the whole batch's; logged on logging steps
            out, loss = self._train_forward_loss(x, y)
            share = self._train_share(len(y))
            loss = loss if share is None else loss * share
            self._record_train_step(loss, out, y)
            return loss
        out, loss = self._forward_loss(x, y)
        self.log("step", float(self.global_step), on_step=False, on_epoch=True)  # rows under the GD step
        mean = getattr(self, f"{split}_loss_mean")
        mean.update(loss.detach(), len(y))
        self.log(f"{split}/loss", mean, prog_bar=True, on_step=False, on_epoch=True)
        self._log_eval_acc(split, out.detach(), y)
        return loss

    def _log_eval_acc(self, split: str, out: torch.Tensor, y: torch.Tensor) -> None:
        """``val/acc`` / ``test/acc`` over the epoch; a family with its own accuracy overrides it."""
        if self.task == "classification":
            acc = getattr(self, f"{split}_acc")
            acc(out, y)
            self.log(f"{split}/acc", acc, prog_bar=True, on_step=False, on_epoch=True)

    def training_step(self, batch, batch_idx: int) -> Optional[torch.Tensor]:
        if self.automatic_optimization:
            return self._step(batch, "train")
        return self._multi_step(batch)

    def on_train_start(self) -> None:
        super().on_train_start()
        self._pending_losses, self._unlogged = [], None  # a fit that raised midway must not leak into the next
        self._per_step_hooks_observed = per_step_hooks_observed(self.trainer, self)
        # a hand-written gradient (ShallowNetModule's explicit_gradient) replaces autograd only on the plain path
        self._explicit_on = self.explicit_gradient and not self._per_step_hooks_observed
        if self.explicit_gradient and self._per_step_hooks_observed:
            rank_zero_warn("explicit_gradient is off for this fit: DDP, a precision other than 32-true, a profiler or "
                           "a per-step hook needs Lightning's own step; training uses autograd (equal to float "
                           "rounding, slower)")
        if not self.automatic_optimization:  # batches of K steps: no step-based checkpoint may be skipped
            from lit_memo.callbacks.step_checkpoint import check_step_checkpoints  # lazy: avoids an import cycle

            check_step_checkpoints(self.trainer, self.steps_per_batch)

    def _multi_step(self, batch) -> Optional[torch.Tensor]:
        """``steps_per_batch`` optimizer steps on one batch (full-batch GD without per-step overhead).

        Every step is counted by Lightning's step bookkeeping, so ``trainer.global_step`` counts
        GD steps and ``max_steps`` is honoured exactly; the loss of the last step is logged, at
        x = GD step.
        """
        optimizer = self.optimizers()
        x, y = batch
        steps = self.steps_per_batch
        if self.trainer.max_steps > 0:
            steps = min(steps, self.trainer.max_steps - self.global_step)
        if steps < 1:
            return None
        share = self._train_share(len(y))
        for _ in range(steps):
            optimizer.zero_grad()
            if self._explicit_on:  # writes the gradients itself (one device: no share)
                out, loss = self.explicit_forward_backward_(x, y)
            else:
                out, loss = self._train_forward_loss(x, y)
                loss = loss if share is None else loss * share
                if self._per_step_hooks_observed:
                    self.manual_backward(loss)
                    optimizer.step()
                    continue
                loss.backward()
            # the same computation and step count, without dispatching hooks nobody overrides
            optimizer._on_before_step()  # Lightning's own step bookkeeping (global_step)
            optimizer.optimizer.step()
            optimizer._on_after_step()
        self._record_train_step(loss, out, y)  # the last step's
        scheduler = self.lr_schedulers()
        if scheduler is not None and self.lr_scheduler_interval == "step":
            for _ in range(steps):
                scheduler.step()
        return loss

    # -- the training loss of the whole batch, across DDP ranks -----------------------------
    def _train_share(self, n: int):
        """The weight of this rank's mean loss before backward (None: none needed).

        DDP averages the ranks' gradients with equal weights, which is the gradient of the mean
        loss over all samples only when every rank holds as many (a full batch of n = 500 on 3
        ranks does not). Scaling rank r's mean loss by ``n_r * world / n`` makes the average
        exact. The ranks' batch sizes are read from their train loaders and gathered once per
        loader (first step, resume, a loader Lightning rebuilds), so a step adds no collective to
        DDP's own; a loader that does not tell its sizes, or whose ranks' sizes change ratio
        between batches, costs one all-reduce of ``n_r`` per step instead.
        """
        trainer = self._trainer
        if trainer is None or trainer.world_size == 1:
            return None
        loader = trainer.train_dataloader
        if self._shards is None or self._shards[0]() is not loader:  # a weak reference: dead once rebuilt
            self._shards = (weakref.ref(loader), *self._gather_shards(loader))
        _, share, sizes = self._shards
        if sizes is None:
            total = trainer.strategy.reduce(torch.tensor(float(n), device=self.device), reduce_op="sum")
            return n * trainer.world_size / total
        if n not in sizes:  # the other ranks' weights would be wrong too: stop rather than train off the gradient
            raise RuntimeError(f"rank {trainer.global_rank} got a training batch of {n} samples, but its train loader "
                               f"gives batches of {sorted(sizes)}; the DDP loss weights assume the loader's sizes "
                               "(rebuild the loader between epochs, not inside one)")
        return share

    def _gather_shards(self, loader) -> tuple[Optional[float], Optional[set[int]]]:
        """(weight, this rank's batch sizes) from every rank's ``train_batch_sizes``: one all-gather;
        (None, None) where the weight must be computed per step."""
        trainer = self.trainer
        local = train_batch_sizes(loader) or (-1, -1, -1)
        rows = trainer.strategy.all_gather(torch.tensor(local, device=self.device)).reshape(-1, 3).tolist()
        counts, first, last = zip(*rows)
        if min(counts) < 1 or len(set(counts)) > 1 or any(f * sum(last) != m * sum(first) for f, m in zip(first, last)):
            return None, None
        rank = trainer.global_rank
        share = None if len(set(first)) == len(set(last)) == 1 else last[rank] * trainer.world_size / sum(last)
        return share, {first[rank], last[rank]}

    def _record_train_step(self, loss: torch.Tensor, out: torch.Tensor, y: torch.Tensor) -> None:
        """Keep a training step's loss (weighted by ``_train_share``), ``out`` and ``y``; reduce and
        log them only on the steps Lightning logs (``log_every_n_steps``), as its loggers would
        drop the others: no collective on the steps in between."""
        self._pending_losses.append(loss.detach())
        self._unlogged = (out.detach(), y)
        if self._logs_this_step():
            self._log_train()
        elif len(self._pending_losses) >= _PENDING_LIMIT:  # bounded memory when nothing is logged
            self._fold_losses()

    def _logs_this_step(self) -> bool:
        return self._trainer is not None and logs_train_step(self._trainer)

    def _fold_losses(self) -> None:
        """Turn the pending losses into whole-batch losses (the mean over ranks of the weighted ones:
        one all-reduce for all of them), the latest into ``_last_loss``, and fold them into
        ``_loss_best``, so the best covers every step, logged or not."""
        if not self._pending_losses:
            return
        losses, self._pending_losses = torch.stack(self._pending_losses), []
        if self._trainer is not None and self.trainer.world_size > 1:
            losses = self.trainer.strategy.reduce(losses, reduce_op="mean")
        best = self._loss_best
        for loss in losses.unbind():
            best = loss.clone() if best is None else torch.fmin(best.to(loss.device), loss)  # NaN-safe
        self._loss_best, self._last_loss = best, losses[-1]

    def _log_train(self) -> None:
        """``train/loss``, ``train/loss_best`` (its running minimum, kept on resume, so a lucky
        endpoint of an oscillating run cannot pass for its result) and ``train/acc``."""
        self._fold_losses()
        (out, y), self._unlogged = self._unlogged, None
        if not self.automatic_optimization:  # x = GD steps, not batches
            self.log("step", float(self.global_step), on_step=True, on_epoch=False, logger=True, prog_bar=False)
        self.log("train/loss", self._last_loss, prog_bar=True, on_step=True, on_epoch=False)
        self.log("train/loss_best", self._loss_best, on_step=True, on_epoch=False)
        self._log_train_acc(out, y)

    def _log_train_acc(self, out: torch.Tensor, y: torch.Tensor) -> None:
        if self.task == "classification":
            self._log_step_metric("train/acc", self.train_acc, out, y)

    def _log_step_metric(self, name: str, metric: Metric, *update_args) -> None:
        """One step's value of a torchmetrics metric over all ranks' samples: its ``compute``
        syncs the states (a step-logged metric object would give rank 0's shard only)."""
        metric.reset()
        metric.update(*update_args)
        self.log(name, metric.compute(), prog_bar=True, on_step=True, on_epoch=False)
        metric.reset()

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        super().on_train_batch_end(outputs, batch, batch_idx)
        # a callback that stops the fit makes Lightning log this step: it gets this step's values
        if self._unlogged is not None and self._logs_this_step():
            self._log_train()
        self._unlogged = None

    def on_train_end(self) -> None:
        super().on_train_end()
        self._fold_losses()  # every rank is here: the best covers the steps after the last log

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        self._fold_losses()  # Lightning saves on every rank (save_checkpoint ends with a barrier)
        if self._loss_best is not None:
            checkpoint["loss_best"] = self._loss_best.item()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        if "loss_best" in checkpoint:
            self._loss_best = torch.tensor(checkpoint["loss_best"])
        # a checkpoint of another DataModule class has no entry Lightning would hand to ours: check here
        dm = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        if hasattr(dm, "check_checkpoint") and type(dm).__qualname__ not in checkpoint:
            dm.check_checkpoint(checkpoint)

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        # under manual optimization Lightning steps no scheduler: an epoch-interval one is ours
        scheduler = self.lr_schedulers()
        if not self.automatic_optimization and scheduler is not None and self.lr_scheduler_interval == "epoch":
            scheduler.step()

    def validation_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "test")

    def configure_callbacks(self):
        # PerturbedGD's stopping rule ends the fit through this callback (a no-op with other optimizers);
        # a NaN/inf training loss ends it through the other
        from lit_memo.callbacks import DivergenceStop, PerturbedGDCallback  # lazy: lit_memo.callbacks imports our deps

        given = self._trainer.callbacks if self._trainer is not None else []
        # Lightning lets a module's callbacks replace the Trainer's of the same type: keep the user's own
        return [cb for cb in (PerturbedGDCallback(), DivergenceStop()) if not any(isinstance(g, type(cb)) for g in given)]

    def configure_optimizers(self):
        hidden, outer = self.hidden_parameters(), self.outer_parameters()
        named = {id(p) for p in hidden + outer}
        rest = [p for p in self.parameters() if id(p) not in named and p.requires_grad]
        groups = []
        for params, lr in ((hidden, self.lr_hidden), (outer, self.lr_outer), (rest, None)):
            if params:
                groups.append({"params": params} if lr is None else {"params": params, "lr": lr})
        if self.optimizer_factory is None:
            optimizer = torch.optim.SGD(groups, lr=0.01, momentum=0.9)
        else:
            optimizer = self.optimizer_factory(groups)
        if self.lr_scheduler_factory is None:
            return optimizer
        scheduler = self.lr_scheduler_factory(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": self.lr_scheduler_interval}}
