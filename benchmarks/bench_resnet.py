"""ResNet-18 (layer4_width 64) training throughput: lit_memo (train.py's path) vs a plain PyTorch loop,
and the projection's cost as a fraction of one training step. One run, interleaved rounds.

Both sides use the same model (built from the same config and seed), the same DataModule and
loader (tensor pipeline, pad-crop-flip drawn per batch), the same optimizer and scheduler from
``configure_optimizers`` and the same projections after each step. Throughput is steady state:
images/s between the end of the first (warm-up) step and the end of the last one.

    python benchmarks/bench_resnet.py [--batch 32] [--steps 6] [--rounds 3] [train.py flags]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import train  # noqa: E402


class StepClock(pl.Callback):
    """Wall time at the end of every training batch."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.times.append(time.perf_counter())


def plain_loop(module, loader, steps: int) -> list[float]:
    """forward, cross-entropy, backward, SGD step, projection: what the Lightning run does per batch."""
    optimizer = module.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    module.capture_anchors_()
    module.project_constraints_()
    module.train()
    times, it = [], iter(loader)
    for _ in range(steps):
        try:
            x, y = next(it)
        except StopIteration:
            it = iter(loader)
            x, y = next(it)
        optimizer.zero_grad()
        loss = module.loss(module(x), y)
        loss.backward()
        optimizer.step()
        module.project_constraints_()
        times.append(time.perf_counter())
    return times


def rate(times: list[float], batch: int) -> float:
    return (len(times) - 1) * batch / (times[-1] - times[0])


def projection_seconds(module, calls: int, outside: bool, sync_free: bool) -> float:
    """Median seconds of ``project_constraints_`` with the weights inside the sets or layer4 pushed outside
    (the median: single calls are short, and a shared machine's stalls would dominate a mean)."""
    module.projection_sync_free = sync_free
    params = module.constraint_groups()["hidden"].params
    radius = module.constraint_groups()["hidden"].radius
    start = [p.detach().clone() for p in params]
    push = [torch.randn_like(p) for p in params]
    scale = 3 * radius / math.sqrt(sum(float(d.square().sum()) for d in push))
    times = []
    with torch.no_grad():
        for _ in range(calls):
            for p, s, d in zip(params, start, push):
                p.copy_(s + scale * d if outside else s)
            t0 = time.perf_counter()
            module.project_constraints_()
            times.append(time.perf_counter() - t0)
    module.projection_sync_free = None
    return sorted(times)[len(times) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", default="resnet18_narrow.yaml")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=6, help="steps per round and side (the first is warm-up)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--projection_calls", type=int, default=200)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    a, extra = ap.parse_known_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    os.environ.setdefault("WANDB_MODE", "disabled")
    plain_rates, lit_rates = [], []
    with tempfile.TemporaryDirectory() as out:
        # one epoch = steps batches: the checkpoint written at the epoch's end is outside the clock
        args = ["--config", a.config, "--model.init_args.layer4_width=64", f"--data.init_args.batch_size={a.batch}",
                f"--data.init_args.subset_size={a.batch * a.steps}", f"--trainer.max_steps={a.steps}",
                "--trainer.callbacks=[]", "--trainer.enable_progress_bar=false", "--wandb_mode=disabled",
                "--run_test=false", f"--output_dir={out}", *extra]
        for k in range(a.rounds):  # interleaved, order alternating, best of each: the machine is shared
            cli = train.build_cli(args)
            cli.datamodule.setup("fit")
            plain = train.build_cli(args).model  # same config and seed: the same initial weights
            clock = StepClock()
            cli.trainer.callbacks.append(clock)
            for side in (("plain", "lit") if k % 2 == 0 else ("lit", "plain")):
                if side == "plain":
                    times = plain_loop(plain, cli.datamodule.train_dataloader(), a.steps)
                    plain_rates.append(rate(times, a.batch))
                else:
                    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
                    lit_rates.append(rate(clock.times, a.batch))
    step = a.batch / max(plain_rates)
    module = cli.model
    proj = {(outside, sync_free): projection_seconds(module, a.projection_calls, outside, sync_free)
            for outside in (False, True) for sync_free in (False, True)}
    n_hidden = sum(p.numel() for p in module.hidden_parameters())
    print(f"config={a.config} layer4_width=64 batch={a.batch} steps/round={a.steps} rounds={a.rounds} "
          f"threads={torch.get_num_threads()} device=cpu (no GPU measured)")
    print(f"plain PyTorch loop : {max(plain_rates):8.1f} images/s (rounds: {', '.join(f'{r:.1f}' for r in plain_rates)})")
    print(f"lit_memo (Trainer) : {max(lit_rates):8.1f} images/s (rounds: {', '.join(f'{r:.1f}' for r in lit_rates)})")
    print(f"ratio lit_memo / plain = {max(lit_rates) / max(plain_rates):.3f}")
    print(f"one training step (plain, best) = {1e3 * step:.1f} ms; projection of layer4 ({n_hidden} weights) + V:")
    for (outside, sync_free), s in proj.items():
        where = "layer4 outside the ball" if outside else "inside the sets       "
        path = "sync-free" if sync_free else "exact    "
        print(f"  {where} {path}: {1e6 * s:8.1f} us = {100 * s / step:.3f}% of a step")


if __name__ == "__main__":
    main()
