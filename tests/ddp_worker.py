"""Run train.py's CLI under DDP and save each rank's final state (the DDP launcher re-runs this file).

    python tests/ddp_worker.py OUT_DIR [train.py flags ...]

Rank 1 perturbs its initial weights before fit: DDP must broadcast rank 0's, so the anchors and
the trained weights still agree across ranks.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytorch_lightning as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import train  # noqa: E402


class DumpState(pl.Callback):
    def __init__(self, out: str) -> None:
        self.out = Path(out)

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
        }
        torch.save(state, self.out / f"rank{trainer.global_rank}.pt")


def main() -> None:
    out, args = sys.argv[1], sys.argv[2:]
    cli = train.build_cli(args)
    if int(os.environ.get("LOCAL_RANK", "0")) > 0:
        with torch.no_grad():
            for p in cli.model.parameters():
                p.add_(torch.randn_like(p))
    cli.trainer.callbacks.append(DumpState(out))
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)


if __name__ == "__main__":
    main()
