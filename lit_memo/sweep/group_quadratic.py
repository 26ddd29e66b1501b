"""A group of Ge et al. quadratic-net cells trained as one stacked model (``batched_quadratic.py``).

``run_group`` (group.py) builds every member through ``train.build_cli`` and hands the quadratic
ones here: their initial W, learning rate, scheduler and the global RNG state their own run would
start its first epoch from (it decides their mini-batch order) come from that build.
``quadratic_blocker`` says why a config cannot batch; the runner then trains it one run per cell.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Optional

import torch

from lit_memo.sweep.batched_quadratic import (
    BatchedAdam,
    BatchedQuadraticTrainer,
    BatchedSGD,
    LoaderOrder,
    QuadraticMember,
)
from lit_memo.sweep.group_files import resume, save, write_run
from lit_memo.sweep.worker import read_metrics, write_result

SCHEDULERS = ("StepLR",)  # depend on the epoch count alone and change only the lr


def is_quadratic(model) -> bool:
    from lit_memo.modules.quadratic import QuadraticModule, ThreeLayerQuadraticModule

    return type(model) in (QuadraticModule, ThreeLayerQuadraticModule)


def optimizer_and_scheduler(model):
    """The member's own torch optimizer and scheduler, as Lightning gets them from the module."""
    out = model.configure_optimizers()
    if isinstance(out, dict):
        return out["optimizer"], out["lr_scheduler"]["scheduler"]
    return out, None


def _optimizer_blocker(opt) -> Optional[str]:
    from lit_memo.optim import PerturbedGD

    if isinstance(opt, PerturbedGD):
        return ("PerturbedGD is not batched: its perturbations and stopping rule are per run (each member would "
                "stop at its own step); use torch.optim.SGD or Adam, or batching: off")
    if len(opt.param_groups) != 1:
        return "batched quadratic training expects one parameter group (W)"
    group = opt.param_groups[0]
    if isinstance(group["lr"], torch.Tensor):
        return "batched quadratic training needs a float learning rate, not a tensor"
    if type(opt) is torch.optim.SGD:
        if group["dampening"] or group["nesterov"] or group["weight_decay"] or group.get("maximize"):
            return "batched SGD has no dampening, Nesterov, weight decay or maximize (use lam for regularization)"
        return None
    if type(opt) is torch.optim.Adam:
        if group["amsgrad"] or group["weight_decay"] or group.get("maximize") or group.get("decoupled_weight_decay"):
            return "batched Adam has no amsgrad, weight decay or maximize (use lam for regularization)"
        if group.get("fused") or group.get("capturable") or group.get("differentiable"):
            return "batched Adam follows torch's single-tensor Adam: no fused, capturable or differentiable"
        if any(isinstance(b, torch.Tensor) for b in group["betas"]):
            return "batched Adam needs float betas"
        return None
    return f"batched quadratic training implements torch.optim.SGD and Adam, not {type(opt).__name__}"


def quadratic_blocker(cli) -> Optional[str]:
    """None when this built quadratic-net config can train in a batched group, else why not."""
    from lit_memo.data.image import ImageDataModule
    from lit_memo.data.synthetic import SyntheticDataModule
    from lit_memo.models.quadratic import signed_halves

    model, data, cfg, trainer = cli.model, cli.datamodule, cli.config, cli.trainer
    if not torch.equal(model.quadratic.a, signed_halves(model.hidden_width)):
        return "batched quadratic training needs a = (+1 x k/2, -1 x k/2), Ge et al.'s outer weights"
    if model.steps_per_batch != 1 or getattr(model, "compile_loss", False):
        return "batched quadratic training reproduces one step per batch (steps_per_batch: 1) without module compile"
    opt, scheduler = optimizer_and_scheduler(model)
    reason = _optimizer_blocker(opt)
    if reason:
        return reason
    if scheduler is not None and (type(scheduler).__module__ != "torch.optim.lr_scheduler"
                                  or type(scheduler).__name__ not in SCHEDULERS):
        return (f"batched quadratic training steps only torch's {SCHEDULERS} (per member), not "
                f"{type(scheduler).__name__}")
    hp = data.hparams
    if type(data) is SyntheticDataModule:
        if hp.n_val or hp.n_test:
            return "batched training needs synthetic data with no val/test split (n_val: 0, n_test: 0)"
    elif isinstance(data, ImageDataModule):
        if hp.val_size or hp.pipeline != "tensor" or hp.num_workers or getattr(data, "augment", False):
            return ("batched quadratic training needs image data in memory (pipeline: tensor, num_workers: 0), "
                    "no augmentation and no validation split (val_size: 0)")
    else:
        return f"batched quadratic training reads synthetic or image data, not {type(data).__name__}"
    if cfg.get("run_test", False):
        try:
            has_test = data.has_test
        except Exception:  # noqa: BLE001 - data not found yet: the single run would fail the same way
            has_test = True
        if has_test:
            return "batched groups run no test pass: set run_test: false (or use data without a test split)"
    if trainer.world_size != 1 or trainer.accumulate_grad_batches != 1:
        return "batched training runs on one device without gradient accumulation"
    limit = trainer.limit_train_batches  # the int 1 is one batch per epoch, the float 1.0 all of them
    if not (limit is None or (isinstance(limit, float) and limit == 1.0)) or trainer.gradient_clip_val:
        return "batched training needs limit_train_batches: 1.0 and no gradient clipping"
    if (trainer.max_steps is None or trainer.max_steps < 1) and (trainer.max_epochs is None or trainer.max_epochs < 1):
        return "batched training needs trainer.max_steps or trainer.max_epochs >= 1"
    if (trainer.min_steps or 0) > 0 or (trainer.min_epochs or 0) > 0:
        return "batched training stops a diverged member at once: no min_steps / min_epochs"
    if str(trainer.precision) not in ("32-true", "32"):
        return "batched training runs in float32 only"
    from lit_memo.callbacks import DivergenceStop

    others = [type(cb).__name__ for cb in trainer.callbacks if type(cb).__module__.startswith("lit_memo.callbacks")
              and not (type(cb) is DivergenceStop and not cb.check_every)]
    if others:
        return (f"batched quadratic groups log the training loss only, not {others}: drop those callbacks from the "
                "sweep's trainer.callbacks, or set batching: off")
    if not isinstance(cfg.seed_everything, int) or isinstance(cfg.seed_everything, bool):
        return "batched training needs a fixed integer seed_everything"
    return None


def _settings(cli, opt, scheduler) -> dict[str, Any]:
    """Everything members must share (what is not a learning rate or a seed), from the built member
    and its optimizer and scheduler (``optimizer_and_scheduler``)."""
    model = cli.model
    group = {k: v for k, v in opt.param_groups[0].items() if k not in ("params", "lr", "initial_lr")}
    sched = None
    if scheduler is not None:
        sched = (type(scheduler).__name__, {k: v for k, v in scheduler.state_dict().items()
                                            if k not in ("base_lrs", "_last_lr", "last_epoch", "_step_count")})
    trainer = cli.trainer
    return {"model": {k: v for k, v in model.hparams.items() if k != "lr_hidden"},
            "features": getattr(model, "_feature_args", None), "data": dict(cli.datamodule.hparams),
            "optimizer": (type(opt).__name__, group), "scheduler": sched, "interval": model.lr_scheduler_interval,
            "trainer": (trainer.max_steps, trainer.max_epochs, trainer.log_every_n_steps)}


def same_settings(clis, built) -> Optional[str]:
    first = _settings(clis[0], *built[0])
    for cli, (opt, scheduler) in zip(clis[1:], built[1:]):
        other = _settings(cli, opt, scheduler)
        for key, value in first.items():
            if other[key] != value:
                return f"members differ in their {key} settings (only learning rates and seeds may differ)"
    return None


def member_rows(cli, cell: dict[str, Any]) -> int:
    """Samples in one training batch (the (rows, width) activations a member adds to a group), with
    the cell's own data sizes where it sets them."""
    from lit_memo.data.synthetic import SyntheticDataModule

    hp = {**cli.datamodule.hparams, **{k[len("data.init_args."):]: v for k, v in cell.items()
                                       if k.startswith("data.init_args.")}}
    if type(cli.datamodule) is SyntheticDataModule:
        return hp["n"] if hp["full_batch"] else min(hp["batch_size"], hp["n"])
    n = hp["subset_size"] or 50000  # the whole training split (tens of thousands): one member per group
    return n if hp["batch_size"] is None else min(hp["batch_size"], n)


def run_quadratic_group(clis, built, rng_states: list[torch.Tensor], cells: list[str], group_path: Path,
                        start: float) -> list[dict[str, Any]]:
    """Train the built members (checked by ``group.run_group``, their data set up; ``built``: each
    one's (optimizer, scheduler)) as one stacked model; one row per member (and its run folder)."""
    first = clis[0]
    dm = first.datamodule
    loader = dm.train_dataloader()
    orders: list[LoaderOrder] = []
    members = []
    for cli, cell, rng, (opt, scheduler) in zip(clis, cells, rng_states, built):
        index = next((i for i, o in enumerate(orders) if torch.equal(o.rng_state, rng)), None)
        if index is None:  # a seed not seen yet in this group: its own order
            orders.append(LoaderOrder(loader, rng))
            index = len(orders) - 1
        members.append(QuadraticMember(key=cell, w0=cli.model.quadratic.weight.detach().clone(),
                                       lr=opt.param_groups[0]["lr"], order=index, scheduler=scheduler))
    opt = built[0][0]
    group = opt.param_groups[0]
    batched_opt = (BatchedSGD(group["momentum"]) if type(opt) is torch.optim.SGD
                   else BatchedAdam(tuple(group["betas"]), group["eps"]))
    features = first.model.net.features if hasattr(first.model.net, "features") else None
    trainer = BatchedQuadraticTrainer(orders, members, batched_opt, lam=first.model.lam, features=features,
                                      log_every=first.trainer.log_every_n_steps,
                                      scheduler_interval=first.model.lr_scheduler_interval)
    resume(trainer, group_path, cells)

    def save_every_epoch(t: BatchedQuadraticTrainer) -> None:  # at every epoch end, as train.py's last.ckpt
        save(t, group_path, cells)

    max_steps = first.trainer.max_steps if first.trainer.max_steps is not None else -1
    max_epochs = first.trainer.max_epochs if first.trainer.max_epochs is not None else -1
    t0 = time.perf_counter()
    trainer.run(max_steps, max_epochs, on_epoch_end=save_every_epoch)
    train_s = time.perf_counter() - t0
    return [_finish(cli, member, group_path / member.key, len(members), train_s, time.perf_counter() - start)
            for cli, member in zip(clis, members)]


def _finish(cli, member: QuadraticMember, cell_dir: Path, group_size: int, train_s: float, wall_s: float) -> dict:
    """Write the member's run folder as train.py would (config.yaml, metrics.csv) and its row,
    read back from that folder exactly as a single run's."""
    run_dir = write_run(cli, [(int(row["step"]), {k: v for k, v in row.items() if k != "step"}) for row in member.log])
    if member.w is not None:  # the final W, for a look without re-training
        torch.save({"weight": member.w, "steps": member.steps}, run_dir / "final_weights.pt")
    row = {"cell": member.key, "mode": "batched", "group_size": group_size, **read_metrics(cell_dir),
           "status": member.status,
           "wall_s": round(wall_s, 3), "train_s_shared": round(train_s, 3), "run_dir": str(run_dir)}
    if not member.log:
        row["final/train/loss"] = math.nan
    write_result(cell_dir, row)
    return row
