"""A group of sweep cells trained as one stacked model (see ``batched.py``; quadratic nets:
``batched_quadratic.py`` via ``group_quadratic.py``), in one worker.

Each member is first built through ``train.build_cli`` from its own arguments, exactly as
``train.py`` would run it alone: that gives its initial weights (its seed), data, regime and
optimizer settings, and its own run folder (resolved config + ``metrics.csv`` through the run's
CSV logger). ``batch_blocker`` says why a config cannot be batched; the runner then trains
its cells one per run.
"""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path
from typing import Any, Optional

import torch

from lit_memo.sweep.batched import BATCHABLE_KEYS, BatchedShallowTrainer, Member
from lit_memo.sweep.batched_quadratic import BATCHABLE_KEYS as QUADRATIC_KEYS
from lit_memo.sweep.group_files import resume, save, write_run
from lit_memo.sweep.group_quadratic import (
    is_quadratic,
    member_rows,
    optimizer_and_scheduler,
    quadratic_blocker,
    run_quadratic_group,
    same_settings,
)
from lit_memo.sweep.worker import load_train, write_result


def batch_blocker(cli) -> Optional[str]:
    """None when this built config can train in a batched group, else the reason it cannot."""
    from lit_memo.modules.shallow import ShallowNetModule

    device = cli.trainer.strategy.root_device
    if device.type != "cpu":  # the batched trainers' equality with train.py is tested on CPUs only
        return (f"batched groups train on the CPU, and this config's trainer runs on {device}: one train.py run "
                "per cell (set flags: {trainer.accelerator: cpu} to batch)")
    if is_quadratic(cli.model):
        return quadratic_blocker(cli)
    if type(cli.model) is not ShallowNetModule:
        return (f"model {type(cli.model).__name__} has no batched implementation (only ShallowNetModule, "
                "QuadraticModule and ThreeLayerQuadraticModule)")
    return _shallow_blocker(cli)


def batchable_keys(cli) -> tuple[str, ...]:
    """The config keys members of one batched group may differ in, for this built config's model."""
    return QUADRATIC_KEYS if is_quadratic(cli.model) else BATCHABLE_KEYS


def member_bytes(cli, cell: dict[str, Any]) -> int:
    """Bytes of one member's working set in a step: its activations (batch rows x width floats) and
    its trained weights (width x inputs), with the cell's own width, n, d or features where it sets
    them (the runner sizes groups by it)."""
    width = int(cell.get("model.init_args.width", cli.model.hparams.width))
    if is_quadratic(cli.model):
        inputs = cell.get("model.init_args.features", cli.model.quadratic.weight.shape[1])
        return 4 * width * (member_rows(cli, cell) + int(inputs))
    n, d = (int(cell.get(f"data.init_args.{k}", cli.datamodule.hparams[k])) for k in ("n", "d"))
    return 4 * width * (n + d)


def _shallow_blocker(cli) -> Optional[str]:
    from lit_memo.data.synthetic import SyntheticDataModule

    model, data, cfg = cli.model, cli.datamodule, cli.config
    if model.task != "regression" or model.hparams.get("bias"):
        return "batched training covers the bias-free regression net of Zhang et al. Fig. 4"
    if type(data) is not SyntheticDataModule or not data.hparams.full_batch or data.hparams.n_val or data.hparams.n_test:
        return "batched training needs full-batch synthetic data with no val/test split"
    if model.lr_scheduler_factory is not None or getattr(model, "compile_loss", False):
        return "batched training has no lr scheduler / module compile support"
    opt = model.configure_optimizers()
    if type(opt) is not torch.optim.SGD:
        return f"batched training implements SGD with momentum, not {type(opt).__name__}"
    for group in opt.param_groups:
        if group["dampening"] or group["nesterov"] or group["weight_decay"] or group.get("maximize"):
            return "batched SGD has no dampening, Nesterov, weight decay or maximize"
    if len(opt.param_groups) != 2:
        return "batched training expects exactly the hidden and outer parameter groups"
    trainer = cli.trainer
    if trainer.max_steps is None or trainer.max_steps < 1 or trainer.world_size != 1 or trainer.accumulate_grad_batches != 1:
        return "batched training needs trainer.max_steps >= 1 on one device, no gradient accumulation"
    import lit_memo.callbacks as diagnostics

    others = [type(cb).__name__ for cb in trainer.callbacks if type(cb).__module__.startswith(diagnostics.__name__)
              and not isinstance(cb, diagnostics.JacobianRankCallback)]
    if others:
        return (f"batched groups compute only the final Jacobian spectrum, not {others}: drop those callbacks "
                "from the sweep's trainer.callbacks, or set batching: off")
    if str(trainer.precision) not in ("32-true", "32"):
        return "batched training runs in float32 only"
    if not isinstance(cfg.seed_everything, int) or isinstance(cfg.seed_everything, bool):
        return "batched training needs a fixed integer seed_everything"
    return None


def _member(cli, key: Any, opt) -> Member:
    hidden, outer = opt.param_groups
    net = cli.model.net
    return Member(key=key, w0=net.hidden.weight.detach().clone(), v0=net.output.weight.detach().clone(),
                  lr_hidden=hidden["lr"], lr_outer=outer["lr"], radius=float(cli.model.radius))


def _same(clis, opts) -> Optional[str]:
    """Members (and their built optimizers) must share everything but lrs, radius and seed."""
    first = clis[0]
    m0, d0 = first.model.hparams, first.datamodule.hparams
    for cli, opt in zip(clis[1:], opts[1:]):
        for k in ("width", "activation", "regime", "zeta", "gamma", "task"):
            if cli.model.hparams.get(k) != m0.get(k):
                return f"members differ in model.{k}"
        if dict(cli.datamodule.hparams) != dict(d0):
            return "members differ in their data"
        if cli.trainer.max_steps != first.trainer.max_steps or cli.model.steps_per_batch != first.model.steps_per_batch:
            return "members differ in max_steps or steps_per_batch"
        if opt.defaults.get("momentum") != opts[0].defaults.get("momentum"):
            return "members differ in momentum"
    return None


def run_group(cells: list[str], args_list: list[list[str]], group_dir: str, compile: bool = False) -> list[dict[str, Any]]:
    """Train the cells as one batched model; returns one row per cell (and writes each
    cell's ``result.json``). Resumes from ``group_state.pt`` when a previous try left one."""
    train = load_train()
    group_path = Path(group_dir)
    group_path.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    # check_data=False: the members share one data set (``_same``), set up once from the first below
    clis, rng_states = [], []
    for cell, args in zip(cells, args_list):
        clis.append(train.build_cli([*args, f"--output_dir={group_path / cell / 'runs'}",
                                     "--trainer.enable_progress_bar=false"], check_data=False))
        rng_states.append(torch.get_rng_state())  # where its run's first epoch would start (mini-batch order)
    first = clis[0]
    quadratic = is_quadratic(first.model)
    reason = batch_blocker(first)
    if not reason:  # each member's optimizer (and scheduler) built once: compared here, read for its lr below
        built = [optimizer_and_scheduler(cli.model) if quadratic else cli.model.configure_optimizers() for cli in clis]
        reason = same_settings(clis, built) if quadratic else _same(clis, built)
    if reason:
        raise ValueError(f"cells {cells} cannot be batched: {reason}")
    dm = first.datamodule
    dm.setup("fit")
    if quadratic:
        if compile:  # said, not silently ignored
            warnings.warn("--compile on: batched quadratic groups have no compiled step; they train eager")
        return run_quadratic_group(clis, built, rng_states, cells, group_path, start)
    x, y = dm.splits["train"].tensors
    regime = first.model.regime
    members = [_member(cli, cell, opt) for cli, cell, opt in zip(clis, cells, built)]
    trainer = BatchedShallowTrainer(
        x, y, members, activation=first.model.hparams["activation"], pairwise=regime.mirrored,
        ball=regime.ball, outer_set=regime.outer_set, zeta=first.model.zeta, gamma=first.model.gamma,
        momentum=built[0].defaults.get("momentum", 0.0),
        log_every=first.model.steps_per_batch, compile=compile)
    resume(trainer, group_path, cells)
    max_steps = first.trainer.max_steps
    # checkpoint as often as train.py's last.ckpt: once per epoch of GD steps
    every = first.model.steps_per_batch * dm.hparams.batches_per_epoch

    def save_every_epoch(t: BatchedShallowTrainer) -> None:
        if t.step % every == 0 and t.step < max_steps:
            save(t, group_path, cells)

    t0 = time.perf_counter()
    trainer.run(max_steps, on_log=save_every_epoch)
    train_seconds = time.perf_counter() - t0
    rows = []
    for cli, member in zip(clis, members):
        diagnostics = final_jacobian(cli, member, x)
        rows.append(_finish(cli, member, group_path / member.key, trainer, train_seconds, time.perf_counter() - start,
                            diagnostics))
    return rows


def final_jacobian(cli, member: Member, x: torch.Tensor) -> dict[str, float]:
    """What the config's JacobianRankCallback logs at the end of fit, for this member's final weights
    (Zhang et al. Fig. 4 c-d: sigma_min of J at the end)."""
    from lit_memo.callbacks import JacobianRankCallback

    found = [cb for cb in cli.trainer.callbacks if isinstance(cb, JacobianRankCallback)]
    if not found or member.w is None or not bool(torch.isfinite(member.w).all() and torch.isfinite(member.v).all()):
        return {}
    cb, model = found[0], cli.model
    with torch.no_grad():
        model.net.hidden.weight.copy_(member.w)
        model.net.output.weight.copy_(member.v)
    _, metrics = cb.spectrum(model, x[: cb.num_probes])
    return {k: float(v) for k, v in metrics.items()}


def _finish(cli, member: Member, cell_dir: Path, trainer: BatchedShallowTrainer, train_s: float, wall_s: float,
            diagnostics: dict[str, float]) -> dict:
    """Write the member's run folder the way train.py would (config.yaml, metrics.csv) and its row."""
    metrics = [(step, {"train/loss": loss}) for step, loss in member.log]
    run_dir = write_run(cli, metrics + [(member.steps, diagnostics)] if diagnostics else metrics)
    final = member.log[-1][1] if member.log else math.nan
    finite = [v for _, v in member.log if math.isfinite(v)]
    row = {"cell": member.key, "mode": "batched", "group_size": len(trainer.members), "status": member.status,
           "final/train/loss": final, "best/train/loss": min(finite) if finite else math.nan, "steps": member.steps,
           "wall_s": round(wall_s, 3), "train_s_shared": round(train_s, 3), "run_dir": str(run_dir)}
    row.update({f"final/{k}": v for k, v in diagnostics.items()})
    if trainer.compile_seconds:
        row["compile_s"] = round(trainer.compile_seconds, 3)
    write_result(cell_dir, row)
    return row
