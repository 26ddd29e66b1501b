"""Full-batch GD on Ge et al.'s quadratic net (ge_mnist_quadratic_noise.yaml's CPU-sized MNIST subset):
lit_memo's fit (train.py's path) vs a plain PyTorch loop doing the same forward, squared loss,
backward and SGD step, interleaved in one run (best of each). Usage:
    python benchmarks/bench_quadratic.py [--steps 60] [--rounds 3] [train.py flags]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import train  # noqa: E402
from bench_full_batch import TrainClock  # noqa: E402


def plain_loop(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, lr: float, steps: int) -> float:
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    t0 = time.perf_counter()
    for _ in range(steps):
        optimizer.zero_grad()
        loss = (net(x).squeeze(1) - y).pow(2).mean()
        loss.backward()
        optimizer.step()
    return steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", default="ge_mnist_quadratic_noise.yaml")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--lr", type=float, default=0.05)
    a, extra = ap.parse_known_args()
    os.environ.setdefault("WANDB_MODE", "disabled")
    plain_rates, fit_rates, loop_rates = [], [], []
    with tempfile.TemporaryDirectory() as out:
        args = ["--config", a.config, f"--trainer.max_steps={a.steps}", "--trainer.max_epochs=-1", f"--output_dir={out}",
                "--trainer.enable_progress_bar=false", "--trainer.callbacks=[]", "--run_test=false",
                "--data.init_args.batch_size=null", f"--model.init_args.steps_per_batch={a.steps // 3}",
                "--model.init_args.optimizer=torch.optim.SGD", f"--model.init_args.optimizer.init_args.lr={a.lr}",
                "--model.init_args.lr_scheduler=null", "--trainer.logger=false",
                *extra]
        for _ in range(a.rounds):  # interleaved rounds, best of each: the machine may be shared
            cli = train.build_cli(args)
            dm = cli.datamodule
            dm.setup("fit")
            x, y = next(iter(dm.train_dataloader()))
            net = train.build_cli(args).model.net  # same config and seed: the same initial weights
            plain_loop(net, x, y, a.lr, 3)  # warm-up
            plain_rates.append(plain_loop(net, x, y, a.lr, a.steps))
            clock = TrainClock()
            cli.trainer.callbacks.append(clock)
            t0 = time.perf_counter()
            cli.trainer.fit(cli.model, datamodule=dm)
            assert cli.trainer.global_step == a.steps
            fit_rates.append(a.steps / (time.perf_counter() - t0))
            loop_rates.append(a.steps / clock.seconds)
    plain_rate, fit_rate, loop_rate = max(plain_rates), max(fit_rates), max(loop_rates)
    print(f"config={a.config} n={len(x)} d={x.shape[1]} width={cli.model.hparams.width} steps={a.steps} "
          f"steps_per_batch={cli.model.steps_per_batch} threads={torch.get_num_threads()} best of {a.rounds}")
    print(f"plain PyTorch loop : {plain_rate:9.2f} steps/s")
    print(f"lit_memo, fit()    : {fit_rate:9.2f} steps/s (whole fit call, Trainer start-up included)")
    print(f"lit_memo, loop only: {loop_rate:9.2f} steps/s (on_train_start to on_train_end)")
    print(f"ratio lit_memo / plain = {fit_rate / plain_rate:.3f} (fit), {loop_rate / plain_rate:.3f} (loop only)")


if __name__ == "__main__":
    main()
