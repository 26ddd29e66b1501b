"""steps_per_batch > 1: several GD steps per batch, with or without Lightning's per-step hooks."""

from __future__ import annotations

import pytorch_lightning as pl
import torch

from lit_memo.data import SyntheticDataModule
from lit_memo.modules import ShallowNetModule


class CountSteps(pl.Callback):
    def __init__(self) -> None:
        self.calls = 0

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.calls += 1


def fit(make_trainer, callbacks):
    torch.manual_seed(0)
    data = SyntheticDataModule(n=40, d=5, batches_per_epoch=3, seed=2)
    module = ShallowNetModule(input_shape=data.input_shape, width=8, regime="ours", radius=0.3, steps_per_batch=4)
    trainer = make_trainer(max_steps=22, callbacks=callbacks, deterministic=True)
    trainer.fit(module, datamodule=data)
    return module, trainer


def test_skipping_unobserved_hooks_changes_nothing(make_trainer):
    fast, fast_trainer = fit(make_trainer, [])
    assert fast._per_step_hooks_observed is False
    counter = CountSteps()
    full, full_trainer = fit(make_trainer, [counter])
    assert full._per_step_hooks_observed is True
    assert counter.calls == full_trainer.global_step == fast_trainer.global_step == 22
    assert fast.projection_stats == full.projection_stats
    for a, b in zip(fast.parameters(), full.parameters()):
        assert torch.equal(a, b)


def test_schedulers_step_per_gd_step_or_per_epoch(make_trainer):
    """Lightning steps no scheduler under manual optimization; the module does, per its interval."""
    from functools import partial

    for interval, expected in (("step", 12), ("epoch", 2)):
        torch.manual_seed(0)
        data = SyntheticDataModule(n=40, d=5, batches_per_epoch=3, seed=2)
        module = ShallowNetModule(input_shape=data.input_shape, width=8, regime="ours", steps_per_batch=2,
                                  lr_scheduler=partial(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5),
                                  lr_scheduler_interval=interval)
        make_trainer(max_steps=12).fit(module, datamodule=data)  # 2 epochs of 3 batches x 2 steps
        assert module.lr_schedulers().last_epoch == expected, interval
