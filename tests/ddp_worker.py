"""Run train.py's CLI under DDP and save each rank's final state (the DDP launcher re-runs this file).

    python tests/ddp_worker.py OUT_DIR [train.py flags ...]

Rank 1 perturbs its initial weights before fit: DDP must broadcast rank 0's, so the anchors and
the trained weights still agree across ranks. Each rank also records how many Python-level
collectives (``torch.distributed.*``: Lightning's and torchmetrics' syncs, not DDP's own gradient
all-reduce, which runs in C++) every training batch issued.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytorch_lightning as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import train  # noqa: E402

COLLECTIVES = ("all_reduce", "all_gather", "all_gather_into_tensor", "all_gather_object", "broadcast",
               "broadcast_object_list", "barrier", "reduce", "reduce_scatter", "gather", "scatter")


class CountCollectives(pl.Callback):
    """Collectives per training batch, from this callback's batch start to its batch end (the
    module's training step, its logging, the optimizer step, and every other callback's batch
    hooks: it moves itself last at setup, after the module's own callbacks, e.g.
    DivergenceStop; not the epoch-end hooks)."""

    def __init__(self) -> None:
        self.calls, self.per_batch, self._start = 0, [], None
        for name in COLLECTIVES:
            if hasattr(torch.distributed, name):
                setattr(torch.distributed, name, self._counted(getattr(torch.distributed, name)))

    def _counted(self, fn):
        def wrapper(*args, **kwargs):
            self.calls += 1
            return fn(*args, **kwargs)
        return wrapper

    def setup(self, trainer, module, stage):
        # the module's configure_callbacks were appended after the Trainer's: run after them (a new
        # list, so the hook loop iterating the old one is not disturbed)
        trainer.callbacks = [cb for cb in trainer.callbacks if cb is not self] + [self]

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self._start = self.calls

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.per_batch.append(self.calls - self._start)


class DumpState(pl.Callback):
    def __init__(self, out: str, counter: CountCollectives) -> None:
        self.out, self.counter = Path(out), counter

    def on_fit_start(self, trainer, module):
        # runs before the module's own on_fit_start: the weights DDP broadcast, before any step
        self.start = {k: v.detach().clone() for k, v in module.named_parameters()}

    def on_fit_end(self, trainer, module):
        state = {
            "start": self.start,
            "params": {k: v.detach().clone() for k, v in module.named_parameters()},
            "anchors": module.constraint_anchors,
            "global_step": trainer.global_step,
            "stats": module.projection_stats,
            "collectives": self.counter.per_batch,
        }
        torch.save(state, self.out / f"rank{trainer.global_rank}.pt")


def main() -> None:
    out, args = sys.argv[1], sys.argv[2:]
    cli = train.build_cli(args)
    if int(os.environ.get("LOCAL_RANK", "0")) > 0:
        with torch.no_grad():
            for p in cli.model.parameters():
                p.add_(torch.randn_like(p))
    counter = CountCollectives()
    cli.trainer.callbacks += [counter, DumpState(out, counter)]
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)


if __name__ == "__main__":
    main()
