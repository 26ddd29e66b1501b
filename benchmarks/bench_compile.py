"""train.py with the module's ``compile: true``, and with ``explicit_gradient: true`` (the hand-written
in-place gradient, ShallowNetModule), vs the plain eager PyTorch loop, same process.

Compile time (the first batch, forward and backward graphs) is reported apart from the step
rate measured after it. Usage:
    nice python benchmarks/bench_compile.py [--steps 3000] [--threads 1] [train.py flags]
    nice python benchmarks/bench_compile.py --data.init_args.n=1000 --data.init_args.d=5 --model.init_args.width=400
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
sys.path.insert(0, str(Path(__file__).resolve().parent))
import train  # noqa: E402
from bench_full_batch import plain_loop  # noqa: E402  (the same eager baseline as the full-batch benchmark)


class FirstBatchClock(pl.Callback):
    def on_train_start(self, trainer, pl_module):
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if not hasattr(self, "first"):
            self.first, self.first_steps = time.perf_counter(), trainer.global_step

    def on_train_end(self, trainer, pl_module):
        self.end = time.perf_counter()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", default="synthetic_narrow.yaml")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=1)
    a, overrides = ap.parse_known_args()
    os.environ.setdefault("WANDB_MODE", "disabled")
    torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as out:
        args = ["--config", a.config, f"--trainer.max_steps={a.steps}", f"--output_dir={out}", "--trainer.callbacks=[]",
                "--trainer.enable_progress_bar=false", "--wandb_mode=disabled", *overrides]
        cli = train.build_cli([*args, "--model.init_args.compile=true"])
        dm = cli.datamodule
        dm.setup("fit")
        x, y = dm.splits["train"].tensors
        plain_loop(train.build_cli(args).model, x, y, 50)  # warm-up
        plain_rate = max(plain_loop(train.build_cli(args).model, x, y, a.steps) for _ in range(2))
        clock = FirstBatchClock()
        cli.trainer.callbacks.append(clock)
        cli.trainer.fit(cli.model, datamodule=dm)
        explicit_rate = max(_fit_rate(args, a.steps) for _ in range(2))
    steady = (a.steps - clock.first_steps) / (clock.end - clock.first)
    first = clock.first - clock.start
    compile_s = first - clock.first_steps / steady
    print(f"config={a.config} n={len(x)} d={x.shape[1]} width={cli.model.hparams.width} steps={a.steps} "
          f"steps_per_batch={cli.model.steps_per_batch} threads={torch.get_num_threads()}")
    print(f"plain eager PyTorch loop        : {plain_rate:9.1f} steps/s")
    print(f"train.py, compile on (steady)   : {steady:9.1f} steps/s")
    print(f"compile time (first batch minus its steps): {compile_s:.1f} s (compile/seconds, the first compiled "
          f"forward + backward: {cli.model.compile_seconds:.1f} s)")
    print(f"ratio compiled train.py / plain eager = {steady / plain_rate:.2f}x (steps), "
          f"{a.steps / (clock.end - clock.start) / plain_rate:.2f}x (whole loop, compile included)")
    print(f"train.py, explicit_gradient on  : {explicit_rate:9.1f} steps/s (whole fit loop)")
    print(f"ratio explicit_gradient train.py / plain eager = {explicit_rate / plain_rate:.2f}x")


def _fit_rate(args: list[str], steps: int) -> float:
    """GD steps per second of train.py's fit loop (on_train_start to on_train_end) with explicit_gradient."""
    cli = train.build_cli([*args, "--model.init_args.explicit_gradient=true"])
    clock = FirstBatchClock()
    cli.trainer.callbacks.append(clock)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return steps / (clock.end - clock.start)


if __name__ == "__main__":
    main()
