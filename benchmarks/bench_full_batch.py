"""Full-batch GD steps/second: lit_memo (train.py's path) vs a plain PyTorch loop, one run.

The plain loop does the same computation: forward, squared loss, backward, SGD with momentum,
and the same projections. Usage:
    python benchmarks/bench_full_batch.py [--steps 10000] [--rounds 3] [--config synthetic_narrow.yaml] [train.py flags]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import train  # noqa: E402


class TrainClock(pl.Callback):
    """Seconds between the first and the last training hook: the loop without Trainer set-up."""

    def on_train_start(self, trainer, pl_module):
        self.start = time.perf_counter()

    def on_train_end(self, trainer, pl_module):
        self.seconds = time.perf_counter() - self.start


def plain_loop(module, x, y, steps: int) -> float:
    optimizer = module.configure_optimizers()
    if module.constraint_groups():
        module.capture_anchors_()
    t0 = time.perf_counter()
    for _ in range(steps):
        optimizer.zero_grad()
        loss = module.loss(module(x), y)
        loss.backward()
        optimizer.step()
        module.project_constraints_()
    return steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", default="synthetic_narrow.yaml")
    ap.add_argument("--steps", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("overrides", nargs="*", help="extra train.py flags, e.g. --data.init_args.n=1000")
    a, extra = ap.parse_known_args()
    a.overrides += extra
    os.environ.setdefault("WANDB_MODE", "disabled")
    plain_rates, fit_rates, loop_rates = [], [], []
    with tempfile.TemporaryDirectory() as out:
        args = ["--config", a.config, f"--trainer.max_steps={a.steps}", f"--output_dir={out}",
                "--trainer.enable_progress_bar=false", *a.overrides]
        for _ in range(a.rounds):  # interleaved rounds, best of each: the machine may be shared
            cli = train.build_cli(args)
            dm = cli.datamodule
            dm.setup("fit")
            x, y = dm.splits["train"].tensors
            plain = train.build_cli(args).model  # same config and seed: the same initial weights
            plain_loop(train.build_cli(args).model, x, y, 50)  # warm-up
            plain_rates.append(plain_loop(plain, x, y, a.steps))
            clock = TrainClock()
            cli.trainer.callbacks.append(clock)
            t0 = time.perf_counter()
            cli.trainer.fit(cli.model, datamodule=dm)
            fit_rates.append(a.steps / (time.perf_counter() - t0))
            loop_rates.append(a.steps / clock.seconds)
    plain_rate, fit_rate, loop_rate = max(plain_rates), max(fit_rates), max(loop_rates)
    print(f"config={a.config} n={len(x)} d={x.shape[1]} width={cli.model.hparams.width} steps={a.steps} "
          f"steps_per_batch={cli.model.steps_per_batch} threads={torch.get_num_threads()} best of {a.rounds}")
    print(f"plain PyTorch loop : {plain_rate:9.1f} steps/s")
    print(f"lit_memo, fit()    : {fit_rate:9.1f} steps/s (whole fit call, Trainer start-up included)")
    print(f"lit_memo, loop only: {loop_rate:9.1f} steps/s (on_train_start to on_train_end)")
    print(f"ratio lit_memo / plain = {fit_rate / plain_rate:.3f} (fit), {loop_rate / plain_rate:.3f} (loop only)")


if __name__ == "__main__":
    main()
